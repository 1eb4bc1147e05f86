"""The multi-fidelity strategy (rcai/search/strategies/halving.py) with real trainings of micro
subnets: it respects the budget, is seeded, promotes only what its rungs measured best, resumes after
a SIGKILL to the uninterrupted result, and runs on a Ray cluster started here."""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from rcai.cost.load import load_cost_model
from rcai.cost.profile import ProfileConfig, profile_ops
from rcai.targets import TargetSpec
from rcai.search.config import HalvingOptions
from rcai.search.strategies import StrategyConfig
from rcai.search.strategies.run import run_strategy
from rcai.targets import MeasureConfig
from rcai.train.protocol import SIGNAL, TrainProtocol

FAST = MeasureConfig(warmup=1, min_repeats=3, max_repeats=5, chunk=3, max_seconds=0.5)
PROTOCOL = TrainProtocol(steps=4, batch_size=2, lr=SIGNAL.lr, ema=SIGNAL.ema, eval_at=(2, 4))  # what the CLI's --rung 2 --rung 4 --batch-size 2 sets


@pytest.fixture(scope="module")
def setup(tmp_path_factory, micro):
    path = tmp_path_factory.mktemp("table") / "cpu-micro.csv"
    profile_ops(ProfileConfig(preset="micro", target=TargetSpec(threads=1), measure=FAST), path, progress=False)
    table = load_cost_model(str(path), micro)
    cheapest, _ = table.space.extreme_arch(lambda sp: table.op_metric(sp, "latency_ms"), largest=False)
    lo, hi = table.estimate(cheapest, 10).loop_ms, table.estimate(table.space.base_arch(), 10).loop_ms
    return str(path), (lo + hi) / 2


def _cfg(setup, seed: int = 0, **kw):
    """The strategy config; keyword arguments are its HalvingOptions."""
    table, budget = setup
    halving = HalvingOptions(**{**dict(protocol=PROTOCOL, rungs=(2, 4), eta=2, initial=4, brackets=2, jobs=1), **kw})
    return StrategyConfig(strategy="halving", preset="micro", cost_table=table, latency_budget_ms=budget, steps_per_sample=10, seed=seed,
                          halving=halving)


def _journal(out):
    return [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]


def _trace(out):
    return [(r["kind"], json.dumps(r["arch"], sort_keys=True), r["score"]) for r in _journal(out)]


def _session_empties(sid: int, within_s: float) -> bool:
    """No process of session `sid` (the killed search and whatever it started) is left, within `within_s`."""
    deadline = time.time() + within_s
    while time.time() < deadline:
        if not subprocess.run(["pgrep", "-s", str(sid)], capture_output=True, text=True).stdout.split():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    result, summary = run_strategy(_cfg(setup), out)
    return out, result, summary


def test_every_trained_subnet_and_the_pick_are_within_the_budget(setup, reference):
    out, result, summary = reference
    _, budget = setup
    assert all(r["loop_ms"] <= budget * (1 + 1e-9) for r in _journal(out))
    assert summary["table"]["loop_ms"] <= budget * (1 + 1e-9)
    trained = sorted(p.name for p in (out / "trainings").iterdir())
    assert len(trained) == 8  # 2 brackets x 4 candidates, all distinct
    assert any("full trainings" in n for n in summary["notes"])


def test_promotes_only_what_its_rungs_measured_best(reference):
    out, result, _ = reference
    rows = _journal(out)
    for b in range(2):
        bracket = rows[b * 6:(b + 1) * 6]  # 4 at rung 2, then the best 2 at rung 4
        first, last = bracket[:4], bracket[4:]
        assert [r["kind"] for r in first] == ["rung2"] * 4 and [r["kind"] for r in last] == ["quality"] * 2
        best = sorted(first, key=lambda r: -r["score"])[: math.ceil(4 / 2)]
        assert [r["arch"] for r in last] == [r["arch"] for r in best]
    finals = [r for r in rows if r["kind"] == "quality"]
    assert result.subnet.choices == max(finals, key=lambda r: r["score"])["arch"]


def test_seeded_runs_repeat_and_a_second_seed_differs(setup, reference, tmp_path):
    out, _, _ = reference
    run_strategy(_cfg(setup, jobs=2), tmp_path / "again")  # the process pool: same figures as in-process
    assert _trace(tmp_path / "again") == _trace(out)
    run_strategy(_cfg(setup, seed=1, brackets=1), tmp_path / "other")
    assert [a for _, a, _ in _trace(tmp_path / "other")] != [a for _, a, _ in _trace(out)][:6]


def test_resumes_after_sigkill_to_the_uninterrupted_result(setup, reference, tmp_path):
    out, _, _ = reference
    table, budget = setup
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rcai", "search", "--strategy", "halving", "--preset", "micro", "--cost-table", table, "--out", str(run),
           "--latency-budget-ms", repr(budget), "--sample-steps", "10", "--rung", "2", "--rung", "4", "--initial", "4", "--brackets", "1",
           "--jobs", "2", "--batch-size", "2", "--json"]
    env = dict(os.environ)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
    journal = run / "evaluations.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (journal.exists() and len(journal.read_text().splitlines()) >= 4):
        time.sleep(0.05)  # the first rung is journalled: the kill lands in the second rung's trainings
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _session_empties(proc.pid, within_s=20), "workers outlived the killed search"
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _trace(run) == _trace(out)[:6]  # the uninterrupted run's first bracket (in-process, one job at a time)


def test_runs_real_trainings_on_a_ray_cluster(setup, reference, tmp_path):
    """A Ray head started here (its own session, temp dir and port; stopped by its process group, so no
    other cluster on the machine is touched) runs the first bracket's trainings: the figures equal
    the local run's."""
    pytest.importorskip("ray")
    import socket
    import tempfile

    ray_bin = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="/tmp/rh")  # short: Ray's unix sockets live under it
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                             "--disable-usage-stats", f"--temp-dir={temp}", "--node-ip-address=127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None, "ray start --head exited"
            time.sleep(0.2)
        out, _, _ = reference
        run_strategy(_cfg(setup, executor="ray", ray_address=f"127.0.0.1:{port}", jobs=2, brackets=1), tmp_path / "ray")
        assert _trace(tmp_path / "ray") == _trace(out)[:6]
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_kill_inside_the_rung_transition_resumes(micro, tmp_path):
    """The fixed kill point of issue 33: a rung-2 survivor's extension to rung 4 has rewritten its
    config.json (steps 4) but logged nothing of rung 4, and metrics.json is rung 2's. Before the fix
    train_to() took the folder for finished at rung 4 and train_rung raised KeyError: 4 on every resume."""
    from rcai.space.space import SearchSpace
    from rcai.search.executors import make_executor
    from rcai.space.subnet import SubnetSpec
    from rcai.train.protocol import rung_qualities
    from rcai.io import atomic_write_json, read_json

    spec = SubnetSpec(micro, dict(SearchSpace(micro).base_arch()))
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    with make_executor("local", 1) as ex:
        train_rung = lambda run, rung: rung_qualities(ex, [(spec, run)], PROTOCOL, rung, seed=0)[0]  # noqa: E731
        train_rung(killed, 2)
        cfg_path = killed / "train" / "config.json"
        atomic_write_json(cfg_path, {**read_json(cfg_path, expect=dict), "steps": 4, "eval_at": [2, 4]})  # what start() writes first
        q = train_rung(killed, 4)
        assert q == train_rung(whole, 4)  # the resumed extension is the uninterrupted run
    assert read_json(killed / "train" / "metrics.json", expect=dict)["train_steps"] == 4


@pytest.mark.parametrize("damage", ["garbage appended", "middle line corrupted"])
def test_a_corrupt_journal_line_is_dropped_with_a_note_and_never_duplicated(setup, reference, tmp_path, capsys, damage):
    """Before the fix the replay stopped at the bad line and every --resume appended the lines after it
    again (12 -> 20 -> 30 lines): now the bad line and those after it are dropped (one note) and redone."""
    out, _, _ = reference
    run = tmp_path / "run"
    shutil.copytree(out, run)
    journal = run / "evaluations.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    if damage == "garbage appended":
        journal.write_text("".join(lines) + "}{ not json\n")
    else:
        journal.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2] + "#\n" + "".join(lines[4:]))
    for _ in range(2):
        run_strategy(_cfg(setup), run, resume=True)
        assert _trace(run) == _trace(out)
    err = capsys.readouterr().err
    assert err.count("is not a journal record") == 1 and f"line {len(lines) + 1 if damage == 'garbage appended' else 4}" in err, err
