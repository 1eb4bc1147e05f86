"""Issue 33: a killed search leaves no Ray process, and bad options are refused before anything is
written (one line on stderr, exit 2, no run folder left behind)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from rcai.procs import descendants, start_time
from helpers import run_cli  # noqa: E402

RCAI = [sys.executable, "-m", "rcai"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


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
def test_bad_halving_options_are_refused_before_the_run_folder(tmp_path, monkeypatch, capsys, args, words):
    """Before the fix --rung 0/-5 and --executor bogus were refused only once the run folder (and
    training folders) existed, which then blocked the corrected command; --eta 1 ran without halving;
    --ray-address 127.0.0.1:1 hung (nothing after 180 s), garbage::x was a traceback. The cost table
    does not exist: the options must be refused before any file is read, let alone written."""
    if "ray" in args:
        pytest.importorskip("ray")
    t0 = time.monotonic()
    table = str(tmp_path / "missing.csv")
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
    env = {**ENV, "HOME": str(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}  # Ray's auth token goes to ~/.ray: not the user's
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
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


# -- rcai export: both paths checked first, the pair written together, one export per file ----------
@pytest.fixture(scope="module")
def spec(micro):
    from rcai.space.space import SearchSpace
    from rcai.space.subnet import SubnetSpec

    return SubnetSpec(micro, SearchSpace(micro).base_arch())


def _export(spec, out, **kw):
    import warnings

    from rcai.deploy.export import export_subnet_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random init
        return export_subnet_onnx(spec, None, out, verify=False, **kw)


@pytest.fixture(scope="module")
def exported(spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "m.onnx"
    _export(spec, out)
    return out


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_export_refuses_a_bad_sidecar_path_before_writing_the_onnx(spec, tmp_path, kind):
    """Before the fix the .onnx was written, then the sidecar's path refused."""
    from rcai.errors import RcaiError

    out = tmp_path / "m.onnx"
    (tmp_path / "m.onnx.json").mkdir() if kind == "folder" else os.mkfifo(tmp_path / "m.onnx.json")
    with pytest.raises(RcaiError, match=f"m.onnx.json: exists and is a {kind}"):
        _export(spec, out)
    assert not out.exists()


def test_a_second_export_to_the_same_file_is_refused(spec, tmp_path):
    from rcai.errors import RcaiError
    from rcai.lock import exclusive

    out = tmp_path / "m.onnx"
    with exclusive(out):  # what a running export holds
        with pytest.raises(RcaiError, match="in use by pid"):
            _export(spec, out)
    assert not out.exists()


def test_disk_full_during_export_leaves_neither_file(spec, exported, tmp_path):
    """A tmpfs with room for the ONNX alone: before the fix the ONNX was left without its sidecar."""
    from rcai.errors import RcaiError

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    pages = -(-exported.stat().st_size // 4096)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={pages * 4}k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): needs root")
    try:
        with pytest.raises(RcaiError, match="No space left on device"):
            _export(spec, mnt / "m.onnx")
        assert sorted(p.name for p in mnt.iterdir()) == []  # no ONNX, no sidecar, no temp file, no lock
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_sidecar_with_an_unknown_precision_is_refused(exported, tmp_path):
    import json
    import shutil

    from rcai.deploy.sidecar import DeploySidecar
    from rcai.errors import RcaiError

    shutil.copy(exported, tmp_path / "m.onnx")
    side = json.loads((exported.parent / "m.onnx.json").read_text())
    (tmp_path / "m.onnx.json").write_text(json.dumps({**side, "precision": "fp8"}))
    with pytest.raises(RcaiError, match="precision 'fp8' is not one rcai exports"):
        DeploySidecar.for_onnx(tmp_path / "m.onnx")


def test_int8_calibration_beyond_memory_is_refused_up_front(spec, tmp_path):
    """--calibration 1000000000 grew ~100 MB/s until killed."""
    from rcai.deploy.quantize import CalibrationConfig
    from rcai.errors import RcaiError

    with pytest.raises(RcaiError, match=r"int8 calibration on 1000000000 inputs needs about .* TiB of memory, .* available"):
        _export(spec, tmp_path / "m.onnx", precision="int8", calibration=CalibrationConfig(inputs=10**9))
    assert list(tmp_path.iterdir()) == []


# -- messages name options that exist ---------------------------------------------------------------
def _cli_options() -> dict[str, set[str]]:
    """{command path: its --options} of the whole `rcai` CLI (typer's click tree)."""
    import typer

    from rcai.cli.main import app

    out: dict[str, set[str]] = {}

    def walk(cmd, path):
        out[path] = {o for p in cmd.params for o in [*p.opts, *p.secondary_opts] if o.startswith("--")}
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return out


def _error_options() -> dict[str, set[str]]:
    """{--option: files} named in the literal text of every `raise RcaiError(...)` under rcai/."""
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "rcai"
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "RcaiError":
                for part in ast.walk(node):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        for opt in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]", part.value):
                            found.setdefault(opt, set()).add(str(path.relative_to(root.parent)))
    return found


def test_every_option_an_error_names_exists():
    """A scan of the CLI's one-line errors: each --option they name is an option of some rcai command
    (bench's no-sidecar message said --steps, which no command has)."""
    options = set().union(*_cli_options().values())
    missing = {o: sorted(f) for o, f in _error_options().items() if o not in options}
    assert not missing, missing


def test_bench_has_the_options_its_messages_name():
    """bench's cost-table mismatch says "pass --force" and its no-sidecar message "--sample-steps":
    before the fix bench had no --force."""
    assert {"--force", "--sample-steps", "--preset", "--batch"} <= _cli_options()["bench"]


def test_a_bench_batch_beyond_memory_is_refused_up_front(exported, monkeypatch, capsys):
    """--batch 100000 was killed by the OOM killer at 23.7 GB; 10**8 exceeds any machine's memory."""
    code, _, err = run_cli(monkeypatch, capsys, "bench", str(exported), "--batch", str(10**8), "--no-psnr", "--json")
    _one_line(code, err, "--batch 100000000 needs about", "available", "MiB an image")


# -- the other commands' options, checked before anything runs --------------------------------------
def test_profile_check_refuses_negative_subnets(monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "profile", "check", "--preset", "micro", "--subnets", "-1")
    _one_line(code, err, "--subnets", "-1")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is here")
@pytest.mark.parametrize("device", ["torch-cuda", "gpu"])
def test_pipeline_on_a_gpu_device_without_a_gpu_is_refused_at_once(tmp_path, monkeypatch, capsys, device):
    """It failed after ~84 s of searching, training and exporting."""
    t0 = time.monotonic()
    code, _, err = run_cli(monkeypatch, capsys, "pipeline", "--preset", "micro", "--device", device, "--out", str(tmp_path / "run"))
    _one_line(code, err, "no CUDA GPU here")
    assert time.monotonic() - t0 < 10 and not (tmp_path / "run").exists()
