"""Quality estimators on the micro preset: every registered proxy is deterministic under a seed,
finite, and tells architectures apart; the gradient proxies see gradients below the output head."""
import math
import random
from dataclasses import replace

import pytest
import torch

from rcai.errors import RcaiError
from rcai.proxies import PROXIES, ProxyConfig, make_estimator
from rcai.proxies.base import fixed_batch, grads, init_model
from rcai.proxies.vote import position
from rcai.space.space import SearchSpace

FAST = ProxyConfig(batch=4, train_steps=3, vote_refs=4)


def _archs(preset):
    space = SearchSpace.of(preset)
    rng = random.Random(3)
    return [space.base_arch(), space.pick(lambda s: list(s.choices)[-1]), space.random_arch(rng)]


@pytest.fixture(scope="module")
def supernet(micro, tmp_path_factory):
    """A micro supernet's weights with the output conv drawn (a trained one's head is not zero either)."""
    from rcai.model.unet import UNet

    torch.manual_seed(0)
    net = UNet(micro)
    for m in net.head.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.reset_parameters()
    path = tmp_path_factory.mktemp("supernet") / "supernet.pt"
    torch.save(net.state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def quality_model(micro, tmp_path_factory):
    """A micro quality model (rcai quality fit) with per-op effects: 3x3 convs help, depthwise ones hurt."""
    from rcai.proxies.additive import AdditiveQuality

    space, rng = SearchSpace.of(micro), random.Random(0)
    recs = [{"choices": a, "quality": 0.5 + 0.03 * list(a.values()).count("conv3x3") - 0.04 * list(a.values()).count("dwsep3x3")}
            for a in (space.random_arch(rng) for _ in range(30))]
    path = tmp_path_factory.mktemp("quality") / "quality-micro.json"
    AdditiveQuality.fit(micro, recs, resamples=20).save(path)
    return str(path)


@pytest.mark.parametrize("name", PROXIES.names())
def test_proxy_is_deterministic_finite_and_depends_on_the_arch(micro, supernet, quality_model, name):
    archs = _archs(micro)[: 2 if name in ("short_train", "inherited") else 3]  # seconds per subnet
    cfg = {"inherited": replace(FAST, supernet=supernet), "quality-model": replace(FAST, quality_model=quality_model)}.get(name, FAST)
    first = [make_estimator(name, micro, cfg)(a) for a in archs]
    again = [make_estimator(name, micro, cfg)(a) for a in archs]
    assert first == again
    assert all(math.isfinite(v) for v in first)
    assert len(set(first)) > 1, f"{name} scores every architecture the same: {first}"


def test_seed_changes_the_init_and_the_batch(micro):
    a = SearchSpace.of(micro).base_arch()
    assert make_estimator("snip", micro, FAST)(a) != make_estimator("snip", micro, ProxyConfig(batch=4, seed=1))(a)
    assert not torch.equal(fixed_batch(micro, FAST)[1], fixed_batch(micro, ProxyConfig(batch=4, seed=1))[1])


def test_gradients_reach_below_the_head(micro):
    """Training starts the output conv at zero, which would leave every other layer without gradient;
    the proxies draw it, so the stem's gradient is non-zero."""
    a = SearchSpace.of(micro).base_arch()
    model = init_model(micro, a, 0)
    assert model.head[-1].weight.abs().sum() > 0
    head = {id(m.weight) for m in model.head.modules() if isinstance(m, torch.nn.Conv2d)}
    below = [g for w, g in zip([m.weight for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))], grads(model, micro, FAST))
             if id(w) not in head]
    assert below and all(g[1].abs().sum() > 0 for g in below)


def test_vote_position_is_the_interpolated_rank():
    import numpy as np

    refs = np.array([1.0, 2.0, 3.0])
    assert position(0.0, refs) == 0.0 and position(5.0, refs) == 1.0 and position(2.0, refs) == 0.5 and position(2.5, refs) == 0.75


def test_unknown_proxy_and_missing_supernet_are_one_line_errors(micro, tiny, supernet):
    with pytest.raises(RcaiError, match="unknown proxy 'nope'"):
        make_estimator("nope", micro)
    with pytest.raises(RcaiError, match="needs a trained supernet"):
        make_estimator("inherited", micro)
    with pytest.raises(RcaiError, match="not a supernet of preset tiny"):
        make_estimator("inherited", tiny, ProxyConfig(supernet=supernet))


def test_inherited_copies_the_supernet_weights(micro, supernet):
    """The inherited estimate of a subnet is the quality of the supernet's own ops: the same as the
    subnet built with the copied tensors by hand."""
    from rcai.model.unet import UNet
    from rcai.train.quality import eval_set, quality
    from rcai.train.setup import schedule_of

    arch = _archs(micro)[2]
    sub = UNet(micro, arch)  # subnet and supernet share parameter paths
    state = torch.load(supernet)
    sub.load_state_dict({k: state[k] for k in sub.state_dict()})
    got = make_estimator("inherited", micro, replace(FAST, supernet=supernet))(arch)
    assert got == quality(sub, eval_set(micro), schedule_of(micro))["gain_db"]
    assert got != 0.0  # not the zero-head bicubic of an untrained subnet
