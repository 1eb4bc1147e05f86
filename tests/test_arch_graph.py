"""The architecture encoder (rcai.predictor.arch_graph) against the ONNX path it replaces: the graph
of a subnet built from its choices must equal `encode_onnx` of the subnet's export, field by field."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from rcai.cost.counters import op_counts
from rcai.errors import RcaiError
from rcai.predictor.arch_graph import ArchEncoder, subnet_onnx
from rcai.predictor.batch import collate
from rcai.predictor.graph import encode_onnx
from rcai.predictor.model import LatencyGNN, ModelConfig
from rcai.predictor.predictor import LatencyPredictor
from rcai.space.space import SearchSpace

FIELDS = ("x", "edge_index", "g", "op")


def assert_same(fast, ref, arch) -> None:
    assert fast.num_nodes == ref.num_nodes, arch
    assert sorted(fast.keys()) == sorted(ref.keys()), arch
    for k in FIELDS:
        a, b = getattr(fast, k), getattr(ref, k)
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), (k, arch)


def nested_archs(space: SearchSpace) -> list[dict[str, str]]:
    """Every ResNet multi-op slot on attention (nested GN-conv slot inactive), then on gnconv with
    each nested choice (active)."""
    out = []
    mixes = [s for s in space.slots if any(c.slots for c in s.choices.values())]
    assert mixes, "the preset has no nested slot"
    out.append(space.pick(lambda s: "attention" if s in mixes else next(iter(s.choices))))
    nested = [n for s in mixes for n in s.choices["gnconv"].slots[0].choices]
    for name in dict.fromkeys(nested):
        out.append(space.pick(lambda s: "gnconv" if s in mixes else (name if name in s.choices and "ops.gnconv" in s.path
                                                                      else next(iter(s.choices)))))
    return out


def cases(space: SearchSpace, n_random: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    cheapest, _ = space.extreme_arch(lambda sp: op_counts(sp)["flops"], largest=False)
    largest, _ = space.extreme_arch(lambda sp: op_counts(sp)["flops"], largest=True)
    return [space.base_arch(), cheapest, largest, *nested_archs(space)] + [space.random_arch(rng) for _ in range(n_random)]


def test_equal_to_onnx_path_micro(micro):
    space = SearchSpace.of(micro)
    archs = cases(space, 4, seed=0)
    assert any(a.get(p) == "skip" for a in archs for p in a)  # empty pieces (the slot reads through)
    graphs = ArchEncoder.of(micro).encode_many(archs)
    for arch, fast in zip(archs, graphs):
        assert_same(fast, encode_onnx(subnet_onnx(micro, arch)), arch)
    assert len({g.num_nodes for g in graphs}) > 3  # the choices do change the graph


def test_equal_to_onnx_path_tiny(tiny):
    space = SearchSpace.of(tiny)
    rng = random.Random(1)
    archs = [space.base_arch(), space.extreme_arch(lambda sp: op_counts(sp)["flops"], largest=False)[0],
             nested_archs(space)[0], nested_archs(space)[-1], space.random_arch(rng), space.random_arch(rng)]
    for arch, fast in zip(archs, ArchEncoder.of(tiny).encode_many(archs)):
        assert_same(fast, encode_onnx(subnet_onnx(tiny, arch)), arch)


def test_input_batch_two(micro):
    """The predictor cost model may export at batch > 1: the encoder follows (shapes differ)."""
    space = SearchSpace.of(micro)
    arch = space.random_arch(random.Random(3))
    fast = ArchEncoder.of(micro, batch=2).encode(arch)
    assert_same(fast, encode_onnx(subnet_onnx(micro, arch, batch=2)), arch)
    assert not torch.equal(fast.g, ArchEncoder.of(micro).encode(arch).g)


def test_batches_and_predictions_match_onnx_path(micro, tmp_path):
    space = SearchSpace.of(micro)
    rng = random.Random(5)
    archs = [space.random_arch(rng) for _ in range(7)]
    enc = ArchEncoder.of(micro)
    ref = [encode_onnx(subnet_onnx(micro, a)) for a in archs]
    batches = list(enc.batches(archs, max_nodes=300))  # ~100-node graphs: several batches
    assert len(batches) > 1 and sum(b.num_graphs for b in batches) == len(archs)
    got = collate(enc.encode_many(archs))
    want = collate(ref)
    for k in ("op", "num", "sizes", "g"):
        assert torch.equal(getattr(got, k), getattr(want, k)), k
    for k in ("fwd", "bwd", "pool", "spread"):
        assert torch.equal(getattr(got, k).to_dense(), getattr(want, k).to_dense()), k
    assert torch.equal(enc.encode_choices(enc.choices(archs)).batch().fwd.to_dense(), want.fwd.to_dense())
    torch.manual_seed(0)
    pred = LatencyPredictor(LatencyGNN(ModelConfig()), {"targets": ["cpu"]})
    fast = pred.predict_archs(micro, archs, max_nodes=300)
    assert np.allclose(fast, pred.predict(ref, max_nodes=300), rtol=1e-5)
    assert len(set(np.round(fast, 9))) > 1


def test_predictor_cost_model_uses_arch_encoder(micro, tmp_path):
    from rcai.cost.predictor_model import PredictorCostModel

    torch.manual_seed(0)
    path = LatencyPredictor(LatencyGNN(ModelConfig()), {"targets": ["cpu"]}).save(tmp_path / "p.pt")
    space = SearchSpace.of(micro)
    archs = [space.base_arch(), space.random_arch(random.Random(2))]
    fast = PredictorCostModel(micro, path)
    assert fast.encoder == "arch"
    slow = PredictorCostModel(micro, path, encoder="onnx")
    a, b = fast.estimate_many(archs, steps=4), slow.estimate_many(archs, steps=4)
    assert np.allclose([c.latency_ms for c in a], [c.latency_ms for c in b], rtol=1e-5)
    assert [c.flops for c in a] == [c.flops for c in b]
    with pytest.raises(RcaiError, match="unknown predictor encoder"):
        PredictorCostModel(micro, path, encoder="magic")


def test_bad_architectures(micro):
    enc = ArchEncoder.of(micro)
    space = SearchSpace.of(micro)
    base = space.base_arch()
    slot = next(iter(base))
    with pytest.raises(RcaiError, match="unknown op 'conv9x9'"):
        enc.encode({**base, slot: "conv9x9"})
    with pytest.raises(RcaiError, match="no choice for slot"):
        enc.encode({k: v for k, v in base.items() if k != slot})
    nested = next(s.path for s in space.all_slots() if "ops.gnconv" in s.path)
    assert nested not in base  # base uses attention: the nested slot is inactive
    with pytest.raises(RcaiError, match="unknown or inactive slots"):
        enc.encode({**base, nested: "conv3x3"})
    with pytest.raises(RcaiError, match="unknown or inactive slots"):
        enc.encode({**base, "no.such.slot": "conv3x3"})
