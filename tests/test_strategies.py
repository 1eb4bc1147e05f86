"""Sample-based strategies on the micro preset with a real (profiled) cost table: the budget holds for
every subnet evaluated, a seed reproduces a run, a resumed run (journal cut by a kill) equals the
uninterrupted one, and each reports its evaluations and wall time. Every registered strategy, DARTS
included, runs through the one seam."""
import json
import shutil

import pytest

from rcai.cost.load import load_cost_model
from rcai.cost.profile import ProfileConfig, profile_ops
from rcai.targets import TargetSpec
from rcai.errors import RcaiError
from rcai.proxies import ProxyConfig
from rcai.search.config import AreaOptions, EvolutionOptions, RLOptions
from rcai.search.strategies import STRATEGIES, StrategyConfig
from rcai.search.strategies.rl import REWARDS
from rcai.search.strategies.run import run_strategy
from rcai.targets import MeasureConfig

FAST = MeasureConfig(warmup=1, min_repeats=3, max_repeats=5, chunk=3, max_seconds=0.5)
SAMPLED = ("grid", "random", "evolution", "area", "rl")


@pytest.fixture(scope="module")
def micro_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "cpu-micro.csv"
    profile_ops(ProfileConfig(preset="micro", target=TargetSpec(threads=1), measure=FAST), path, progress=False)
    return str(path)


@pytest.fixture(scope="module")
def budget(micro_table, micro):
    """Halfway between the cheapest subnet's loop and the base's: a real constraint."""
    table = load_cost_model(micro_table, micro)
    cheapest, _ = table.space.extreme_arch(lambda sp: table.op_metric(sp, "latency_ms"), largest=False)
    lo, hi = table.estimate(cheapest, 10).loop_ms, table.estimate(table.space.base_arch(), 10).loop_ms
    return (lo + hi) / 2


def _cfg(table, budget, strategy, **kw):
    base = dict(strategy=strategy, preset="micro", cost_table=table, proxy="params", latency_budget_ms=budget, steps_per_sample=10,
                evaluations=12, evolution=EvolutionOptions(population=4, sample_size=2, crossover=0.5), area=AreaOptions(pool=8, proxy="synflow"),
                proxy_config=ProxyConfig(batch=2))
    return StrategyConfig(**{**base, **kw})


def _expected_evaluations(cfg) -> int:
    """The evaluation budget, or fewer for a grid with fewer points within the budget (a measured table)."""
    if cfg.strategy != "grid":
        return cfg.evaluations
    from rcai.search.strategies.grid import grid
    from rcai.search.strategies.run import build_problem

    problem = build_problem(cfg)
    return min(cfg.evaluations, sum(problem.feasible(a) for a in grid(problem.space)))


def _journal(out):
    return [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]


def _trace(out):
    return [(r["kind"], r["arch"], r["score"]) for r in _journal(out)]


@pytest.mark.parametrize("strategy", SAMPLED)
def test_budget_held_reports_and_seed_reproduces(micro_table, budget, strategy, tmp_path):
    cfg = _cfg(micro_table, budget, strategy)
    result, summary = run_strategy(cfg, tmp_path / "a")
    journal = _journal(tmp_path / "a")
    evaluated = [r for r in journal if r["kind"] != "rejected"]
    assert evaluated and all(r["loop_ms"] <= budget for r in evaluated)
    assert result.estimate.loop_ms <= budget and summary["table"]["loop_ms"] <= budget
    assert summary["evaluations"] == _expected_evaluations(cfg) == sum(r["kind"] == "quality" and not r["cached"] for r in journal)
    assert summary["wall_s"] > 0 and summary["proposals"] == len(journal)
    best = max((r for r in journal if r["kind"] == "quality"), key=lambda r: r["score"])
    assert summary["best_score"] == best["score"] and result.subnet.choices == best["arch"]
    if strategy == "area":
        assert summary["proxy_evaluations"] == cfg.area.pool
    run_strategy(cfg, tmp_path / "b")
    assert _trace(tmp_path / "a") == _trace(tmp_path / "b")
    run_strategy(_cfg(micro_table, budget, strategy, seed=1), tmp_path / "c")
    assert _trace(tmp_path / "a") != _trace(tmp_path / "c")


@pytest.mark.parametrize("strategy", SAMPLED)
def test_resume_after_a_kill_equals_the_uninterrupted_run(micro_table, budget, strategy, tmp_path):
    cfg = _cfg(micro_table, budget, strategy)
    full, _ = run_strategy(cfg, tmp_path / "full")
    killed = tmp_path / "killed"
    killed.mkdir()
    shutil.copy(tmp_path / "full" / "config.json", killed / "config.json")
    lines = (tmp_path / "full" / "evaluations.jsonl").read_text().splitlines(keepends=True)
    cut = len(lines) // 2
    (killed / "evaluations.jsonl").write_text("".join(lines[:cut]) + lines[cut][: len(lines[cut]) // 2])  # a torn last line
    with pytest.raises(RcaiError, match="exists"):
        run_strategy(cfg, killed)
    resumed, summary = run_strategy(cfg, killed, resume=True)
    assert _trace(killed) == _trace(tmp_path / "full")
    assert resumed.subnet.choices == full.subnet.choices
    assert summary["evaluations"] == _expected_evaluations(cfg)


def test_resume_refuses_another_config(micro_table, budget, tmp_path):
    run_strategy(_cfg(micro_table, budget, "random"), tmp_path / "r")
    with pytest.raises(RcaiError, match="different config"):
        run_strategy(_cfg(micro_table, budget, "random", seed=5), tmp_path / "r", resume=True)


def test_a_run_of_an_earlier_release_resumes(micro_table, budget, tmp_path):
    """A config.json written before options were added (here: force, darts) or moved (halving's,
    evolution's, area's and rl's, once flat fields) resumes: the stored config is read with today's
    keys and defaults, and rewritten as today's."""
    cfg = _cfg(micro_table, budget, "evolution")
    first, _ = run_strategy(cfg, tmp_path / "r")
    path = tmp_path / "r" / "config.json"
    old = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in old.items() if k not in ("force", "darts")}))
    again, _ = run_strategy(cfg, tmp_path / "r", resume=True)
    assert again.subnet.choices == first.subnet.choices and json.loads(path.read_text()) == old
    moved = ("force", "darts", "halving", "evolution", "area", "rl")
    from rcai.search.config import FLAT_KEYS

    halving = {k: v for k, v in old["halving"].items() if k in FLAT_KEYS}  # options added since (train_device, ...) were never flat
    flat = {**{k: v for k, v in old.items() if k not in moved}, **halving, **old["evolution"],  # the options were flat fields
            "area_pool": old["area"]["pool"], "area_proxy": old["area"]["proxy"], "reward": old["rl"]["reward"], "gamma": old["rl"]["gamma"],
            "alpha": old["rl"]["alpha"], "rl_lr": old["rl"]["lr"]}
    assert flat["population"] == 4 and flat["area_pool"] == 8  # not the defaults: the values really travel
    path.write_text(json.dumps(flat))
    assert run_strategy(cfg, tmp_path / "r", resume=True)[0].subnet.choices == first.subnet.choices and json.loads(path.read_text()) == old
    path.write_text(json.dumps({**{k: v for k, v in old.items() if k != "darts"}, "seed": 5}))
    with pytest.raises(RcaiError, match=r"different config \(seed\)"):
        run_strategy(cfg, tmp_path / "r", resume=True)


def test_impossible_budget_is_refused_before_the_run_folder(micro_table, tmp_path):
    with pytest.raises(RcaiError, match="no subnet meets the latency budget"):
        run_strategy(_cfg(micro_table, 1e-6, "evolution"), tmp_path / "x")
    assert not (tmp_path / "x" / "config.json").exists()


def test_reward_forms_of_the_seeds():
    c = RLOptions(gamma=-0.07, alpha=0.5)
    assert REWARDS.get("hard")(0.8, 11.0, 10.0, c) == 0 and REWARDS.get("hard")(0.8, 9.0, 10.0, c) == 0.8
    assert REWARDS.get("soft")(0.8, 20.0, 10.0, c) == pytest.approx(0.8 * 2 ** -0.07)
    assert REWARDS.get("soft")(0.8, 5.0, 10.0, c) > 0.8  # MNAS: a faster model earns a little more
    assert REWARDS.get("linear")(0.8, 5.0, 10.0, c) == pytest.approx(0.5 * 0.8 + 0.5 * 0.5)


@pytest.mark.parametrize("reward", ("hard", "linear"))
def test_rl_learns_to_stay_within_the_budget(micro_table, budget, reward, tmp_path):
    """Over-budget samples are rejected unevaluated; the policy learns where the budget is, so the
    second half of its proposals is rejected less often than the first."""
    _, summary = run_strategy(_cfg(micro_table, budget, "rl", rl=RLOptions(reward=reward, lr=0.5), evaluations=60), tmp_path / reward)
    journal = _journal(tmp_path / reward)
    half = len(journal) // 2
    rate = lambda rs: sum(r["kind"] == "rejected" for r in rs) / len(rs)  # noqa: E731
    assert summary["rejected"] > 0 and rate(journal[half:]) < rate(journal[:half])


def _seam_cfg(table, budget, strategy, tmp_path):
    """Each registered strategy at its smallest real size (darts: 4 supernet steps; halving: 2-step
    rungs; bo: 2-step rungs, two trainings' budget; knapsack: a quality model fitted on planted records of micro subnets)."""
    from rcai.presets import get_preset
    from rcai.proxies.additive import AdditiveQuality
    from rcai.search.config import DartsOptions, HalvingOptions
    from rcai.space.space import SearchSpace
    from rcai.train.evaluate import EvalConfig
    from rcai.train.protocol import SIGNAL, TrainProtocol

    kw = {}
    if strategy == "darts":
        kw["darts"] = DartsOptions(steps=4, warmup_steps=0, batch_size=2, finetune_steps=1, ckpt_every=2, log_every=1,
                                   eval=EvalConfig(steps=2, max_images=1))
    elif strategy == "halving":
        kw["halving"] = HalvingOptions(protocol=TrainProtocol(steps=2, batch_size=2, lr=SIGNAL.lr, ema=SIGNAL.ema, eval_at=(1, 2)), rungs=(1, 2),
                                       initial=2, brackets=1, jobs=1)
    elif strategy == "bo":
        from rcai.search.config import BOOptions

        kw["halving"] = HalvingOptions(protocol=TrainProtocol(steps=2, batch_size=2, lr=SIGNAL.lr, ema=SIGNAL.ema, eval_at=(1, 2)), rungs=(1, 2), jobs=1)
        kw["bo"] = BOOptions(trainings=2.0, initial=2, pool=8)
    elif strategy == "knapsack":
        import random

        micro = get_preset("micro")
        space, rng = SearchSpace.of(micro), random.Random(0)
        recs = [{"choices": a, "seed": 0, "quality": 0.1 * sum(op == "conv3x3" for op in a.values())}
                for a in (space.random_arch(rng) for _ in range(12))]
        model = tmp_path / "q.json"
        AdditiveQuality.fit(micro, recs).save(model)
        kw.update(proxy="quality-model", proxy_config=ProxyConfig(quality_model=str(model)))
    elif strategy == "oneshot":  # a micro supernet trained 4 steps, its predictor fitted on 8 subnets
        from rcai.oneshot.config import SupernetConfig
        from rcai.oneshot.inherited import fit_beside
        from rcai.oneshot.train import train_supernet
        from rcai.search.config import OneShotOptions

        sn = tmp_path / "supernet"
        train_supernet(SupernetConfig(preset="micro", cost_table=table, steps=4, batch_size=2, eval_at=(4,), ckpt_every=2, device="cpu"), sn, progress=False)
        fit_beside(sn / "supernet.pt", 8, device="cpu")
        kw["oneshot"] = OneShotOptions(supernet=str(sn / "supernet.pt"), candidates=2, train_device="cpu")
    return _cfg(table, budget, strategy, **kw)


@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_every_registered_strategy_runs_behind_the_one_seam(micro_table, budget, strategy, tmp_path):
    """`run_strategy` runs every strategy, DARTS included: the pick is within the budget by the
    table, subnet.json and result.json agree with the returned result, and a second run of the
    same config (resume of a finished run) gives the same subnet."""
    from rcai.io import read_json
    from rcai.space.subnet import SubnetSpec

    cfg = _seam_cfg(micro_table, budget, strategy, tmp_path)
    result, summary = run_strategy(cfg, tmp_path / "run")
    assert result.estimate.loop_ms <= budget * (1 + 1e-9) and summary["table"]["loop_ms"] <= budget * (1 + 1e-9)
    assert SubnetSpec.load(tmp_path / "run" / "subnet.json").choices == result.subnet.choices == summary["choices"]
    stored = read_json(tmp_path / "run" / "result.json")
    assert stored["strategy"] == strategy and stored["subnet_hash"] == result.subnet.hash and stored["selection"] == result.selection
    again, _ = run_strategy(cfg, tmp_path / "run", resume=True)
    assert again.subnet.choices == result.subnet.choices


def test_a_darts_run_of_an_earlier_release_resumes(micro_table, budget, tmp_path):
    """Before DARTS was one strategy among the others its run folder held the bilevel engine's own flat
    config (no `strategy`; DartsOptions' fields beside the shared ones; `data_dir`). Such a folder
    resumes with today's StrategyConfig, which rewrites it as today's; a changed option is refused."""
    from dataclasses import fields, replace

    from rcai.search.config import FLAT_KEYS, DartsOptions
    from rcai.train.evaluate import EvalConfig

    opts = DartsOptions(steps=4, warmup_steps=0, batch_size=2, finetune_steps=1, ckpt_every=2, log_every=1, eval=EvalConfig(steps=2, max_images=1))
    cfg = StrategyConfig(strategy="darts", preset="micro", cost_table=micro_table, latency_budget_ms=budget, steps_per_sample=10, seed=3, darts=opts)
    path = tmp_path / "r" / "config.json"
    path.parent.mkdir()
    flat = {"preset": "micro", "cost_table": micro_table, "predictor": None, "softmax": "gdas", "penalty": "auto", "latency_budget_ms": budget,
            "steps_per_sample": 10, "lambda_latency": 1.0, "mu_rate": 0.05, "mu_max": 2.0, "lambda_flops": 0.0, "data_weight": 1.0, "steps": 4,
            "warmup_steps": 0, "lr_weights": 2e-3, "lr_alpha": 3e-2, "tau_max": 20.0, "tau_min": 0.08, "batch_size": 2, "finetune_steps": 1,
            "finetune_lr_schedule": "cosine", "seed": 3, "data_dir": None, "ckpt_every": 2, "log_every": 1, "force": False,
            "eval": {"sampler": "ddim", "steps": 2, "max_images": 1, "seed": 0}}  # what the earlier release wrote for this run
    path.write_text(json.dumps(flat))  # killed before its first checkpoint: the resume runs it whole
    result, _ = run_strategy(cfg, tmp_path / "r", resume=True)
    assert result.estimate.loop_ms <= budget * (1 + 1e-9) and json.loads(path.read_text()) == json.loads(json.dumps(cfg.to_dict()))
    path.write_text(json.dumps({**flat, "softmax": "simple"}))
    with pytest.raises(RcaiError, match=r"different config \(darts\)"):
        run_strategy(cfg, tmp_path / "r", resume=True)
    moved = StrategyConfig.from_dict(StrategyConfig.migrate({**flat, "data_dir": "photos", "softmax": "paired"}))
    assert moved == replace(cfg, proxy_config=ProxyConfig(data_dir="photos"), darts=replace(opts, softmax="paired"))
    assert not set(FLAT_KEYS) & {f.name for f in fields(StrategyConfig)}  # an old flat key never shadows one of today's


def test_cli_search_killed_and_resumed_equals_uninterrupted(micro_table, budget, tmp_path):
    """A real `rcai search --strategy evolution` process is SIGKILLed mid-run, resumed with --resume,
    and its journal equals an uninterrupted run of the same config.json."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from rcai.io import read_json

    out = tmp_path / "s"
    args = [sys.executable, "-m", "rcai", "search", "--preset", "micro", "--cost-table", micro_table, "--strategy", "evolution",
            "--proxy", "grasp", "--evaluations", "16", "--sample-steps", "10", "--latency-budget-ms", str(budget), "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal, deadline = out / "evaluations.jsonl", time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (journal.exists() and journal.read_text().count("\n") >= 3):
        time.sleep(0.02)
    assert proc.poll() is None, "the search ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert journal.read_text().count("\n") >= 3
    done = subprocess.run(args + ["--resume", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["evaluations"] == 16 and summary["table"]["loop_ms"] <= budget
    cfg = StrategyConfig.from_dict(read_json(out / "config.json"))
    run_strategy(cfg, tmp_path / "uninterrupted")
    assert _trace(out) == _trace(tmp_path / "uninterrupted")


@pytest.fixture(scope="module")
def micro_quality(tmp_path_factory, micro):
    """A quality model of micro with planted per-op effects (exact: no noise)."""
    import random

    from rcai.proxies.additive import AdditiveQuality
    from rcai.space.space import SearchSpace

    planted = {"conv3x3": 0.03, "conv5x5": 0.02, "dwsep3x3": -0.04, "narrow3x3": 0.01, "attention": -0.05}
    space, rng = SearchSpace.of(micro), random.Random(0)
    recs = [{"choices": a, "quality": 0.5 + sum(planted.get(op, 0.0) for op in a.values())} for a in (space.random_arch(rng) for _ in range(40))]
    path = tmp_path_factory.mktemp("quality") / "quality-micro.json"
    AdditiveQuality.fit(micro, recs, resamples=50).save(path)
    return str(path)


def test_knapsack_is_the_exact_optimum_of_an_additive_model(micro_table, budget, micro_quality, tmp_path):
    """One evaluation, within the budget, and no worse than evolution with 200 evaluations of the same model."""
    from rcai.cost.load import load_cost_model
    from rcai.proxies.additive import AdditiveQuality

    q = ProxyConfig(quality_model=micro_quality)
    ks, summary = run_strategy(_cfg(micro_table, budget, "knapsack", proxy="quality-model", proxy_config=q), tmp_path / "k")
    evo, _ = run_strategy(_cfg(micro_table, budget, "evolution", proxy="quality-model", proxy_config=q, evaluations=200), tmp_path / "e")
    model = AdditiveQuality.load(micro_quality)
    assert summary["evaluations"] == 1 and ks.estimate.loop_ms <= budget
    assert model(ks.subnet.choices) >= model(evo.subnet.choices) - 1e-12
    # no budget: the best op in every slot, whatever it costs (attention and dwsep never, conv3x3 everywhere)
    free, _ = run_strategy(_cfg(micro_table, None, "knapsack", proxy="quality-model", proxy_config=q), tmp_path / "f")
    table = load_cost_model(micro_table, ks.subnet.preset)
    assert set(free.subnet.choices.values()) == {"conv3x3", "gnconv"} and table.space.validate(free.subnet.choices)


def test_knapsack_refuses_a_non_additive_estimator(micro_table, budget, tmp_path):
    with pytest.raises(RcaiError, match="additive quality estimator"):
        run_strategy(_cfg(micro_table, budget, "knapsack", proxy="params"), tmp_path / "k")


def test_cli_quality_collect_fit_and_knapsack_search(micro_table, budget, tmp_path):
    """Real processes end to end on micro: train 4 random subnets from scratch (a few steps), fit the
    model, and search with it; a second collect is a no-op (every subnet already recorded)."""
    import subprocess
    import sys

    rcai = [sys.executable, "-m", "rcai"]
    data = tmp_path / "data"
    collect = rcai + ["quality", "collect", "--preset", "micro", "--cost-table", micro_table, "--frac", "0.6", "--frac", "0.9",
                      "--per-frac", "2", "--steps", "3", "--out", str(data)]
    first = subprocess.run(collect, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    lines = (data / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all("quality" in json.loads(x) for x in lines)
    again = subprocess.run(collect, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and (data / "results.jsonl").read_text().splitlines() == lines
    model = tmp_path / "q.json"
    fit = subprocess.run(rcai + ["quality", "fit", str(data / "results.jsonl"), "--preset", "micro", "--out", str(model)], capture_output=True, text=True)
    assert fit.returncode == 0 and "leave-one-out" in fit.stdout, fit.stderr
    search = subprocess.run(rcai + ["search", "--preset", "micro", "--cost-table", micro_table, "--strategy", "knapsack", "--quality-model", str(model),
                                    "--sample-steps", "10", "--latency-budget-ms", str(budget), "--out", str(tmp_path / "s"), "--json"],
                            capture_output=True, text=True, timeout=120)
    assert search.returncode == 0, search.stderr
    assert json.loads(search.stdout)["table"]["loop_ms"] <= budget
    bad = subprocess.run(rcai + ["quality", "fit", str(tmp_path / "missing.jsonl"), "--out", str(model)], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
