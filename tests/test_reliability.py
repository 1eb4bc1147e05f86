"""Issue 11: nothing lost, nothing run, nothing half-believed. Each test reproduces a defect found by
killing, filling and feeding rcai bad files: real planted pickles, real torn files, real fifos, a
real second process holding the lock, a real full (tmpfs) and read-only filesystem."""
import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rcai.cost.archs import ArchDatasetConfig, profile_archs
from rcai.cost.check import check_table
from rcai.cost.profile import ProfileConfig, profile_ops
from rcai.targets import TargetSpec
from rcai.cost.table import CostTable, meta_path
from rcai.errors import RcaiError
from rcai.io import append_line, atomic_torch_save, atomic_write_json, atomic_write_text
from rcai.presets import get_preset
from rcai.space.space import SearchSpace
from rcai.targets import MeasureConfig
from rcai.train import rundir as rundir_mod
from rcai.train.evaluate import EvalConfig
from rcai.train.rundir import RunDir
from rcai.train.trainer import TrainConfig, train
from helpers import darts_config, run_cli, run_darts  # noqa: E402

FAST = MeasureConfig(warmup=1, min_repeats=3, max_repeats=5, chunk=3, max_seconds=0.5)
PCFG = ProfileConfig(preset="micro", target=TargetSpec(threads=1), measure=FAST)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A real micro cost table and a 3-subnet dataset (one round), copied by the tests that damage them."""
    root = tmp_path_factory.mktemp("made")
    profile_ops(PCFG, root / "t.csv", progress=False)
    profile_archs(PCFG, ArchDatasetConfig(archs=3, rounds=1, method="sequential"), root / "archs", progress=False)
    return root


def _copy_table(made: Path, tmp_path: Path) -> Path:
    for name in ("t.csv", "t.meta.json"):
        shutil.copy(made / name, tmp_path / name)
    return tmp_path / "t.csv"


def _one_line_error(code: int, err: str) -> None:
    assert code == 2 and err.startswith("error: ") and err.strip().count("\n") == 0 and "Traceback" not in err, err


def _tcfg(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(preset="micro", steps=6, batch_size=2, ckpt_every=3, log_every=1, eval=EvalConfig(steps=2, max_images=1)), **kw})


def _scfg(table, **kw):
    base = dict(preset="micro", cost_table=str(table), steps=6, warmup_steps=0, batch_size=2, finetune_steps=6, steps_per_sample=10,
                ckpt_every=3, log_every=1, eval=EvalConfig(steps=2, max_images=1))
    return darts_config(**{**base, **kw})


def _log_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]


# -- 1. a planted pickle in a run folder ---------------------------------------------------------
class _Bomb:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_planted_pickle_checkpoint_is_refused_and_runs_nothing(tmp_path):
    run = tmp_path / "run"
    args = ["--out", str(run), "--preset", "micro", "--steps", "2", "--batch-size", "2", "--eval-steps", "1", "--eval-images", "1", "--json"]
    cli = [sys.executable, "-m", "rcai", "train", *args]
    train(TrainConfig(preset="micro", steps=2, batch_size=2, eval=EvalConfig(steps=1, max_images=1)), run, progress=False)  # = the CLI's config
    marker = tmp_path / "pwned"
    torch.save({"rng": _Bomb(str(marker)), "step": 1}, run / "checkpoint.pt")  # a real pickle that creates a file
    done = subprocess.run(cli + ["--resume"], capture_output=True, text=True, timeout=300)
    _one_line_error(done.returncode, done.stderr)
    assert "checkpoint.pt" in done.stderr and not marker.exists()


def test_checkpoint_holds_only_plain_types(tmp_path):
    train(_tcfg(steps=3), tmp_path / "run", progress=False)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)  # would raise on numpy arrays
    assert state["step"] == 3


# -- 2. a torn last line is repaired before the next append --------------------------------------
def test_append_line_drops_a_torn_last_line_and_says_so(tmp_path, capsys):
    p = tmp_path / "log.csv"
    p.write_text("a,1\nb,2\nc,")  # a kill cut the third line
    append_line(p, "d,4")
    assert p.read_text() == "a,1\nb,2\nd,4\n"
    assert "dropped an incomplete last line" in capsys.readouterr().err


def test_torn_table_row_is_remeasured_not_glued(made, tmp_path, capsys):
    table = _copy_table(made, tmp_path)
    text = table.read_text()
    lines = text.splitlines(keepends=True)
    torn = "".join(lines[:-2]) + lines[-2][: len(lines[-2]) // 2]  # last row lost, the one before cut mid-line
    table.write_text(torn)
    profile_ops(PCFG, table, progress=False)
    assert "dropped an incomplete last line" in capsys.readouterr().err
    t = CostTable.load(table)  # loads as a whole
    keys = [r[0] for r in list(csv.reader(table.open()))[1:]]
    assert len(keys) == len(set(keys)) and set(keys) == {s.key for s in SearchSpace.of(get_preset("micro")).all_specs()}


def test_torn_measurements_row_is_remeasured(made, tmp_path, capsys):
    folder = tmp_path / "archs"
    shutil.copytree(made / "archs", folder)
    raw = folder / "measurements.csv"
    raw.write_text(raw.read_text()[:-5])  # the last row cut by a kill
    profile_archs(PCFG, ArchDatasetConfig(archs=3, rounds=1, method="sequential"), folder, progress=False)
    assert "dropped an incomplete last line" in capsys.readouterr().err
    rows = list(csv.DictReader(raw.open()))
    assert sorted(r["model"] for r in rows) == ["0000", "0001", "0002"] and all(int(r["round"]) == 0 for r in rows)
    assert len(list(csv.DictReader((folder / "dataset.csv").open()))) == 3


def test_torn_predictor_csv_line_is_an_error_not_a_phantom_device(made, tmp_path):
    from rcai.predictor.dataset import load_dataset

    folder = tmp_path / "archs"
    shutil.copytree(made / "archs", folder)
    p = folder / "lat.csv"
    p.write_text("model,latency_ms,device\nmodels/0000.onnx,1.5,cpu\nmodels/0001.onnx,1.7,cpu\nmodels/0002.onnx,1.")
    with pytest.raises(RcaiError, match=r"lat.csv line 4: 2 fields, the header has 3"):
        load_dataset(p, use_cache=False)


# -- 3. --out onto something that is not a regular file ------------------------------------------
@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_writes_refuse_a_path_that_is_not_a_regular_file(tmp_path, kind):
    p = tmp_path / "target"
    os.mkfifo(p) if kind == "fifo" else p.mkdir()
    for write in (lambda: atomic_write_text(p, "x"), lambda: atomic_torch_save({"a": 1}, p), lambda: append_line(p, "x"),
                  lambda: CostTable.create(p, {"batch": 1})):
        with pytest.raises(RcaiError, match="exists and is a (fifo|folder); refusing"):
            write()
    assert (p.is_fifo() if kind == "fifo" else p.is_dir())


def test_cli_out_onto_a_device_node_is_refused(tmp_path, monkeypatch, capsys, made):
    dev = tmp_path / "null"
    os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))  # a character device like /dev/null, in tmp
    code, _, err = run_cli(monkeypatch, capsys, "predictor", "train", "--latency-data", str(made / "archs" / "dataset.csv"), "--out", str(dev), "--epochs", "1")
    _one_line_error(code, err)
    assert "is a device" in err and os.path.exists(dev) and not dev.is_file()
    code, _, err = run_cli(monkeypatch, capsys, "profile", "--preset", "micro", "--out", str(dev))
    _one_line_error(code, err)
    assert "is a device" in err and not dev.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["null"]


# -- 4. resume is bit-identical in every phase of search -----------------------------------------
@pytest.fixture(scope="module")
def full_search(made, tmp_path_factory):
    """The uninterrupted search both phases are compared with."""
    out = tmp_path_factory.mktemp("search") / "full"
    run_darts(_scfg(made / "t.csv"), out)
    return out


@pytest.mark.parametrize("phase", ["search", "finetune"])
def test_search_resume_is_bit_identical_in_each_phase(made, full_search, tmp_path, phase, monkeypatch):
    table = made / "t.csv"

    class Killed(Exception):
        pass

    orig = RunDir.save_checkpoint

    def die(self, state):
        orig(self, state)
        if state["phase"] == phase and state["step"] == 3:
            raise Killed

    monkeypatch.setattr(RunDir, "save_checkpoint", die)
    with pytest.raises(Killed):
        run_darts(_scfg(table), tmp_path / "resumed")
    monkeypatch.setattr(RunDir, "save_checkpoint", orig)
    run_darts(_scfg(table), tmp_path / "resumed", resume=True)
    for name in ("supernet.pt", "subnet.pt"):
        a, b = torch.load(full_search / name), torch.load(tmp_path / "resumed" / name)
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    strip = lambda run: [{k: v for k, v in json.loads(line).items() if k != "step_s"} for line in (run / "log.jsonl").read_text().splitlines()]  # noqa: E731
    assert strip(full_search) == strip(tmp_path / "resumed")


# -- 5. --archs resume checks every artefact of an entry -----------------------------------------
def test_archs_resume_after_a_kill_between_onnx_and_json(made, tmp_path):
    folder = tmp_path / "archs"
    shutil.copytree(made / "archs", folder)
    (folder / "subnets" / "0002.json").unlink()  # killed after models/0002.onnx, before subnets/0002.json
    raw = folder / "measurements.csv"
    raw.write_text("".join(raw.read_text().splitlines(keepends=True)[:3]))  # and before measuring 0002
    profile_archs(PCFG, ArchDatasetConfig(archs=3, rounds=1, method="sequential"), folder, progress=False)
    assert (folder / "subnets" / "0002.json").is_file()
    assert len(list(csv.DictReader((folder / "dataset.csv").open()))) == 3


# -- 6. log steps after a resume match the resumed state -----------------------------------------
def test_train_killed_before_first_checkpoint_logs_each_step_once(tmp_path, monkeypatch):
    class Killed(Exception):
        pass

    monkeypatch.setattr(rundir_mod.RunDir, "save_checkpoint", lambda self, state: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        train(_tcfg(), tmp_path / "run", progress=False)
    assert _log_steps(tmp_path / "run") == [1, 2, 3] and not (tmp_path / "run" / "checkpoint.pt").exists()
    monkeypatch.undo()
    train(_tcfg(), tmp_path / "run", resume=True, progress=False)
    assert _log_steps(tmp_path / "run") == [1, 2, 3, 4, 5, 6]


def test_search_killed_before_first_checkpoint_logs_each_step_once(made, tmp_path, monkeypatch):
    class Killed(Exception):
        pass

    monkeypatch.setattr(RunDir, "save_checkpoint", lambda self, state: (_ for _ in ()).throw(Killed()))
    cfg = _scfg(made / "t.csv", finetune_steps=1)
    with pytest.raises(Killed):
        run_darts(cfg, tmp_path / "run")
    monkeypatch.undo()
    run_darts(cfg, tmp_path / "run", resume=True)
    assert _log_steps(tmp_path / "run") == [1, 2, 3, 4, 5, 6, 7]


# -- 7. one writer per output --------------------------------------------------------------------
HOLDER = "import sys, time\nfrom rcai.lock import exclusive\nwith exclusive(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n"


def test_a_second_writer_is_refused_naming_the_holder(made, tmp_path, monkeypatch, capsys):
    table, run, folder = tmp_path / "t.csv", tmp_path / "run", tmp_path / "archs"
    holders = [subprocess.Popen([sys.executable, "-c", HOLDER, str(p)], stdout=subprocess.PIPE, text=True) for p in (table, run, folder)]
    try:
        for h in holders:
            assert h.stdout.readline().strip() == "held"
        pid = holders[0].pid
        with pytest.raises(RcaiError, match=rf"t.csv: in use by pid {pid} on .+ \(-c .+\); wait for it"):
            profile_ops(PCFG, table, progress=False)
        with pytest.raises(RcaiError, match=f"in use by pid {holders[1].pid}"):
            train(_tcfg(), run, progress=False)
        with pytest.raises(RcaiError, match=f"in use by pid {holders[1].pid}"):
            run_darts(_scfg(made / "t.csv"), run)
        with pytest.raises(RcaiError, match=f"in use by pid {holders[2].pid}"):
            profile_archs(PCFG, ArchDatasetConfig(archs=1, rounds=1), folder, progress=False)
        code, _, err = run_cli(monkeypatch, capsys, "train", "--out", str(run), "--preset", "micro", "--steps", "1")
        _one_line_error(code, err)
        assert f"pid {holders[1].pid}" in err and not run.exists()  # nothing written by the refused writer
    finally:
        for h in holders:
            h.kill()
            h.wait()
    # the kernel released the killed holder's lock: the next writer gets it
    train(_tcfg(steps=1), run, progress=False)


# -- 8. OS errors on user paths are one line naming the path -------------------------------------
@pytest.fixture
def small_fs(tmp_path):
    """A real 64 KiB tmpfs (root only)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): needs root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_is_one_line_and_resume_logs_each_step_once(small_fs, monkeypatch, capsys):
    run = small_fs / "run"
    args = ["train", "--out", str(run), "--preset", "micro", "--steps", "6", "--batch-size", "2", "--eval-steps", "1", "--eval-images", "1", "--json"]
    code, _, err = run_cli(monkeypatch, capsys, *args)  # the checkpoint (~300 kB) does not fit
    _one_line_error(code, err)
    assert str(run) in err and "No space left on device" in err
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_fs)], check=True)
    code, _, err = run_cli(monkeypatch, capsys, *args, "--resume")
    assert code == 0, err
    assert _log_steps(run) == [6]  # log_every 10: the final step only, once


def test_read_only_folder_is_one_line(small_fs, monkeypatch, capsys):
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    code, _, err = run_cli(monkeypatch, capsys, "profile", "--preset", "micro", "--out", str(small_fs / "t.csv"), "--json")
    _one_line_error(code, err)
    assert str(small_fs) in err and "Read-only file system" in err


def test_bad_json_types_and_truncated_checkpoint_are_one_line(made, tmp_path, monkeypatch, capsys):
    table = _copy_table(made, tmp_path)
    meta = json.loads(meta_path(table).read_text())
    for bad, match in (([1, 2], "expected a JSON object, got list"), ({**meta, "overhead_ms": "0.05"}, "overhead_ms must be"),
                       ({**meta, "overhead_ms": -0.1}, "overhead_ms must be")):
        meta_path(table).write_text(json.dumps(bad))
        code, _, err = run_cli(monkeypatch, capsys, "tables", "show", str(table))
        _one_line_error(code, err)
        assert match in err and "t.meta.json" in err
    run = tmp_path / "run"
    train(_tcfg(steps=3), run, progress=False)
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(RcaiError, match="checkpoint.pt: not a readable checkpoint"):
        RunDir(run).load_checkpoint()
    (run / "config.json").write_text("[]")
    with pytest.raises(RcaiError, match="config.json: expected a JSON object"):
        train(_tcfg(steps=3), run, resume=True, progress=False)


# -- 9. accepted although wrong ------------------------------------------------------------------
@pytest.mark.parametrize("value,match", [("inf", "is inf"), ("1e300", "not a measurement"), ("nan", "is nan"), ("-1", "is -1"), ("dup", "appears twice")])
def test_table_refuses_absurd_latencies_and_duplicate_ops(made, tmp_path, value, match):
    table = _copy_table(made, tmp_path)
    lines = table.read_text().splitlines(keepends=True)
    if value == "dup":
        lines.append(lines[1])
    else:
        cells = lines[1].rstrip("\n").split(",")
        cells[8] = value  # median_ms
        lines[1] = ",".join(cells) + "\n"
    table.write_text("".join(lines))
    with pytest.raises(RcaiError, match=match):
        CostTable.load(table)


def test_tables_check_refuses_nan_latencies(made, tmp_path):
    folder = tmp_path / "archs"
    shutil.copytree(made / "archs", folder)
    ds = folder / "dataset.csv"
    lines = ds.read_text().splitlines()
    cells = lines[2].split(",")
    cells[1] = "nan"
    lines[2] = ",".join(cells)
    ds.write_text("\n".join(lines) + "\n")
    with pytest.raises(RcaiError, match="dataset.csv:3: latency_ms must be a positive finite"):
        check_table(CostTable.load(made / "t.csv"), ds)


@pytest.mark.parametrize("kw", [dict(latency_budget_ms=math.nan), dict(latency_budget_ms=0.0), dict(latency_budget_ms=-5.0),
                                dict(steps=0), dict(steps=-3)])
def test_search_config_refuses_bad_numbers(kw):
    with pytest.raises(RcaiError):
        _scfg("t.csv", **kw)


@pytest.mark.parametrize("steps", [0, -1])
def test_train_refuses_no_steps(steps):
    with pytest.raises(RcaiError, match="steps must be a whole number >= 1"):
        _tcfg(steps=steps)


def test_infeasible_budget_is_refused_before_training(made, tmp_path):
    with pytest.raises(RcaiError, match="below the cheapest subnet's loop"):
        run_darts(_scfg(made / "t.csv", latency_budget_ms=1e-3), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing trained, no folder left to block the corrected command


@pytest.mark.parametrize("args", [["--archs", "-5"], ["--archs", "2", "--rounds", "0"], ["--threads", "0"]])
def test_profile_refuses_bad_counts(tmp_path, monkeypatch, capsys, args):
    code, _, err = run_cli(monkeypatch, capsys, "profile", "--preset", "micro", "--out", str(tmp_path / "t.csv"), *args)
    _one_line_error(code, err)
    assert not (tmp_path / "t.csv").exists()


def test_predictor_on_too_few_rows_warns(made, capsys):
    from rcai.predictor.predictor import train_predictor
    from rcai.predictor.train import PredictorTrainConfig as PredConfig

    train_predictor(made / "archs" / "dataset.csv", cfg=PredConfig(epochs=2))
    assert "3 models are too few for a validation split" in capsys.readouterr().err


def test_json_files_never_hold_nan_or_infinity(tmp_path, capsys):
    atomic_write_json(tmp_path / "m.json", {"search": {"loop_ms": math.inf}, "psnr": math.nan, "ok": 1.0})
    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda c: pytest.fail(c)) == {"search": {"loop_ms": None}, "psnr": None, "ok": 1.0}
    assert "search.loop_ms, psnr not a finite number, written as null" in capsys.readouterr().err


def test_any_os_error_on_a_user_path_is_one_line(made, tmp_path, monkeypatch, capsys):
    (tmp_path / "data").mkdir()  # a folder where a CSV is expected: not wrapped by rcai itself
    code, _, err = run_cli(monkeypatch, capsys, "tables", "check", str(made / "t.csv"), "--latency-data", str(tmp_path / "data"))
    _one_line_error(code, err)
    assert err.strip() == f"error: {tmp_path / 'data'}: Is a directory"
