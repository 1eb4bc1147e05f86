"""Issue 33: a killed search leaves no Ray process, and bad options are refused before anything is
written (one line on stderr, exit 2, no run folder left behind)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from rcai.cost.profile import ProfileConfig, profile_ops
from rcai.procs import descendants, start_time
from rcai.targets import MeasureConfig
from helpers import run_cli  # noqa: E402

RCAI = [sys.executable, "-m", "rcai"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "cpu-micro.csv"
    profile_ops(ProfileConfig(preset="micro", threads=1, measure=MeasureConfig(warmup=1, min_repeats=3, max_repeats=5, chunk=3, max_seconds=0.5)),
                path, progress=False)
    return str(path)


def _one_line(code: int, err: str, *words: str) -> None:
    assert code == 2 and err.startswith("error: ") and err.strip().count("\n") == 0 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


HALVING = ["search", "--strategy", "halving", "--preset", "micro", "--batch-size", "2", "--initial", "2", "--brackets", "1"]


@pytest.mark.parametrize("args, words", [
    (["--rung", "0", "--rung", "4"], ["rung", "got 0"]),
    (["--rung", "-5", "--rung", "4"], ["rung", "got -5"]),
    (["--rung", "2", "--rung", "4", "--executor", "bogus"], ["unknown executor 'bogus'"]),
    (["--rung", "2", "--rung", "4", "--eta", "1"], ["eta 1", "no halving"]),
    (["--rung", "2", "--rung", "4", "--executor", "ray", "--ray-address", "garbage::x"], ["garbage::x", "HOST:PORT"]),
    (["--rung", "2", "--rung", "4", "--executor", "ray", "--ray-address", "127.0.0.1:1"], ["127.0.0.1:1", "no cluster"]),
])
def test_bad_halving_options_are_refused_before_the_run_folder(table, tmp_path, monkeypatch, capsys, args, words):
    """Before the fix --rung 0/-5 and --executor bogus were refused only once the run folder (and
    training folders) existed, which then blocked the corrected command; --eta 1 ran without halving;
    --ray-address 127.0.0.1:1 hung (nothing after 180 s), garbage::x was a traceback."""
    if "ray" in args:
        pytest.importorskip("ray")
    t0 = time.monotonic()
    code, _, err = run_cli(monkeypatch, capsys, *HALVING, "--cost-table", table, "--out", str(tmp_path / "run"), *args)
    _one_line(code, err, *words)
    assert time.monotonic() - t0 < 30 and not (tmp_path / "run").exists()


def _one_line_error(p: subprocess.CompletedProcess, *words: str) -> None:
    err = "\n".join(x for x in p.stderr.splitlines() if "WARNING" not in x)  # deepspeed's import banner
    assert p.returncode == 2 and err.startswith("error: ") and err.strip().count("\n") == 0 and "Traceback" not in err, p.stderr
    for w in words:
        assert w in err, err


def test_a_killed_search_leaves_no_ray_process(tmp_path):
    """kill -9 of the search alone, with its local Ray cluster up: before the fix DashboardAgent and
    RuntimeEnvAgent (re-parented to init) were alive 30 s later."""
    pytest.importorskip("ray")
    script = textwrap.dedent("""
        import time
        from rcai.search.executors import make_executor
        make_executor("ray", 1)
        print("up", flush=True)
        time.sleep(600)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV,
                         start_new_session=True, cwd=tmp_path)
    try:
        assert p.stdout.readline().strip() == "up"
        time.sleep(1)  # the raylet's agents start after ray.init returns
        ray = {pid: start_time(pid) for pid in descendants(p.pid)}
        assert len(ray) >= 4, ray  # gcs_server, raylet, its agents (and the watchdog)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    deadline = time.monotonic() + 15
    while (alive := [pid for pid, t in ray.items() if start_time(pid) == t]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in alive:  # leave the machine clean whatever the verdict
        os.kill(pid, signal.SIGKILL)
    assert not alive, [open(f"/proc/{pid}/cmdline").read().replace("\0", " ")[:80] for pid in alive]
