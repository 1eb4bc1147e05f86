"""Issue 42: validate first, then write. Every refusal is one line on stderr, exit 2, and leaves no
--out folder; no bad value crashes with a traceback; a second writer through a
symlink is refused; a NaN journal score is not replayed; a moved halving run resumes."""
import json
import os
import pickle
import subprocess
import sys

import pytest

from helpers import run_cli  # noqa: E402

TABLE = "latency_tables/cpu-tiny.csv"
TRAIN = ["train", "--preset", "micro", "--steps", "2", "--batch-size", "2", "--train-device", "cpu", "--train-precision", "fp32"]
PIPELINE = ["pipeline", "--preset", "tiny", "--cost-table", TABLE, "--quality-model", "none"]
HALVING = ["search", "--strategy", "halving", "--preset", "tiny", "--cost-table", TABLE, "--rung", "2", "--rung", "4", "--initial", "2"]


class _Planted:
    def __reduce__(self):
        return (os.system, ("echo planted",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The bad inputs the cases name: {name: path}."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "evil.pt").write_bytes(pickle.dumps(_Planted()))
    (d / "a-file").write_text("not a folder")
    (d / "empty").mkdir()
    (d / "truncated.pt").write_bytes(open("predictors/cpu-tiny.pt", "rb").read()[:1000])
    rows = open(TABLE).read().splitlines()
    cols = rows[0].split(",")
    bad = rows[1].split(",")
    bad[cols.index("median_ms")] = "nan"
    (d / "nan.csv").write_text("\n".join([rows[0], ",".join(bad), *rows[2:]]) + "\n")
    (d / "nan.meta.json").write_text(open(TABLE.replace(".csv", ".meta.json")).read())
    return {p.name.split(".")[0].replace("-", ""): str(p) for p in d.iterdir() if not p.name.endswith(".meta.json")}


CASES = [
    # refusals that left files (config.json, subnet.json, pipeline.json) or came after the training
    (TRAIN + ["--init", "{evil}"], ["evil.pt", "not a readable weights file"]),
    (["train", "--preset", "bogus", "--steps", "2"], ["bogus"]),
    (TRAIN + ["--subnet", "{empty}/nope.json"], ["nope.json"]),
    (TRAIN + ["--image-dir", "{afile}"], ["a-file", "data directory"]),
    (TRAIN + ["--image-dir", "{empty}"], ["empty", "no images"]),
    (TRAIN + ["--eval-steps", "0"], ["--eval-steps", "got 0"]),
    (["quality", "collect", "--cost-table", TABLE, "--frac", "2", "--per-frac", "1", "--steps", "2"], ["fraction 2"]),
    (["search", "--strategy", "darts", "--preset", "tiny", "--cost-table", TABLE, "--predictor", "{truncated}"], ["truncated.pt"]),
    (PIPELINE + ["--cost-table", "{nan}"], ["nan.csv", "nan"]),
    (PIPELINE + ["--speedup", "nan"], ["speedup", "got nan"]),
    # tracebacks
    (TRAIN + ["--eval-images", "0"], ["--eval-images", "got 0"]),
    (PIPELINE + ["--speedup", "0"], ["speedup", "got 0"]),
    (PIPELINE + ["--threads", "0"], ["threads", "got 0"]),
    (TRAIN + ["--batch-size", "10000000"], ["--batch-size 10000000 needs about", "available"]),
    # an option silently ignored
    (HALVING + ["--ray-address", "auto"], ["--ray-address", "--executor ray"]),
]


@pytest.mark.parametrize("args, words", CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CASES])
def test_a_refusal_is_one_line_and_leaves_nothing(files, tmp_path, monkeypatch, capsys, args, words):
    """Before the fix each case left files in --out, or was a traceback, or ran."""
    out = tmp_path / "run"
    args = [a.format(**files) if "{" in a else a for a in args]
    code, _, err = run_cli(monkeypatch, capsys, *args, "--out", str(out))
    err = "".join(x for x in err.splitlines(True) if not x.startswith("warning: "))  # the shipped table was measured elsewhere
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))
    assert not any(tmp_path.glob("*.lock"))


def test_an_empty_out_is_one_line(monkeypatch, capsys):
    """--out '' was a ValueError traceback."""
    code, _, err = run_cli(monkeypatch, capsys, *TRAIN, "--out", "")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "--out" in err, err


def test_a_second_writer_through_a_symlink_is_refused(tmp_path, monkeypatch, capsys):
    """`--out link --resume` where link points at a folder another training holds: before the fix it
    ran (exit 0) and every log step was written twice."""
    from rcai.lock import exclusive

    real, link = tmp_path / "real", tmp_path / "link"
    args = [*TRAIN, "--eval-images", "1", "--eval-steps", "1"]
    code, _, err = run_cli(monkeypatch, capsys, *args, "--out", str(real))
    assert code == 0, err
    link.symlink_to(real)
    with exclusive(real):  # another training writing the folder
        code, _, err = run_cli(monkeypatch, capsys, *args, "--out", str(link), "--resume")
    assert code == 2 and "in use by" in err and err.count("\n") == 1, err


def test_a_planted_pickle_is_refused_without_torch_warnings(files, tmp_path):
    """Before the fix two lines of torch's UserWarning came before the one line."""
    p = subprocess.run([sys.executable, "-m", "rcai", *TRAIN, "--init", files["evil"], "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 2 and p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert "planted" not in p.stdout


def test_predictor_train_error_has_no_blank_line(tmp_path, monkeypatch, capsys):
    """An ONNX file that does not parse, met while encoding the dataset: the error began with a blank
    line (the progress bar's, on a stderr that is not a terminal)."""
    (tmp_path / "m.onnx").write_text("garbage")
    (tmp_path / "d.csv").write_text(f"model,latency_ms\n{tmp_path / 'm.onnx'},1.0\n")
    code, _, err = run_cli(monkeypatch, capsys, "predictor", "train", "--latency-data", str(tmp_path / "d.csv"), "--out", str(tmp_path / "p.pt"))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, repr(err)


def test_journal_replay_rejects_a_non_finite_score(tmp_path, capsys):
    """A journal line whose score is NaN (or inf) is corrupt: dropped and redone, never replayed."""
    from rcai.search.strategies.base import read_journal

    path = tmp_path / "evaluations.jsonl"
    rec = {"kind": "quality", "arch": {"a": "b"}, "wall_s": 1.0}
    lines = [{**rec, "i": 0, "score": 1.5}, {**rec, "i": 1, "score": float("nan")}, {**rec, "i": 2, "score": 2.0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert [r["i"] for r in read_journal(path)] == [0]
    assert "line 2 is not a journal record" in capsys.readouterr().err
    assert len(path.read_text().splitlines()) == 1


@pytest.mark.parametrize("how", ["moved", "copied"])
def test_a_moved_or_copied_halving_training_resumes(micro, tmp_path, how):
    """A halving candidate trained to its first rung, its run folder then renamed (or copied), is
    extended to the next rung: before the fix --resume refused it ("different config (subnet)"): the
    training's config stored the subnet's path, folder name included."""
    import shutil

    from rcai.space.space import SearchSpace
    from rcai.space.subnet import SubnetSpec
    from rcai.train.protocol import TrainProtocol, curve, train_to

    spec = SubnetSpec(micro, SearchSpace(micro).base_arch())
    protocol = TrainProtocol(steps=4, batch_size=2, ema=0.0, eval_at=(2, 4))
    old, new = tmp_path / "run" / "trainings" / "c", tmp_path / "moved" / "trainings" / "c"
    train_to(spec, 0, old, protocol, steps=2, samples=False, device="cpu", precision="fp32")
    shutil.copytree(old, new) if how == "copied" else shutil.move(tmp_path / "run", tmp_path / "moved")
    train_to(spec, 0, new, protocol, steps=4, samples=False, device="cpu", precision="fp32")
    assert sorted(curve(new)) == [2, 4]
    assert json.loads((new / "train" / "config.json").read_text())["subnet"] == "subnet.json"


def test_a_halving_training_started_before_resumes_in_place(micro, tmp_path):
    """A candidate whose training config names the subnet.json beside train/ (as before the fix) keeps
    reading that one: it resumes where it is."""
    from rcai.space.space import SearchSpace
    from rcai.space.subnet import SubnetSpec
    from rcai.train.protocol import TrainProtocol, curve, train_to

    spec = SubnetSpec(micro, SearchSpace(micro).base_arch())
    protocol = TrainProtocol(steps=4, batch_size=2, ema=0.0, eval_at=(2, 4))
    run = tmp_path / "trainings" / "c"
    train_to(spec, 0, run, protocol, steps=2, samples=False, device="cpu", precision="fp32")
    stored = run / "train" / "config.json"
    stored.write_text(json.dumps({**json.loads(stored.read_text()), "subnet": str(run / "subnet.json")}))  # the old form
    train_to(spec, 0, run, protocol, steps=4, samples=False, device="cpu", precision="fp32")
    assert sorted(curve(run)) == [2, 4]


# -- memory bounded up front, under a real limit (ulimit -v) ----------------------------------------
LIMIT = 3 * 2**30  # address space of the command: python, torch and ONNX Runtime take about 1 GiB of it


def _limited(args: list[str]) -> subprocess.CompletedProcess:
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))

    return subprocess.run([sys.executable, "-m", "rcai", *args], capture_output=True, text=True, preexec_fn=limit,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)


@pytest.fixture(scope="module")
def micro_onnx(micro, tmp_path_factory):
    import warnings

    from rcai.deploy.export import export_subnet_onnx
    from rcai.space.space import SearchSpace
    from rcai.space.subnet import SubnetSpec

    out = tmp_path_factory.mktemp("export") / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random init
        export_subnet_onnx(SubnetSpec(micro, SearchSpace(micro).base_arch()), None, out, verify=False)
    return str(out)


@pytest.mark.parametrize("command, too_big, fits", [
    ("bench", ["--batch", "5000"], ["--batch", "16"]),
    ("train", ["--batch-size", "5000"], ["--batch-size", "2"]),
])
def test_memory_is_bounded_up_front_under_a_limit(micro_onnx, tmp_path, command, too_big, fits):
    """Under `ulimit -v` (3 GiB): before the fix bench --batch 5000 was a numpy _ArrayMemoryError
    traceback (the estimate read the machine's free memory, not the limit, and undercounted ONNX
    Runtime's workspaces) and train --batch-size had no bound. Now the batch that cannot fit is one
    line before any work, and a batch that fits still runs under the same limit."""
    out = tmp_path / "run"
    base = {"bench": [command, micro_onnx, "--no-psnr", "--rounds", "1", "--loops", "1", "--sample-steps", "2", "--json"],
            "train": TRAIN + ["--out", str(out), "--eval-images", "1", "--eval-steps", "1", "--json"]}[command]
    p = _limited(base + too_big)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert "needs about" in p.stderr and not out.exists()
    p = _limited(base + fits)
    assert p.returncode == 0, p.stderr[-2000:]
