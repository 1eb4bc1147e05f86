"""Issue 24: the newer commands (`rcai quality collect|fit`, the sample-based and knapsack searches)
keep the old promises. A killed `rcai quality collect` leaves no pool worker behind (real processes,
SIGKILL of the parent alone, its process tree read from /proc) and its rerun resumes at once to the
uninterrupted result; bad options and corrupt files (real files) are one line on stderr, exit 2."""
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from rcai.cost.profile import ProfileConfig, profile_ops
from rcai.targets import TargetSpec
from rcai.errors import RcaiError
from rcai.io import atomic_write_json
from rcai.procs import descendants, start_time
from rcai.search.quality_data import CollectConfig, plan
from rcai.targets import MeasureConfig
from helpers import run_cli  # noqa: E402

FAST = MeasureConfig(warmup=1, min_repeats=3, max_repeats=5, chunk=3, max_seconds=0.5)
RCAI = [sys.executable, "-m", "rcai"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "cpu-micro.csv"
    profile_ops(ProfileConfig(preset="micro", target=TargetSpec(threads=1), measure=FAST), path, progress=False)
    return str(path)


def _one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2 and err.startswith("error: ") and err.strip().count("\n") == 0 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def _wait(cond, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _alive(procs: dict[int, int]) -> list[int]:
    """Those of {pid: start time} still running (the same process, not a reused pid)."""
    return [pid for pid, t in procs.items() if start_time(pid) == t]


# -- 1. a killed collect takes its workers with it ------------------------------------------------
STEPS = 40
COLLECT = ["quality", "collect", "--preset", "micro", "--frac", "0.6", "--frac", "0.9", "--per-frac", "1", "--steps", str(STEPS), "--jobs", "2"]


def _records(out: Path) -> list[dict]:
    return sorted((json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()), key=lambda r: r["id"])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_killed_collect_leaves_no_worker_and_its_rerun_resumes_identically(table, tmp_path):
    """kill -9 of the parent alone (what the OOM killer or a user's `kill -9 PID` does): before the fix
    the pool workers trained on, held their subnet's lock (a rerun was refused) and printed a
    BrokenPipeError traceback when they finished."""
    from rcai.search.quality_data import train_one

    args, out = COLLECT + ["--cost-table", table], tmp_path / "killed"
    p = subprocess.Popen(RCAI + args + ["--out", str(out)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        # both workers are training: each subnet's run folder has logged a step
        _wait(lambda: all((out / q / "train" / "log.jsonl").exists() for q in ("q000", "q001")) or p.poll() is not None, 300, "training")
        assert p.poll() is None, "collect finished before the kill"
        tree = {pid: start_time(pid) for pid in descendants(p.pid)}
        workers = {pid: t for pid, t in tree.items() if "spawn_main" in _cmdline(pid)}
        assert len(workers) == 2, tree
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        _wait(lambda: not _alive(workers), 5, f"the workers {_alive(workers)} to end with their parent")
        _wait(lambda: not _alive(tree), 20, f"the resource tracker {_alive(tree)} to end")
        _, err = p.communicate(timeout=30)  # every writer of the pipe is gone
        assert "Traceback" not in err and "leaked" not in err, err
    finally:
        if p.poll() is None or _alive({pid: start_time(pid) for pid in descendants(p.pid)}):
            os.killpg(p.pid, signal.SIGKILL)
    again = subprocess.run(RCAI + args + ["--out", str(out)], env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "in use by" not in again.stderr, again.stderr
    # the uninterrupted result: what each worker computes, in this process (same seeds, one thread)
    cfg = CollectConfig(preset="micro", cost_table=table, fracs=(0.6, 0.9), per_frac=1, train_steps=STEPS)
    ref = [train_one(job, cfg, tmp_path / "ref") for job in plan(cfg)]
    assert _records(out) == json.loads(json.dumps(ref))  # nothing lost, nothing twice, the uninterrupted figures


def test_pool_workers_die_with_their_parent(tmp_path):
    """The helper itself, in a plain parent: owned_pool's workers end when the parent is SIGKILLed."""
    script = tmp_path / "parent.py"
    script.write_text("import sys, time\nsys.path.insert(0, %r)\nfrom rcai.procs import owned_pool\n"
                      "if __name__ == '__main__':\n    with owned_pool(2) as pool:\n        pool.map_async(time.sleep, [60, 60])\n"
                      "        print('up', flush=True)\n        time.sleep(60)\n" % str(Path(__file__).resolve().parents[1]))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert p.stdout.readline().strip() == "up"
        _wait(lambda: len(descendants(p.pid)) >= 3, 30, "the workers and the resource tracker")
        tree = {pid: start_time(pid) for pid in descendants(p.pid)}
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        _wait(lambda: not _alive(tree), 20, "the workers to end with their parent")
        assert "Traceback" not in p.stderr.read()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)


# -- 2. options at the edge -----------------------------------------------------------------------
@pytest.mark.parametrize("extra, words", [
    (["--jobs", "0"], ["--jobs"]), (["--jobs", "-1"], ["--jobs"]), (["--per-frac", "0"], ["--per-frac"]), (["--steps", "0"], ["--steps"]),
    (["--frac", "inf"], ["fracs"]), (["--frac", "nan"], ["fracs"]), (["--frac", "-0.5"], ["fracs"]),
    (["--frac", "7"], ["outside", "range"]), (["--frac", "0.01"], ["outside", "range"]),
])
def test_collect_options_are_one_line_errors(table, tmp_path, monkeypatch, capsys, extra, words):
    base = ["quality", "collect", "--preset", "micro", "--cost-table", table, "--per-frac", "1", "--steps", "2", "--out", str(tmp_path / "d")]
    if "--frac" not in extra:
        base += ["--frac", "0.6"]
    code, _, err = run_cli(monkeypatch, capsys, *base, *extra)
    _one_line_error(code, err, *words)
    assert not (tmp_path / "d" / "results.jsonl").exists()


@pytest.mark.parametrize("extra, words", [
    (["--evaluations", "0"], ["--evaluations"]), (["--evaluations", "-1"], ["--evaluations"]),
    (["--lr-alpha", "nan"], ["--lr-alpha"]), (["--lr-weights", "-1"], ["--lr-weights"]), (["--lambda-latency", "inf"], ["--lambda-latency"]),
    (["--eval-images", "0"], ["--eval-images"]), (["--latency-budget-ms", "inf"], ["budget"]),
])
def test_search_options_are_one_line_errors(table, tmp_path, monkeypatch, capsys, extra, words):
    code, _, err = run_cli(monkeypatch, capsys, "search", "--preset", "micro", "--cost-table", table, "--sample-steps", "10", "--search-steps", "2",
                           "--finetune-steps", "1", "--batch-size", "2", "--out", str(tmp_path / "s"), *extra)
    _one_line_error(code, err, *words)
    assert not (tmp_path / "s").exists()


# -- 3. corrupt files of a collection -------------------------------------------------------------
def _collection(table: str, folder: Path, lines: list[str] | None = None, config: str | None = None) -> list[str]:
    """A data folder of the collection the CLI args below describe, with these results.jsonl lines."""
    cfg = CollectConfig(preset="micro", cost_table=table, fracs=(0.6, 0.9), per_frac=1, train_steps=2)
    folder.mkdir(parents=True)
    if config is None:
        atomic_write_json(folder / "config.json", cfg.to_dict())
    else:
        (folder / "config.json").write_text(config)
    if lines is not None:
        (folder / "results.jsonl").write_text("".join(x + "\n" for x in lines))
    return ["quality", "collect", "--preset", "micro", "--cost-table", table, "--frac", "0.6", "--frac", "0.9", "--per-frac", "1",
            "--steps", "2", "--out", str(folder)]


def _record(table: str, k: int = 0, **kw) -> str:
    job = plan(CollectConfig(preset="micro", cost_table=table, fracs=(0.6, 0.9), per_frac=1, train_steps=2))[k]
    return json.dumps({**job, "arch": "x", "quality": 0.1, "quality_lo": 0.0, "quality_hi": 0.2, "psnr_gain_db": 0.1, "params": 1, **kw})


@pytest.mark.parametrize("case, words", [
    ("list", ["line 1", "JSON object"]), ("no-id", ["line 1", "id"]), ("string-quality", ["line 1", "quality"]),
    ("nan-quality", ["line 1", "quality"]), ("bad-middle", ["line 1", "not JSON"]), ("other-choices", ["line 1", "not this collection"]),
    ("twice", ["line 2", "twice"]),
])
def test_collect_refuses_a_corrupt_results_file(table, tmp_path, monkeypatch, capsys, case, words):
    good = _record(table, 0)
    lines = {"list": ["[1, 2]"], "no-id": [json.dumps({k: v for k, v in json.loads(good).items() if k != "id"})],
             "string-quality": [_record(table, 0, quality="0.5")], "nan-quality": [_record(table, 0, quality=math.nan)],
             "bad-middle": ["{not json", good], "other-choices": [_record(table, 0, choices=json.loads(_record(table, 1))["choices"])],
             "twice": [good, good]}[case]
    folder = tmp_path / "d"
    args = _collection(table, folder, lines)
    before = (folder / "results.jsonl").read_text()
    code, _, err = run_cli(monkeypatch, capsys, *args)
    _one_line_error(code, err, "results.jsonl", *words)
    assert (folder / "results.jsonl").read_text() == before and not (folder / "q000").exists()  # nothing trained or changed


def test_collect_refuses_a_config_that_is_not_json(table, tmp_path, monkeypatch, capsys):
    args = _collection(table, tmp_path / "d", config="{not json")
    code, _, err = run_cli(monkeypatch, capsys, *args)
    _one_line_error(code, err, "config.json", "not valid JSON")


def test_collect_skips_only_a_torn_last_line(table, tmp_path):
    """A line cut by a kill (no newline at the end) is the one unparsable line allowed: redone."""
    from rcai.search.quality_data import read_results

    p = tmp_path / "results.jsonl"
    p.write_text(_record(table, 0) + "\n" + _record(table, 1)[:40])
    assert list(read_results(p)) == ["q000"]


# -- 4. quality fit and quality models ------------------------------------------------------------
@pytest.mark.parametrize("quality", ["abc", "0.5", math.inf, 1e300, None, True])
def test_fit_refuses_a_quality_that_is_not_a_finite_number(table, tmp_path, monkeypatch, capsys, quality):
    data = tmp_path / "results.jsonl"
    data.write_text("".join(_record(table, k % 2, id=f"q{k:03d}", quality=0.1 * k) + "\n" for k in range(4))
                    + _record(table, 0, id="q004", quality=quality) + "\n")
    code, _, err = run_cli(monkeypatch, capsys, "quality", "fit", str(data), "--preset", "micro", "--out", str(tmp_path / "q.json"))
    _one_line_error(code, err, "line 5", "quality")
    assert not (tmp_path / "q.json").exists()


@pytest.fixture(scope="module")
def model_file(table, tmp_path_factory):
    """A real quality model of micro, fitted on planted records."""
    from rcai.proxies.additive import AdditiveQuality
    from rcai.presets import get_preset

    jobs = plan(CollectConfig(preset="micro", cost_table=table, fracs=(0.4, 0.6, 0.9), per_frac=3, train_steps=2))
    recs = [{**j, "quality": 0.1 * sum(op == "conv3x3" for op in j["choices"].values())} for j in jobs]
    path = tmp_path_factory.mktemp("model") / "q.json"
    AdditiveQuality.fit(get_preset("micro"), recs).save(path)
    return path


@pytest.mark.parametrize("field, value", [("effects", 1e308), ("effects", math.inf), ("effects", "0.1"), ("intercept", math.nan),
                                          ("intercept", -1e200), ("seed_offsets", 1e300)])
@pytest.mark.parametrize("strategy", ["knapsack", "evolution"])
def test_a_quality_model_with_huge_or_non_finite_figures_is_refused(table, model_file, tmp_path, monkeypatch, capsys, field, value, strategy):
    """Before: the knapsack summed 1e308s in numpy (overflow warnings) and wrote best_score null."""
    d = json.loads(model_file.read_text())
    if field == "intercept":
        d["intercept"] = value
    else:
        d[field] = {k: value for k in (d[field] or {"0": 0})}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))  # json writes inf/nan as Infinity/NaN, which Python's reader takes back
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, _, err = run_cli(monkeypatch, capsys, "search", "--preset", "micro", "--cost-table", table, "--strategy", strategy,
                               "--proxy", "quality-model", "--quality-model", str(bad), "--evaluations", "3", "--sample-steps", "10",
                               "--out", str(tmp_path / "s"))
    _one_line_error(code, err, "bad.json", "corrupt quality model")


def test_fit_refuses_huge_qualities_and_the_knapsack_huge_scores(table, model_file):
    from rcai.cost.load import load_cost_model
    from rcai.proxies.additive import AdditiveQuality
    from rcai.search.select import best_under_budget
    from rcai.presets import get_preset

    preset = get_preset("micro")
    jobs = plan(CollectConfig(preset="micro", cost_table=table, fracs=(0.6, 0.9), per_frac=2, train_steps=2))
    with pytest.raises(RcaiError, match="finite number of dB"):
        AdditiveQuality.fit(preset, [{**j, "quality": 1e300 * k} for k, j in enumerate(jobs)])
    cost = load_cost_model(table, preset)
    scores = {s.path: {n: 1e308 for n in s.choices} for s in cost.space.all_slots()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warning would fail here
        with pytest.raises(RcaiError, match="too large to add up"):
            best_under_budget(cost.space, scores, lambda sp: cost.op_metric(sp, "latency_ms"), cost.overhead_ms, 10, 1e9)
        scores[next(iter(scores))] = {n: math.nan for n in cost.space.all_slots()[0].choices}
        with pytest.raises(RcaiError, match="not a finite number"):
            best_under_budget(cost.space, scores, lambda sp: cost.op_metric(sp, "latency_ms"), cost.overhead_ms, 10, 1e9)


@pytest.mark.parametrize("strategy, args, flag", [
    ("halving", ["--softmax", "gumbel"], "--softmax"),  # a DARTS option given to another strategy: refused, not ignored
    ("evolution", ["--search-steps", "7"], "--search-steps"),
    ("darts", ["--jobs", "3"], "--jobs"),
    ("darts", ["--proxy", "naswot"], "--proxy"),
    ("evolution", ["--reward", "hard"], "--reward"),
    ("knapsack", ["--rung", "5", "--rung", "9"], "--rung"),
])
def test_an_option_the_strategy_does_not_read_is_one_line(monkeypatch, capsys, tmp_path, strategy, args, flag):
    out = tmp_path / "s"
    code, _, err = run_cli(monkeypatch, capsys, "search", "--preset", "micro", "--cost-table", "latency_tables/cpu-tiny.csv", "--strategy", strategy,
                           *args, "--out", str(out))
    _one_line_error(code, err, flag, f"not read by --strategy {strategy}")
    assert not out.exists()


def test_options_every_strategy_reads_are_not_refused(monkeypatch, capsys):
    from rcai.cli.search import APPLIES, _refuse_inapplicable, search_params

    names = {p.name for p in search_params()}
    assert set(APPLIES) <= names  # the table names real options
    _refuse_inapplicable("halving", {"batch_size": 4, "jobs": 1, "rungs": [2, 4]})
    _refuse_inapplicable("darts", {"batch_size": 4, "softmax": "gumbel", "rungs": list(search_params_default("rungs"))})


def search_params_default(name):
    from rcai.cli.search import search_params

    return next(p.default for p in search_params() if p.name == name)
