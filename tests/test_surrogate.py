"""The surrogate-driven strategy (`--strategy bo`, rcai/search/strategies/bo.py) with real trainings of
micro subnets (4-step protocol, rungs 2 and 4): it keeps the latency and the training budget, is
seeded, resumes after a SIGKILL at a fixed point to the uninterrupted result, and proposes by the
quality model when given one; its surrogate recovers planted effects and reads learning curves."""
import json
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from rcai.cost.load import load_cost_model
from rcai.cost.profile import ProfileConfig, profile_ops
from rcai.targets import TargetSpec
from rcai.errors import RcaiError
from rcai.proxies import ProxyConfig
from rcai.search.config import BOOptions, HalvingOptions
from rcai.search.strategies import StrategyConfig
from rcai.search.strategies.bo import Surrogate, round_cost
from rcai.search.strategies.run import run_strategy
from rcai.space.space import SearchSpace
from rcai.targets import MeasureConfig
from rcai.train.protocol import SIGNAL, TrainProtocol

FAST = MeasureConfig(warmup=1, min_repeats=3, max_repeats=5, chunk=3, max_seconds=0.5)
PROTOCOL = TrainProtocol(steps=4, batch_size=2, lr=SIGNAL.lr, ema=SIGNAL.ema, eval_at=(2, 4))


@pytest.fixture(scope="module")
def setup(tmp_path_factory, micro):
    path = tmp_path_factory.mktemp("table") / "cpu-micro.csv"
    profile_ops(ProfileConfig(preset="micro", target=TargetSpec(threads=1), measure=FAST), path, progress=False)
    table = load_cost_model(str(path), micro)
    cheapest, _ = table.space.extreme_arch(lambda sp: table.op_metric(sp, "latency_ms"), largest=False)
    lo, hi = table.estimate(cheapest, 10).loop_ms, table.estimate(table.space.base_arch(), 10).loop_ms
    return str(path), (lo + hi) / 2


def _cfg(setup, seed=0, quality_model=None, jobs=1, **bo):
    table, budget = setup
    return StrategyConfig(strategy="bo", preset="micro", cost_table=table, latency_budget_ms=budget, steps_per_sample=10, seed=seed,
                          proxy_config=ProxyConfig(quality_model=quality_model),
                          halving=HalvingOptions(protocol=PROTOCOL, rungs=(2, 4), eta=2, jobs=jobs),
                          bo=BOOptions(**{**dict(trainings=3.0, initial=2, pool=32), **bo}))


def _journal(out):
    return [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]


def _trace(out):
    return [(r["kind"], json.dumps(r["arch"], sort_keys=True), r["score"]) for r in _journal(out)]


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    result, summary = run_strategy(_cfg(setup), out)
    return out, result, summary


def test_keeps_the_latency_and_the_training_budget(setup, reference):
    out, result, summary = reference
    _, budget = setup
    rows = _journal(out)
    assert all(r["loop_ms"] <= budget * (1 + 1e-9) for r in rows) and summary["table"]["loop_ms"] <= budget * (1 + 1e-9)
    steps = {}
    for r in rows:  # a subnet's training steps = its highest rung
        k = json.dumps(r["arch"], sort_keys=True)
        steps[k] = max(steps.get(k, 0), 4 if r["kind"] == "quality" else 2)
    assert sum(steps.values()) <= 3.0 * PROTOCOL.steps and summary["trainings"] <= summary["budget_trainings"] == 3.0
    assert sum(steps.values()) == 2 * round_cost(2, (2, 4), 2)  # two rounds of 2 at rung 2, 1 promoted to 4 each
    assert len(list((out / "trainings").iterdir())) == len(steps) == 4
    finals = [r for r in rows if r["kind"] == "quality"]
    assert result.subnet.choices == max(finals, key=lambda r: r["score"])["arch"] and summary["selection"] == "best-at-last-rung"
    assert not summary["warm_start"] and any("cold start" in n for n in summary["notes"])


def test_seeded_same_seed_same_run_other_seed_other_proposals(setup, reference, tmp_path):
    out, result, _ = reference
    again, _ = run_strategy(_cfg(setup), tmp_path / "again")
    assert _trace(tmp_path / "again") == _trace(out) and again.subnet.choices == result.subnet.choices
    run_strategy(_cfg(setup, seed=1, trainings=1.0), tmp_path / "other")  # one candidate, to rung 4
    assert [a for _, a, _ in _trace(tmp_path / "other")][0] != [a for _, a, _ in _trace(out)][0]


KILLER = """
import json, os, signal, sys
import rcai.search.strategies.bo as bo
from rcai.search.strategies import StrategyConfig
from rcai.search.strategies.run import run_strategy
from rcai.train.job import TrainJob
calls, real = [0], TrainJob.run
def run(job):  # the fixed kill point: the start of the 5th training (round 1, its second candidate)
    calls[0] += 1
    if calls[0] == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(job)
TrainJob.run = run
cfg = StrategyConfig.from_dict(json.load(open(sys.argv[1])))
run_strategy(cfg, sys.argv[2])
"""


def test_resumes_after_sigkill_to_the_uninterrupted_result(setup, reference, tmp_path):
    out, result, _ = reference
    cfg = _cfg(setup)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    run = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path / "cfg.json"), str(run)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert len(_journal(run)) == 3 and not (run / "result.json").exists()  # round 0 journalled, round 1 cut
    resumed, summary = run_strategy(cfg, run, resume=True)
    assert _trace(run) == _trace(out) and resumed.subnet.choices == result.subnet.choices


def _planted_model(micro, path, effects):
    from rcai.proxies.additive import AdditiveQuality

    space, rng = SearchSpace.of(micro), random.Random(0)
    recs = [{"choices": a, "quality": 0.5 + sum(effects.get(op, 0.0) for op in a.values())} for a in (space.random_arch(rng) for _ in range(40))]
    AdditiveQuality.fit(micro, recs, resamples=50).save(path)
    return str(path)


def test_proposes_by_the_quality_model_when_given_one(setup, micro, reference, tmp_path):
    """A quality model that says conv5x5 is worth 0.3 dB a slot and narrow3x3 -0.3: the warm first
    round takes more conv5x5 and less narrow3x3 than the cold one (random near the budget) does."""
    out, _, _ = reference
    model = _planted_model(micro, tmp_path / "quality-micro.json", {"conv5x5": 0.3, "narrow3x3": -0.3})
    _, summary = run_strategy(_cfg(setup, quality_model=model, trainings=1.5), tmp_path / "warm")
    assert summary["warm_start"] and any("quality-micro.json" in n for n in summary["notes"])
    first = lambda out: [r["arch"] for r in _journal(out)[:2]]  # noqa: E731  (round 0 at rung 2)
    score = lambda archs: sum(sum((op == "conv5x5") - (op == "narrow3x3") for op in a.values()) for a in archs)  # noqa: E731
    assert score(first(tmp_path / "warm")) > score(first(out))
    assert summary["posterior_effects"]["conv5x5"] > 0.1 > -0.1 > summary["posterior_effects"]["narrow3x3"]


def test_surrogate_recovers_planted_effects_and_reads_learning_curves(micro):
    space, rng = SearchSpace.of(micro), random.Random(1)
    s = Surrogate(space, (2, 4), BOOptions(noise_sd=0.01))
    planted = {"conv3x3": 0.1, "conv5x5": 0.15, "dwsep3x3": -0.05, "narrow3x3": 0.02, "attention": -0.1}
    truth = lambda a: 0.6 + sum(planted.get(op, 0.0) for op in a.values())  # noqa: E731
    archs = [space.random_arch(rng) for _ in range(30)]
    s.fit([(a, 4, truth(a)) for a in archs])
    fitted = dict(zip(s.ops, s.mean[1:1 + len(s.ops)]))
    assert all(abs(fitted[op] - v) < 0.02 for op, v in planted.items())
    test = [space.random_arch(rng) for _ in range(20)]
    mu, sd = s.predict(np.array([s.features(a) for a in test]))
    assert np.max(np.abs(mu - np.array([truth(a) for a in test]))) < 0.05 and np.all(sd < 0.05)
    # an earlier rung's figure, 0.2 dB below the last rung's, is read through its offset: one subnet
    # seen only at rung 2 is predicted at rung 4 near its true value, with a wider interval than when seen there
    new = space.random_arch(random.Random(7))
    s.fit([(a, r, truth(a) - (0.2 if r == 2 else 0.0)) for a in archs for r in (2, 4)] + [(new, 2, truth(new) - 0.2 + 0.05)])
    mu2, sd2 = s.predict(s.features(new)[None])
    assert abs(mu2[0] - truth(new)) < 0.06


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU: the refusal is for machines without one")
def test_bo_trains_on_its_train_device(setup, tmp_path):
    """bo's executor takes halving's --train-device (its workers' slots): `cuda` without a GPU is refused
    before any training. Before the fix bo built its executor without it and trained on the CPU."""
    from dataclasses import replace

    cfg = _cfg(setup)
    cfg = replace(cfg, halving=replace(cfg.halving, train_device="cuda"))
    with pytest.raises(RcaiError, match="--train-device cuda: no CUDA GPU here"):
        run_strategy(cfg, tmp_path / "bo")
    assert not list((tmp_path / "bo").glob("trainings/*"))
