"""`rcai schedule search` (rcai/search/schedule_search.py): over a micro supernet trained a few steps
(its predictor fitted on 4 inherited evaluations) and a formula cost table, the found schedule is
within the budget by the table, no worse by the loop metric than every single-subnet schedule it
judged, a rerun answers from its journal, the CLI's schedule.json is accepted by `rcai export
--schedule`, and every refusal is one line, exit 2, nothing written."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from helpers import run_cli
from test_cost import write_table

from rcai.cost.load import load_cost_model
from rcai.cost.schedule import schedule_cost
from rcai.search.schedule_search import JOURNAL, ScheduleSearchConfig, search_schedule
from rcai.space.space import SearchSpace
from rcai.space.step_schedule import StepSchedule

STEPS = 4
SMALL = dict(steps=STEPS, seeds=2, crops=2, evaluations=8, levels=3)


@pytest.fixture(scope="module")
def setup(micro, tmp_path_factory):
    """(folder with supernet.pt + predictor.json, cost table, its cheapest and base per-step ms)."""
    from rcai.oneshot.config import SupernetConfig
    from rcai.oneshot.inherited import fit_beside
    from rcai.oneshot.train import train_supernet

    root = tmp_path_factory.mktemp("ss")
    table = root / "cpu-micro.csv"
    write_table(table, micro)
    torch.set_num_threads(1)
    train_supernet(SupernetConfig(preset="micro", cost_table=str(table), steps=4, batch_size=2, eval_at=(), ckpt_every=2, device="cpu"),
                   root / "run", progress=False)
    fit_beside(root / "run" / "supernet.pt", 4, device="cpu")
    model = load_cost_model(table, micro)
    space = SearchSpace.of(micro)
    cheapest = model.estimate(space.extreme_arch(lambda s: model.op_metric(s, "latency_ms"), largest=False)[0]).latency_ms
    return root / "run", table, cheapest, model.estimate(space.base_arch()).latency_ms


def _budget(setup) -> float:
    _, _, cheapest, base = setup
    return STEPS * (cheapest + base) / 2  # between the cheapest loop and the base's


def test_search_is_within_budget_no_worse_than_its_singles_and_resumes(micro, setup, tmp_path):
    run, table, _, _ = setup
    cfg = ScheduleSearchConfig(latency_budget_ms=_budget(setup), **SMALL)
    res = search_schedule(run / "supernet.pt", table, cfg, tmp_path / "out")
    found = StepSchedule.load(tmp_path / "out" / "schedule.json")
    loop = schedule_cost(load_cost_model(table, micro), found).loop_ms
    assert loop <= cfg.latency_budget_ms * (1 + 1e-9) and loop == pytest.approx(res["table_loop_ms"])
    singles = [h for h in res["history"] if len(set(h["steps"])) == 1]
    assert singles and all(res["quality"]["sample_psnr"] >= h["sample_psnr"] for h in singles)
    assert res["quality"]["sample_psnr"] == max(h["sample_psnr"] for h in res["history"])
    assert res["best_single"]["quality"]["sample_psnr"] == max(h["sample_psnr"] for h in singles)
    assert all(h["loop_ms"] <= cfg.latency_budget_ms * (1 + 1e-9) for h in res["history"]) and res["evaluations"] >= len(singles)
    assert len(res["quality"]["per_seed_psnr"]) == 2 and found.steps == STEPS
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    assert written["table_loop_ms"] == pytest.approx(loop) and written["schedule"] == json.loads(json.dumps(found.to_dict()))
    # a rerun judges nothing again (its journal answers) and finds the same schedule
    lines = (tmp_path / "out" / JOURNAL).read_text().count("\n")
    again = search_schedule(run / "supernet.pt", table, cfg, tmp_path / "out")
    assert (tmp_path / "out" / JOURNAL).read_text().count("\n") == lines == res["evaluations"]
    assert again["schedule"].to_dict() == res["schedule"].to_dict() and again["quality"] == res["quality"]


def test_cli_schedule_is_exported(monkeypatch, capsys, setup, tmp_path):
    run, table, _, _ = setup
    out = tmp_path / "found"
    code, stdout, err = run_cli(monkeypatch, capsys, "schedule", "search", "--supernet", str(run / "supernet.pt"), "--cost-table", str(table),
                                "--latency-budget-ms", str(_budget(setup)), "--segments", "2", "--boundaries", "0.25", "--sample-steps", str(STEPS),
                                "--evaluations", "6", "--levels", "3", "--seeds", "2", "--crops", "2", "--out", str(out), "--json")
    assert code in (0, None), err
    res = json.loads(stdout)
    # fixed boundaries: every schedule judged changes subnet, if at all, at step 1 only
    assert all(len(set(h["steps"][1:])) == 1 for h in res["history"])
    code, stdout, err = run_cli(monkeypatch, capsys, "export", str(tmp_path / "deployed"), "--schedule", str(out / "schedule.json"),
                                "--supernet", str(run / "supernet.pt"), "--no-verify", "--json")
    assert code in (0, None), err
    assert json.loads(stdout)["step_counts"] == StepSchedule.load(out / "schedule.json").step_counts()


def test_refusals_are_one_line_exit_2_nothing_written(monkeypatch, capsys, setup, tmp_path):
    run, table, cheapest, _ = setup
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run / "supernet.pt", bare / "supernet.pt")  # no predictor.json beside it
    out = tmp_path / "out"

    def refused(*args: str, match: str, supernet=run / "supernet.pt", tab=table) -> None:
        before = sorted(p.name for p in tmp_path.rglob("*"))
        code, _, err = run_cli(monkeypatch, capsys, "schedule", "search", "--supernet", str(supernet), "--cost-table", str(tab), "--out", str(out),
                               "--sample-steps", str(STEPS), *args)
        errors = [line for line in err.splitlines() if not line.startswith("warning:")]  # the formula table is foreign here
        assert code == 2 and len(errors) == 1 and match in errors[0], err
        assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written

    ok = ("--latency-budget-ms", str(_budget(setup)))
    refused("--latency-budget-ms", str(0.9 * STEPS * cheapest), match="below the cheapest schedule's loop")
    refused("--latency-budget-ms", "-1", match="--latency-budget-ms must be a positive finite number")
    refused(*ok, "--segments", "5", match="more segments than the loop's 4 steps")
    refused(*ok, "--boundaries", "0.1", match="a segment of the 4-step loop would be empty")
    refused(*ok, "--boundaries", "0.3,0.6", match="2 segments need 1 fractions, got 2")
    refused(*ok, "--boundaries", "1.5", match="fractions of the loop in (0, 1)")
    refused(*ok, "--boundaries", "half", match="comma-separated fractions")
    refused(*ok, "--seeds", "0", match="--seeds must be a whole number >= 1")
    refused(*ok, match="no predictor.json beside it", supernet=bare / "supernet.pt")
    refused(*ok, match="needs a cost table", tab="counters")
    refused(*ok, match="not a readable supernet file", supernet=table)


def test_cli_defaults_are_the_configs():
    from rcai.cli.schedule import SS

    real = {f.name: f.default for f in dataclasses.fields(ScheduleSearchConfig) if f.default is not dataclasses.MISSING}
    assert SS == real
