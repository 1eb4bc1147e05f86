import json
import random

import pytest
import torch

from rcai.errors import RcaiError
from rcai.space.extract import argmax_arch, extract_subnet
from rcai.model.mixed import FixedOp, MixedOp, TanhTemperature, get_softmax, list_softmax
from rcai.model.ops import OpSpec, build_op, list_ops
from rcai.model.ops.registry import example_inputs
from rcai.model.unet import UNet
from rcai.presets import Preset, get_preset, list_presets
from rcai.space.space import SearchSpace
from rcai.space.subnet import SubnetSpec


def test_report_space_has_944784_subnets():
    space = SearchSpace(get_preset("rcai-report"))
    assert space.size == 944_784 == 9 * 9 * 9 * 36 * 36
    assert [n for _, n in space.factors()] == [9, 9, 9, 36, 36]


def test_tiny_space_count_matches_enumeration_formula(tiny):
    space = SearchSpace(tiny)
    k = len(tiny.gnconv_ops)
    per_block = [k * k * (1 + k) if d >= tiny.attn_from_depth else k * k for d in range(tiny.levels)]
    expected = 1
    for n in per_block * 2:  # encoder and decoder both searchable
        expected *= n
    assert space.size == expected


@pytest.mark.parametrize("name", list_presets())
def test_preset_json_round_trip_and_hash(name):
    p = get_preset(name)
    q = Preset.from_dict(json.loads(json.dumps(p.to_dict())))
    assert q == p and q.hash == p.hash


@pytest.mark.parametrize("op", list_ops())
def test_every_registered_op_builds_and_keeps_shape(op):
    spec = OpSpec(op, 8, 8, 8, 8, groups=4, emb=16) if op not in ("noise_embed",) else OpSpec(op, 8, 16, 1, 1)
    module = build_op(spec)
    out = module(*example_inputs(spec, batch=2))
    assert module.spec == spec
    if op == "noise_embed":
        assert out.shape == (2, 16)
    elif op == "down":
        assert out.shape == (2, 8, 4, 4)
    elif op == "up":
        assert out.shape == (2, 8, 16, 16)
    else:
        assert out.shape == (2, 8, 8, 8)


def test_supernet_and_subnet_forward_shapes(micro):
    x, nl = torch.randn(2, 6, 32, 32), torch.rand(2, 1)
    assert UNet(micro)(x, nl).shape == (2, 3, 32, 32)
    space = SearchSpace(micro)
    arch = space.random_arch(random.Random(0))
    sub = UNet(micro, arch)
    assert sub(x, nl).shape == (2, 3, 32, 32)
    assert not any(isinstance(m, MixedOp) for m in sub.modules())


def test_extraction_equivalence_with_one_hot_alpha(micro):
    torch.manual_seed(0)
    supernet = UNet(micro).eval()
    space = SearchSpace(micro)
    arch = space.random_arch(random.Random(3))
    for m in supernet.mixed_ops():
        with torch.no_grad():
            m.alpha.fill_(-float("inf"))
            # inactive nested slots keep an arbitrary one-hot; they get weight 0 from their parent
            m.alpha[m.choices.index(arch.get(m.path, m.choices[0]))] = 0.0
    assert argmax_arch(supernet) == arch
    subnet, spec = extract_subnet(supernet)
    assert spec.choices == arch
    x, nl = torch.randn(2, 6, 32, 32), torch.rand(2, 1)
    with torch.no_grad():
        torch.testing.assert_close(supernet(x, nl), subnet(x, nl), rtol=1e-5, atol=1e-6)
    assert sum(p.numel() for p in subnet.parameters()) < sum(p.numel() for p in supernet.weight_parameters())


def test_arch_and_weight_parameters_partition(micro):
    net = UNet(micro)
    arch, weights = net.arch_parameters(), net.weight_parameters()
    assert len(arch) == len(net.mixed_ops()) > 0
    assert len(arch) + len(weights) == len(list(net.parameters()))


def test_subnet_json_round_trip(tmp_path, micro):
    space = SearchSpace(micro)
    spec = SubnetSpec(micro, space.random_arch(random.Random(1)))
    path = spec.save(tmp_path / "subnet.json")
    loaded = SubnetSpec.load(path, expect_preset=micro)
    assert loaded.choices == spec.choices and loaded.hash == spec.hash
    torch.manual_seed(0)
    a = loaded.build()
    assert isinstance(next(m for m in a.modules() if isinstance(m, FixedOp)), FixedOp)


def test_subnet_json_errors(tmp_path, micro, tiny):
    space = SearchSpace(micro)
    good = SubnetSpec(micro, space.base_arch()).to_dict()
    cases = {
        "other_preset": (good, tiny, "not 'tiny'"),
        "unknown_op": ({**good, "choices": {**good["choices"], next(iter(good["choices"])): "conv9x9"}}, None, "unknown op 'conv9x9'"),
        "missing_slot": ({**good, "choices": dict(list(good["choices"].items())[1:])}, None, "no choice for slot"),
        "extra_slot": ({**good, "choices": {**good["choices"], "enc.9.blocks.0.conv1": "skip"}}, None, "unknown or inactive slots"),
        "not_subnet": ({"hello": 1}, None, "not an rcai subnet file"),
    }
    for name, (doc, expect, msg) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(RcaiError, match=msg) as e:
            SubnetSpec.load(path, expect_preset=expect)
        assert str(path) in str(e.value)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(RcaiError, match="not valid JSON"):
        SubnetSpec.load(tmp_path / "broken.json")


def test_eq8_temperature_curve_runs_from_max_to_min():
    tau = TanhTemperature(max=20.0, min=0.08, width=100)
    values = [tau(x) for x in range(101)]
    assert values[0] == pytest.approx(19.95, abs=0.01)
    assert values[50] == pytest.approx((20 - 0.08) / 2 + 0.08)
    assert values[100] == pytest.approx(0.129, abs=0.001)
    assert all(a > b for a, b in zip(values, values[1:]))
    assert min(values) > 0.08  # the printed eq. 8 (`- min`) would end at about -0.03


def test_softmax_variants_registered_and_behave():
    assert set(list_softmax()) == {"simple", "temperature", "gumbel", "gdas", "paired"}
    alpha = torch.tensor([1.0, 0.5, 0.0])
    simple = get_softmax("simple")(alpha, 1.0)
    assert torch.allclose(simple, torch.softmax(alpha, 0))
    # temperature: deterministic, sharper as tau falls, uniform-ish as it rises
    hot, cold = get_softmax("temperature")(alpha, 20.0), get_softmax("temperature")(alpha, 0.08)
    assert hot.max() - hot.min() < 0.05 and cold[0] > 0.99
    # gumbel: random per call, but respects alpha on average; becomes near one-hot at low tau
    torch.manual_seed(0)
    g = torch.stack([get_softmax("gumbel")(alpha, 1.0) for _ in range(2000)])
    assert not torch.allclose(g[0], g[1])
    assert g.mean(0).argmax() == 0
    low = torch.stack([get_softmax("gumbel")(torch.zeros(3), 0.08) for _ in range(500)])
    assert low.max(1).values.median() > 0.99  # typically near one-hot...
    counts = torch.bincount(low.argmax(1), minlength=3).float() / 500
    assert counts.min() > 0.2  # ...yet picks every op of equal alpha (the report's Fig. 4.4 randomness)
    # gdas: one-hot in the forward pass, the Gumbel-softmax gradient in the backward pass
    a = alpha.clone().requires_grad_(True)
    h = get_softmax("gdas")(a, 1.0)
    assert sorted(h.detach().tolist()) == [0.0, 0.0, 1.0]
    (h * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert a.grad.abs().sum() > 0
    # paired: a one-hot path drawn from softmax(alpha), no gradient (the search scores it by its loss)
    torch.manual_seed(0)
    draws = torch.stack([get_softmax("paired")(alpha, 1.0) for _ in range(4000)])
    assert set(draws.sum(1).tolist()) == {1.0} and not draws.requires_grad
    assert torch.allclose(draws.mean(0), torch.softmax(alpha, 0), atol=0.03)
    with pytest.raises(RcaiError):
        get_softmax("sparsemax")


def test_single_path_mixed_op_runs_only_the_sampled_op():
    calls = []

    class Probe(torch.nn.Module):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def forward(self, x):
            calls.append(self.k)
            return x * self.k

    m = MixedOp("slot", {f"op{k}": Probe(k) for k in range(1, 4)}, softmax="gdas")
    torch.manual_seed(0)
    out = m(torch.ones(2))
    assert len(calls) == 1 and torch.equal(out, torch.full((2,), float(calls[0])))
    out.sum().backward()
    assert m.alpha.grad is not None and m.alpha.grad.abs().sum() > 0
