"""What every registered entry promises, tested over the registries themselves: a new target,
softmax variant or penalty is tested by being registered (the way diffusers' scheduler tests share
one base class). Behaviour particular to one entry stays in test_targets.py / test_space.py /
test_search.py."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from rcai.errors import RcaiError
from rcai.model.mixed import get_softmax, list_softmax
from rcai.search.penalty import PENALTIES
from rcai.targets import MeasureConfig, Target, TargetInfo, TimingStats, get_target, list_targets

SHAPE = (1, 3, 8, 8)
SPECS = {"x": (SHAPE, "float32")}
FAST = MeasureConfig(warmup=1, min_repeats=5, max_repeats=10, chunk=5, input_pool=2, max_seconds=2.0)

# How a test creates each target (a target not listed here is created with no settings). The
# remote target runs the real worker in a subprocess through its local transport.
SETTINGS = {
    "onnxruntime": lambda tmp: {"threads": 1},
    "torch": lambda tmp: {"threads": 1},
    "remote": lambda tmp: {"transport": "local", "remote_dir": str(tmp / "host"), "target": "onnxruntime",
                           "target_settings": {"threads": 1}},
}


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.conv(x))


@pytest.fixture(scope="module")
def net_and_onnx(tmp_path_factory):
    torch.manual_seed(0)
    net = Net().eval()
    path = tmp_path_factory.mktemp("contract") / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(*SHAPE),), str(path), input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    return net, path


def make_target(name: str, tmp_path) -> Target:
    """The target, or a skip saying why it cannot run on this machine (no GPU, no library)."""
    try:
        return get_target(name, **SETTINGS.get(name, lambda tmp: {})(tmp_path))
    except (ImportError, RcaiError, RuntimeError, OSError) as e:
        pytest.skip(f"target {name!r} cannot run here: {str(e).splitlines()[0] if str(e) else type(e).__name__}")


@pytest.mark.parametrize("name", list_targets())
class TestTargetContract:
    """The Target interface, for every registered target."""

    def prepared(self, name, tmp_path, net_and_onnx):
        target = make_target(name, tmp_path)
        net, path = net_and_onnx
        try:
            return target, target.prepare(path if target.takes_onnx else net, SPECS)
        except (ImportError, RcaiError, RuntimeError, OSError) as e:
            pytest.skip(f"target {name!r} cannot prepare here: {str(e).splitlines()[0]}")

    def test_info_and_settings(self, name, tmp_path):
        target = make_target(name, tmp_path)
        info = target.info()
        assert isinstance(info, TargetInfo) and info.backend and info.device and info.host and info.precision
        assert target.info(precision="fp16").precision == "fp16"  # a prepared model's precision wins
        settings = target.settings()
        json.dumps(settings)
        assert get_target(name, **settings).settings() == settings  # re-created elsewhere from its settings

    def test_run_and_runner_match_torch(self, name, tmp_path, net_and_onnx):
        _, p = self.prepared(name, tmp_path, net_and_onnx)
        net, _ = net_and_onnx
        x = np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)
        want = net(torch.from_numpy(x)).detach().numpy()
        out = p.run({"x": x})
        assert len(out) == 1 and np.allclose(out[0], want, atol=1e-5)
        run = p.runner(copy_outputs=True)
        first = run({"x": x})[0]
        second = run({"x": -x})[0]
        assert np.allclose(first, want, atol=1e-5) and not np.allclose(first, second)  # copies are not overwritten
        assert isinstance(p.info(), TargetInfo) and p.info().precision == "fp32"
        with pytest.raises(RcaiError):
            p.run({"x": np.ones((2, 3, 8, 8), np.float32)})  # not the prepared shape: a user error

    def test_measure(self, name, tmp_path, net_and_onnx):
        _, p = self.prepared(name, tmp_path, net_and_onnx)
        s = p.measure(FAST)
        assert isinstance(s, TimingStats) and 1 <= s.count <= FAST.max_repeats
        assert 0 < s.p10_ms <= s.median_ms <= s.p90_ms and s.cv >= 0


ALPHA = torch.tensor([[1.0, 0.5, -0.5], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize("name", [n for n in list_softmax() if not getattr(get_softmax(n), "score_function", False)])
@pytest.mark.parametrize("tau", [0.08, 1.0, 20.0])  # the range the report's temperature decay covers
def test_softmax_variant_gives_differentiable_weights(name, tau):
    torch.manual_seed(0)
    alpha = ALPHA.clone().requires_grad_(True)
    w = get_softmax(name)(alpha, tau)
    assert w.shape == alpha.shape and torch.isfinite(w).all() and (w >= 0).all()
    assert torch.allclose(w.sum(-1), torch.ones(2))
    (w[:, 0] * torch.tensor([1.0, 2.0])).sum().backward()
    assert alpha.grad is not None and torch.isfinite(alpha.grad).all() and alpha.grad.abs().sum() > 0


@pytest.mark.parametrize("name", PENALTIES.names())
def test_penalty_is_the_loss_at_lambda_0_and_grows_with_latency(name):
    loss, base, budget = torch.tensor(0.3), 100.0, 80.0
    lat = torch.tensor(120.0, requires_grad=True)  # above the budget
    pen = PENALTIES.get(name)
    assert torch.allclose(pen(loss, lat, base, budget, 0.0), loss)
    out = pen(loss, lat, base, budget, 1.0)
    assert out.shape == () and torch.isfinite(out) and out >= loss
    out.backward()
    assert lat.grad > 0  # more latency above the budget never lowers the architecture loss
    for lower, higher in ((90.0, 120.0), (120.0, 200.0)):
        assert pen(loss, torch.tensor(lower), base, budget, 1.0) <= pen(loss, torch.tensor(higher), base, budget, 1.0)
    try:
        free = pen(loss, lat.detach(), base, None, 1.0)  # without a budget: works, or says it needs one
    except RcaiError as e:
        assert "--latency-budget-ms" in str(e)
    else:
        assert math.isfinite(float(free))
