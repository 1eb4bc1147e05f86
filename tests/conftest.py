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


@pytest.fixture(scope="module")
def micro_table(micro, tmp_path_factory):
    """A cost table of the micro preset profiled on this CPU, one thread, few repeats (modules may define their own)."""
    from rcai.cost.profile import ProfileConfig, profile_ops
    from rcai.targets import TargetSpec
    from rcai.targets import MeasureConfig

    path = tmp_path_factory.mktemp("tab") / "cpu-micro.csv"
    cfg = MeasureConfig(warmup=1, min_repeats=3, max_repeats=3, chunk=3, max_seconds=0.5)
    profile_ops(ProfileConfig(preset=micro.name, target=TargetSpec(threads=1), measure=cfg), path, progress=False)
    return path
