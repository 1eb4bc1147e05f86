"""rcai/evaluate with real runs: the matched-latency baselines on the shipped table, the journal
after a torn line, one training job of the micro preset, the loop timing's cache, the reuse of an
earlier run's figures; and the paired statistics of rcai/stats.py against hand-computed values."""
import csv
import math
import statistics

import pytest

from rcai.cost.load import load_cost_model
from rcai.evaluate import JobConfig, MatchedLatency, append, finished, measure_loops, records, run_all, run_job, seed_pairs, uniform_arch, worker
from rcai.evaluate.journal import todo
from rcai.evaluate.reuse import earlier_training, reuse_rows
from rcai.search.config import DartsOptions
from rcai.space.subnet import SubnetSpec
from rcai.stats import beyond_noise_sd, ci95, expected_max_normal, seed_noise_sd
from rcai.train.evaluate import EvalConfig

TABLE = "latency_tables/cpu-tiny.csv"


@pytest.fixture(scope="module")
def at(tiny):
    return MatchedLatency(load_cost_model(TABLE, tiny, warn=lambda m: None), 50)


# -- baselines --------------------------------------------------------------------------------------

def test_random_subnets_lie_within_the_tolerance_and_are_seeded(at):
    target = at.target(0.6)
    a = at.random(0.6, 4, seed=600)
    assert len({tuple(sorted(x.items())) for x in a}) == 4
    assert all(abs(at.loop(x) / target - 1) <= 0.05 for x in a)
    assert at.random(0.6, 4, seed=600) == a
    assert at.random(0.6, 4, seed=601) != a
    narrow = at.random(0.6, 2, seed=600, tol=0.01)
    assert all(abs(at.loop(x) / target - 1) <= 0.01 for x in narrow)


def test_cheapest_base_and_uniform_subnets(at, tiny):
    assert at.frac(at.base) == 1.0 and at.target(0.5) == pytest.approx(0.5 * at.loop(at.base))
    assert at.loop(at.cheapest) <= min(at.loop(x) for x in at.random(0.5, 3, seed=1))
    for op, arch in at.uniforms():
        assert arch == uniform_arch(at.space, op)
        assert all(v == op or op not in at.space._slot_index[k].choices for k, v in arch.items())
    assert uniform_arch(at.space, tiny.gnconv_ops[0]) == at.base
    op, arch = at.uniform_near(at.frac(uniform_arch(at.space, "skip")))
    assert op == "skip"  # a budget that a uniform subnet hits exactly picks it
    assert at.uniform_near(0.01) is None  # no uniform subnet within 15 %


# -- journal ----------------------------------------------------------------------------------------

def test_the_journal_resumes_after_a_torn_line_and_skips_finished_jobs(tmp_path):
    log = tmp_path / "results.jsonl"
    assert records(log) == [] and finished(log) == []
    for rec in ({"id": "a", "quality": 1.0}, {"id": "b", "error": "ValueError: x"}, {"id": "c", "reuse_check": {}}):
        append(log, rec)
    with open(log, "a") as f:
        f.write('{"id": "d", "qual')  # a kill mid-write
    assert [r["id"] for r in records(log)] == ["a", "b", "c"]
    assert [r["id"] for r in finished(log)] == ["a"]
    append(log, {"id": "e", "quality": 2.0})
    assert log.read_text().count("\n") == 4 and '"qual\n' not in log.read_text()  # the torn line dropped, not glued
    done = {r["id"]: r for r in finished(log)}
    jobs = [{"id": i} for i in "abcde"]
    assert [j["id"] for j in todo(jobs, done)] == ["b", "c", "d"]


# -- one job ----------------------------------------------------------------------------------------

def test_one_training_job_of_the_protocol(tmp_path, micro):
    from rcai.space.space import SearchSpace

    cfg = JobConfig(out=str(tmp_path), preset="micro", train_steps=2, batch=2, eval=EvalConfig(steps=1, max_images=1))
    arch = SearchSpace.of(micro).base_arch()
    job = dict(id="random-0.5-0", method="random", budget_frac=0.5, seed=0, arch=arch)
    rec = run_job(job, cfg)
    assert rec["arch"] == SubnetSpec(micro, arch).hash and rec["choices"] == arch == job["arch"]
    assert {"quality", "quality_lo", "quality_hi", "psnr_gain_db", "denoise_mse", "params", "seconds"} <= set(rec)
    assert rec["quality_lo"] <= rec["quality"] <= rec["quality_hi"] and rec["params"] > 0
    assert (tmp_path / job["id"] / "train" / "metrics.json").exists()
    bad = worker(({**job, "id": "bad", "arch": {"no.such.slot": "conv3x3"}}, cfg))
    assert set(bad) == {"id", "error"} and bad["id"] == "bad"


def test_a_pool_of_jobs_journals_each_and_a_rerun_does_only_the_failed(tmp_path, micro):
    from rcai.space.space import SearchSpace

    cfg = JobConfig(out=str(tmp_path), preset="micro", train_steps=2, batch=2, eval=EvalConfig(steps=1, max_images=1))
    good = dict(id="base-s0", method="base", budget_frac=1.0, seed=0, arch=SearchSpace.of(micro).base_arch())
    bad = dict(id="bad-s0", method="base", budget_frac=1.0, seed=0, arch={"no.such.slot": "conv3x3"})
    log, done, said = tmp_path / "results.jsonl", {}, []
    run_all([good, bad], cfg, log, 1, done, say=said.append)
    assert sorted(r["id"] for r in records(log)) == ["bad-s0", "base-s0"] and list(done) == ["base-s0"] and len(said) == 2
    assert [r["id"] for r in finished(log)] == ["base-s0"]
    assert [j["id"] for j in todo([good, bad], {r["id"]: r for r in finished(log)})] == ["bad-s0"]


def test_job_config_takes_the_benchmarks_options():
    import argparse

    cfg = JobConfig.from_args(argparse.Namespace(out="o", train_steps=3, lr=1e-3, estimator="zen", softmax="simple", penalty="budget"))
    assert (cfg.out, cfg.train_steps, cfg.lr, cfg.batch, cfg.reuse) == ("o", 3, 1e-3, 8, None)
    assert (cfg.darts.softmax, cfg.darts.penalty, cfg.darts.steps) == ("simple", "budget", DartsOptions().steps)  # into the searches' group
    assert JobConfig.from_dict(cfg.to_dict()) == cfg and JobConfig.from_dict({}) == JobConfig()


# -- timing -----------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:no weights given")
def test_loop_timing_measures_each_subnet_once_and_keeps_earlier_figures(tmp_path, micro):
    from rcai.space.space import SearchSpace

    space = SearchSpace.of(micro)
    a, b = space.base_arch(), uniform_arch(space, micro.gnconv_ops[-1])
    rec = lambda x: {"arch": SubnetSpec(micro, x).hash, "choices": x}  # noqa: E731
    first = measure_loops([rec(a), rec(a)], tmp_path, steps=2, rounds=2, preset="micro")
    assert list(first) == [rec(a)["arch"]] and first[rec(a)["arch"]]["median_ms"] > 0
    second = measure_loops([rec(a), rec(b)], tmp_path, steps=2, rounds=2, preset="micro")
    assert second[rec(a)["arch"]] == first[rec(a)["arch"]]  # from timing.json, not measured again
    assert set(second) == {rec(a)["arch"], rec(b)["arch"]}


# -- reuse ------------------------------------------------------------------------------------------

def test_reuse_imports_matching_rows_and_retrains_the_named_ones(tmp_path, micro):
    from rcai.space.space import SearchSpace

    space = SearchSpace.of(micro)
    a, b = space.base_arch(), uniform_arch(space, micro.gnconv_ops[-1])
    h = lambda x: SubnetSpec(micro, x).hash  # noqa: E731
    with open(tmp_path / "old.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["budget_frac", "method", "seed", "arch", "quality", "psnr_gain_db"])
        w.writeheader()
        w.writerows([dict(budget_frac=1.0, method="base", seed=0, arch=h(a), quality=0.5, psnr_gain_db=1.0),
                     dict(budget_frac=0.6, method="searched", seed=0, arch=h(b), quality=0.7, psnr_gain_db="")])
    reuse = f"{tmp_path}/old.csv=then"
    jobs = [dict(id="base-s0", method="base", budget_frac=1.0, seed=0, arch=a), dict(id="base-s1", method="base", budget_frac=1.0, seed=1, arch=a),
            dict(id="rank-s0", method="ranking", budget_frac=1.0, seed=0, arch=b), dict(id="searched-0.6-s0", method="searched", budget_frac=0.6, seed=0)]
    rows = reuse_rows(jobs, reuse, [], {}, micro)
    assert [(r["id"], r["quality"], r["reused"], r["arch"]) for r in rows] == [("base-s0", 0.5, "then", h(a))]
    assert reuse_rows(jobs, reuse, ["base-s0"], {}, micro) == [{"id": "base-s0", "reuse_check": rows[0]}]
    assert reuse_rows(jobs, reuse, [], {"base-s0": {}}, micro) == []
    assert earlier_training(reuse, jobs[3], h(b)) == {"reused": "then", "search_reproduced": True, "quality": 0.7}
    assert earlier_training(reuse, {**jobs[3], "budget_frac": 0.45}, h(b)) is None  # another budget
    assert earlier_training(None, jobs[3], h(b)) is None


# -- statistics -------------------------------------------------------------------------------------

def test_ci95_by_hand():
    assert ci95([1.0, 2.0, 3.0]) == pytest.approx(4.30 * 1.0 / math.sqrt(3))
    assert ci95([0.0, 2.0]) == pytest.approx(12.71 * math.sqrt(2) / math.sqrt(2))
    xs = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # beyond the t table: 2.0
    assert ci95(xs) == pytest.approx(2.0 * statistics.stdev(xs) / math.sqrt(7))
    assert math.isnan(ci95([1.0]))


def test_seed_noise_by_hand():
    a, b = [1.0, 2.0, 3.0], [0.0, 2.0, 2.0]  # differences 1, 0, 1: variance 1/3
    assert seed_noise_sd(a, b) == pytest.approx(math.sqrt(1 / 6))
    assert seed_noise_sd(a, [x + 0.4 for x in b]) == pytest.approx(math.sqrt(1 / 6))  # a lucky seed's common shift cancels
    assert beyond_noise_sd(5.0, 3.0) == pytest.approx(4.0) and beyond_noise_sd(3.0, 5.0) == 0.0


def test_expected_max_of_normals_by_hand():
    assert expected_max_normal(1) == pytest.approx(0.0, abs=1e-9)
    assert expected_max_normal(2) == pytest.approx(1 / math.sqrt(math.pi), rel=1e-6)
    assert expected_max_normal(3) == pytest.approx(1.5 / math.sqrt(math.pi), rel=1e-6)
    assert expected_max_normal(8) == pytest.approx(1.4236, abs=1e-4)


def test_seed_pairs_keep_fixed_architectures_with_both_seeds():
    rows = [dict(method="base", seed=0, arch="x"), dict(method="base", seed=1, arch="x"), dict(method="base", seed=2, arch="x"),
            dict(method="ranking", seed=0, arch="y"), dict(method="random", seed=0, arch="z"), dict(method="random", seed=1, arch="z")]
    pairs = seed_pairs(rows)
    assert [(p[0]["arch"], p[1]["arch"], sorted(p)) for p in pairs] == [("x", "x", [0, 1])]
