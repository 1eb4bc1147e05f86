import json
import subprocess
import sys

import pytest

from rcai.pipeline import PipelineConfig, run_pipeline
from rcai.search.config import DartsOptions, HalvingOptions


def _micro_quality_model(path):
    """A quality model of micro (planted effects: 3x3 convs help, attention hurts)."""
    import random

    from rcai.proxies.additive import AdditiveQuality
    from rcai.presets import get_preset
    from rcai.space.space import SearchSpace

    planted, rng = {"conv3x3": 0.03, "dwsep3x3": -0.04, "attention": -0.05}, random.Random(0)
    space = SearchSpace.of(get_preset("micro"))
    recs = [{"choices": a, "quality": 0.5 + sum(planted.get(op, 0.0) for op in a.values())} for a in (space.random_arch(rng) for _ in range(30))]
    AdditiveQuality.fit(get_preset("micro"), recs, resamples=20).save(path)
    return str(path)


MICRO = {"halving": dict(strategy="halving", halving=HalvingOptions(rungs=(2, 4), initial=3, brackets=1)),
         "darts": dict(strategy="darts", darts=DartsOptions(steps=4, warmup_steps=1, finetune_steps=2))}


@pytest.mark.parametrize("stage", sorted(MICRO))
def test_pipeline_end_to_end_on_micro(tmp_path, stage):
    from rcai.pipeline_search import SEARCH_STAGES

    assert sorted(SEARCH_STAGES.names()) == sorted(MICRO)  # every registered stage runs here
    cfg = PipelineConfig(preset="micro", steps_per_sample=4, rounds=1, eval_images=2, quality_model=_micro_quality_model(tmp_path / "q.json"),
                         **MICRO[stage])
    summary = run_pipeline(cfg, tmp_path / "run", say=lambda m: None, progress=False)
    subnet_dir = "search" if stage == "darts" else "subnet"
    names = {"darts": ("search/subnet.onnx", "search/plots/search.png"), "halving": ("subnet/model.onnx", "search/evaluations.jsonl")}[stage]
    for name in ("report.md", "summary.json", "latency_quality.png", "base/model.onnx", "base/samples.png", f"{subnet_dir}/samples.png",
                 "cpu-micro.csv", "random/model.onnx", *names):
        assert (tmp_path / "run" / name).exists(), name
    assert summary["subnet"]["table_loop_ms"] <= summary["budget_ms"]
    assert summary["base"]["measured_loop_ms"] > 0 and summary["subnet"]["measured_loop_ms"] > 0
    assert summary["subnet"]["bench_psnr_onnx_vs_torch"] >= 50
    assert "table" in summary["subnet"]["estimates"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Measured speed-up" in report and f"{subnet_dir}/samples.png" in report
    assert ("search/plots/search.png" in report) == (stage == "darts")
    assert "cheapest subnet" in report and "bicubic (= zero residual)" in report and "of the budget" in report
    # the verdict against the trivial answers comes first: the cheapest subnet and a random subnet of the pick's latency
    assert "the cheapest subnet" in report.split("Cost table")[0] and "random subnet of its latency" in report.split("Cost table")[0]
    assert abs(summary["random"]["table_loop_ms"] / summary["subnet"]["table_loop_ms"] - 1) <= 0.05
    for name in ("base", "subnet", "cheapest", "predicted", "random"):
        q = summary[name]["quality"]
        assert q["gain_lo"] <= q["gain_db"] <= q["gain_hi"]
    # the deployed loop's output, scored for every model under the same noise seeds (its 4 steps), the pick vs the base paired
    for name in ("base", "subnet", "cheapest", "predicted", "random"):
        lp = summary[name]["loop"]
        assert (lp["steps"], lp["seeds"], len(lp["seed_psnr"])) == (4, 4, 4) and lp["ideal_psnr"] is not None
        assert min(lp["seed_psnr"]) <= lp["sample_psnr"] <= max(lp["seed_psnr"])
    assert summary["loop_delta"]["sample_psnr"] == pytest.approx(summary["subnet"]["loop"]["sample_psnr"] - summary["base"]["loop"]["sample_psnr"])
    assert "The deployed loop's output" in report and "paired over 4 noise seeds" in report
    # every from-scratch model of a halving report: the same training, seed 0; the search trained its candidates under seed 1
    if stage == "halving":
        for name in ("base", "subnet", "cheapest", "random", "predicted"):
            c = json.loads((tmp_path / "run" / name / "config.json").read_text())
            assert (c["steps"], c["seed"], c["lr_schedule"]) == (4, 0, "constant"), name
        assert json.loads((tmp_path / "run" / "search" / "config.json").read_text())["halving"]["train_seed"] == 1
        assert json.loads((tmp_path / "run" / "subnet" / "subnet.json").read_text())["choices"] == \
            json.loads((tmp_path / "run" / "search" / "subnet.json").read_text())["choices"]
        # random search of the search's training cost (2.5 trainings: the best of 2 near the budget, the search's first two candidates,
        # by their training under seed 1 extended to 4 steps), trained again with seed 0
        journal = [json.loads(line) for line in (tmp_path / "run" / "search" / "evaluations.jsonl").read_text().splitlines()]
        rs = json.loads((tmp_path / "run" / "random-search.json").read_text())["choices"]
        assert rs in [r["arch"] for r in journal[:2]] and summary["random_search"]["table_loop_ms"] <= summary["budget_ms"]
        assert json.loads((tmp_path / "run" / "random-search" / "config.json").read_text())["seed"] == 0
        assert "random search of the same training cost (2.5 trainings" in report.split("Cost table")[0]
        assert "the `cpu` protocol" in report and "signal protocol" not in report  # the training device's protocol, by name
    else:
        assert "random_search" not in summary  # darts: its cost is not in trainings
    # the quality model's knapsack pick: within the budget, trained and timed beside the others, in the report
    assert summary["predicted"]["table_loop_ms"] <= summary["budget_ms"] and summary["predicted"]["measured_loop_ms"] > 0
    assert "attention" not in json.loads((tmp_path / "run" / "predicted" / "subnet.json").read_text())["choices"].values()
    assert "quality-model pick" in report
    # the table was profiled on this machine, into the run folder, and the report says how loaded it was
    assert summary["table"] == str(tmp_path / "run" / "cpu-micro.csv") and summary["table_meta"]["host"] == summary["host"]
    assert all(len(summary["load_avg"][k]) == 3 for k in ("start", "before_timing", "end"))
    assert "Load average" in report and f"this run on host `{summary['host']}`" in report
    # resumable: a second run reuses the finished stages
    again = run_pipeline(cfg, tmp_path / "run", say=lambda m: None, progress=False)
    assert again["subnet"]["subnet"] == summary["subnet"]["subnet"]


def test_pipeline_uses_a_given_table_and_profiles_otherwise(tmp_path):
    from rcai.pipeline import find_table

    given = tmp_path / "given.csv"
    given.write_text("not read here\n")
    said = []
    assert find_table(PipelineConfig(preset="micro", cost_table=str(given)), tmp_path, said.append) == given
    assert said == [f"using the given cost table {given}"]


def test_cli_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "rcai", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("space", "train", "sample", "profile", "tables", "search", "quality", "export", "bench", "pipeline", "predictor", "predict"):
        assert cmd in out, cmd


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    for args in (["space", "--preset", "nope"], ["tables", "show", str(tmp_path / "none.csv")],
                 ["search", "--cost-table", str(tmp_path / "none.csv"), "--out", str(tmp_path / "s")],
                 ["pipeline", "--strategy", "nope", "--out", str(tmp_path / "p")], ["pipeline", "--rung", "300", "--out", str(tmp_path / "p")],
                 ["pipeline", "--jobs", "0", "--out", str(tmp_path / "p")]):
        p = subprocess.run([sys.executable, "-m", "rcai", *args], capture_output=True, text=True)
        assert p.returncode == 2, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("error:"), p.stderr
        assert "Traceback" not in p.stderr


def test_space_json_reports_the_report_count():
    out = subprocess.run([sys.executable, "-m", "rcai", "space", "--preset", "rcai-report", "--json"], capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["subnets"] == 944_784


def test_report_says_first_when_a_pick_does_not_beat_the_cheapest_subnet():
    from rcai.report import verdict_lines

    row = lambda q, ms: {"quality": {"gain_db": q}, "measured_loop_ms": ms}  # noqa: E731
    lines = verdict_lines({"cheapest": row(0.378, 64.7), "subnet": row(-0.081, 115.8), "predicted": row(0.5, 117.7)})
    assert lines[0].startswith("**The searched subnet does not beat the cheapest subnet**")
    assert lines[1].startswith("The quality-model pick beats the cheapest subnet: +0.500 dB")
    assert verdict_lines({"subnet": row(0.1, 10.0)}) == []
    lines = verdict_lines({"cheapest": row(0.3, 60.0), "random": row(0.6, 100.0), "subnet": row(0.5, 100.0)})
    assert lines[0].startswith("The searched subnet beats the cheapest subnet: +0.500 dB")
    assert lines[1].startswith("**The searched subnet does not beat the random subnet of its latency**")
    # what the search bought over random search of its training cost comes first, said plainly either way
    lines = verdict_lines({"cheapest": row(0.3, 60.0), "subnet": row(0.5, 100.0), "random_search": row(0.45, 98.0), "search": {"trainings": 3.0}})
    assert lines[0].startswith("**What the search bought**: +0.050 dB over random search of the same training cost (3.0 trainings: the best of 3")
    lines = verdict_lines({"cheapest": row(0.3, 60.0), "subnet": row(0.5, 100.0), "random_search": row(0.6, 98.0), "search": {"trainings": 3.0}})
    assert lines[0].startswith("**The search bought nothing over random search of the same training cost") and "-0.100 dB" in lines[0]
