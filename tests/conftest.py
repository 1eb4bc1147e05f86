import os

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny():
    from rcai.space.presets import get_preset

    return get_preset("tiny")


@pytest.fixture(scope="session")
def micro():
    """An even smaller preset for quick real runs (8 channels, 16->32)."""
    import dataclasses

    from rcai.space.presets import get_preset

    return dataclasses.replace(get_preset("tiny"), name="micro", base_channels=8, channel_mults=(1, 2), attn_from_depth=1, lr_size=16, hr_size=32, groups=4, T=100)
