import os

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny():
    from rcai.presets import get_preset

    return get_preset("tiny")


@pytest.fixture(scope="session")
def micro():
    """The smallest registered preset, for quick real runs (8 channels, 16->32)."""
    from rcai.presets import get_preset

    return get_preset("micro")
