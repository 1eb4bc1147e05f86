"""Issue 31: the training device and precision, the one training job and its dispatch by the executors."""
import json
import subprocess
import sys

import pytest
import torch

from rcai.errors import RcaiError
from rcai.search.executors import make_executor, ray_resources, spread
from rcai.train.device import TrainDevice, check_train_device, resolve_train_device, resolve_precision, to_cpu
from rcai.train.evaluate import EvalConfig
from rcai.train.job import TrainJob, run_job
from rcai.train.protocol import PROTOCOLS, for_device
from rcai.train.trainer import TrainConfig, train

NO_CUDA = not torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(NO_CUDA, reason="no CUDA GPU here (the GPU machine runs these: benchmarks/gpu/train.py, tests -k cuda)")


def _cfg(**kw):
    return TrainConfig(**{**dict(preset="micro", steps=4, batch_size=2, ckpt_every=2, log_every=1, eval=EvalConfig(steps=2, max_images=0)), **kw})


@pytest.mark.parametrize("text", ["gpu", "cuda:x", "cpu:0", "", "CUDA-1"])
def test_a_bad_train_device_is_one_line(text):
    with pytest.raises(RcaiError, match="--train-device must be one of"):
        check_train_device(text)
    with pytest.raises(RcaiError, match="train-device"):
        TrainConfig(device=text)


def test_auto_resolves_to_what_is_here_and_precision_per_device():
    assert resolve_train_device("auto").type == ("cpu" if NO_CUDA else "cuda")
    assert resolve_train_device("cpu") == torch.device("cpu")
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cpu")) in ("fp32", "bf16")
    with pytest.raises(RcaiError, match="--train-precision"):
        resolve_precision("fp16", torch.device("cpu"))
    assert for_device("cpu") is PROTOCOLS.get("cpu") and PROTOCOLS.get("gpu").batch_size >= PROTOCOLS.get("signal").batch_size


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA GPU: the refusal is for machines without one")
def test_cuda_without_a_gpu_is_one_line_exit_2_and_writes_nothing(tmp_path):
    with pytest.raises(RcaiError, match="no CUDA GPU here"):
        resolve_train_device("cuda")
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "rcai", "train", "--out", str(out), "--preset", "micro", "--steps", "2", "--train-device", "cuda"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "--train-device cuda: no CUDA GPU here" in r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA GPU: the refusal is for machines without one")
@pytest.mark.parametrize("strategy", ["halving", "bo", "darts"])
def test_a_search_on_cuda_without_a_gpu_is_refused_before_its_folder(micro_table, tmp_path, strategy):
    """The training strategies' device is checked once, by run_strategy before the run folder exists
    (the trainings resolve it where they run): the CLI, the pipeline and the API get the same line."""
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "rcai", "search", "--strategy", strategy, "--preset", "micro", "--cost-table", str(micro_table),
                        "--out", str(out), "--train-device", "cuda"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--train-device cuda: no CUDA GPU here" in r.stderr, r.stderr
    assert not out.exists()


def test_checkpoints_hold_cpu_tensors_and_resume_under_another_precision(tmp_path):
    """Stopped at step 2 in fp32, resumed in bf16 (another device setting): the run continues from
    the checkpoint (the log says where each part ran), and what it saved loads anywhere."""
    run = tmp_path / "run"
    first = train(_cfg(steps=2, precision="fp32", lr_schedule="constant"), run, progress=False, final_eval=False)
    assert first["precision"] == "fp32" and first["train_steps"] == 2
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    flat = [t for t in to_cpu(state)["model"].values()]
    assert all(t.device.type == "cpu" for t in flat)
    m = train(_cfg(steps=4, precision="bf16", lr_schedule="constant"), run, resume=True, progress=False)
    assert m["train_steps"] == 4 and m["steps_run"] == 2 and m["precision"] == "bf16"
    starts = list(map(json.loads, (run / "devices.jsonl").read_text().splitlines()))
    assert [(r["step"], r["precision"]) for r in starts] == [(0, "fp32"), (2, "bf16")]
    assert json.loads((run / "config.json").read_text())["precision"] == "bf16"  # device settings may change on --resume


def test_bf16_training_on_micro_learns(tmp_path):
    m = train(_cfg(steps=60, batch_size=4, lr=3e-3, precision="bf16", ckpt_every=60, log_every=5), tmp_path / "bf16", progress=False,
              final_eval=False)
    assert m["precision"] == "bf16"
    losses = [r["loss"] for r in map(json.loads, (tmp_path / "bf16" / "log.jsonl").read_text().splitlines()) if "loss" in r]
    assert all(map(lambda x: x == x, losses))  # finite
    assert sum(losses[-4:]) / 4 < 0.75 * sum(losses[:2]) / 2


def test_same_settings_repeat_bit_for_bit_on_the_cpu(tmp_path):
    a = train(_cfg(precision="bf16"), tmp_path / "a", progress=False, final_eval=False)
    b = train(_cfg(precision="bf16"), tmp_path / "b", progress=False, final_eval=False)
    assert a["train_steps"] == b["train_steps"] == 4
    wa, wb = torch.load(tmp_path / "a" / "model.pt"), torch.load(tmp_path / "b" / "model.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_job_reads_back_only_a_training_that_reached_its_steps(tmp_path):
    job = TrainJob(_cfg(lr_schedule="constant"), str(tmp_path / "j"))
    m = run_job(job)
    assert m["train_steps"] == 4 and job.finished() == m
    longer = TrainJob(_cfg(steps=6, lr_schedule="constant"), str(tmp_path / "j"))
    assert longer.finished() is None  # metrics.json of 4 steps does not finish a 6-step job
    assert run_job(longer)["train_steps"] == 6
    with pytest.raises(RcaiError, match="exists"):
        TrainJob(_cfg(), str(tmp_path / "j"), resume=False).run()


def test_executor_places_jobs_over_the_gpus_and_leaves_the_cpu_alone():
    assert [spread("cpu", i) for i in range(3)] == ["cpu"] * 3
    assert [spread("cuda:1", i) for i in range(2)] == ["cuda:1"] * 2
    n = torch.cuda.device_count() if not NO_CUDA else 0
    assert [spread("auto", i) for i in range(3)] == ([f"cuda:{i % n}" for i in range(3)] if n else ["auto"] * 3)
    job = TrainJob(_cfg(), "j", threads=None)
    placed = job.placed("cuda:1", 2)
    assert placed.device == "cuda:1" and placed.threads == 2 and job.device == "auto"  # a new job: the one built is unchanged
    assert TrainJob(_cfg(), "j", threads=3).placed("cpu", 1).threads == 3  # a job's own threads stay
    assert ray_resources(threads=2, cuda=False, jobs=4) == {"num_cpus": 2}
    assert ray_resources(threads=1, cuda=True, jobs=4) == {"num_cpus": 1, "num_gpus": 0.25}
    assert ray_resources(threads=1, cuda=True, jobs=4, gpus_per_job=0.5)["num_gpus"] == 0.5


def test_local_pool_runs_training_jobs_in_its_workers_on_their_device(tmp_path):
    jobs = [TrainJob(_cfg(seed=s, precision="fp32", device="cpu"), str(tmp_path / f"s{s}")) for s in (0, 1)]
    with make_executor("local", 2, threads=1) as ex:
        got = dict(ex.train(jobs, ordered=False))
    assert sorted(got) == [0, 1] and all(m["train_device"] == "cpu" and m["train_steps"] == 4 for m in got.values())
    assert got[0]["quality"]["gain_db"] != got[1]["quality"]["gain_db"]  # two seeds, two trainings
    threads = torch.get_num_threads()
    with make_executor("local", 1, threads=1) as ex:  # in this process: finished jobs are read back
        again = dict(ex.train(jobs))
    assert again[0] == got[0]
    assert torch.get_num_threads() == threads  # the job's threads are given back


def test_every_training_entry_point_builds_train_jobs_run_by_an_executor(tmp_path, monkeypatch):
    """rcai train (CLI), the pipeline's references, quality collect's subnets, an evaluation's job,
    halving's rungs: each hands TrainJobs to an executor (in this process: one job at a time)."""
    from rcai.search import executors

    seen = {"run": [], "executor": 0}
    run = TrainJob.run

    def spy(self):
        seen["run"].append(self.out)
        return run(self)

    init = executors.Executor.__init__

    def count(self, *a, **kw):
        seen["executor"] += 1
        init(self, *a, **kw)

    monkeypatch.setattr(TrainJob, "run", spy)
    monkeypatch.setattr(executors.Executor, "__init__", count)
    from typer.testing import CliRunner

    from rcai.cli.main import app

    r = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "cli"), "--preset", "micro", "--steps", "2", "--batch-size", "2",
                                 "--eval-images", "1", "--eval-steps", "2", "--train-device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    assert seen == {"run": [str(tmp_path / "cli")], "executor": 1}

    from rcai.pipeline import PipelineConfig
    from rcai.pipeline_search import SEARCH_STAGES
    from rcai.search.config import HalvingOptions

    stage = SEARCH_STAGES.get("halving")(PipelineConfig(preset="micro", halving=HalvingOptions(rungs=(2,)), jobs=1, eval_images=1, train_device="cpu"))
    stage.train_all({"base": (tmp_path / "base", None)}, say=lambda m: None)
    assert seen["run"][-1] == str(tmp_path / "base") and seen["executor"] == 2
    assert json.loads((tmp_path / "base" / "metrics.json").read_text())["train_steps"] == 2

    from rcai.evaluate.jobs import JobConfig, run_all
    from rcai.presets import get_preset
    from rcai.space.space import SearchSpace

    arch = SearchSpace.of(get_preset("micro")).base_arch()
    done: dict = {}
    run_all([{"id": "j0", "method": "random", "budget_frac": 1.0, "seed": 0, "arch": arch}],
            JobConfig(out=str(tmp_path / "ev"), preset="micro", train_steps=2, batch=2, eval=EvalConfig(steps=2, max_images=1), train_device="cpu"),
            tmp_path / "ev.jsonl", 1, done)
    assert "j0" in done and seen["run"][-1] == str(tmp_path / "ev" / "j0" / "train") and seen["executor"] == 3


@needs_cuda
def test_cuda_training_resumes_on_the_cpu_within_seed_noise(tmp_path):
    """A run started on the GPU continues on the CPU from the same checkpoint (fp32 both)."""
    kw = dict(steps=8, ckpt_every=4, precision="fp32", lr_schedule="constant", eval_at=(8,))
    train(_cfg(**{**kw, "steps": 4, "eval_at": ()}, device="cuda"), tmp_path / "x", progress=False, final_eval=False)
    m = train(_cfg(**kw, device="cpu"), tmp_path / "x", resume=True, progress=False)
    ref = train(_cfg(**kw, device="cuda"), tmp_path / "ref", progress=False)
    assert m["train_device"] == "cpu" and ref["train_device"].startswith("cuda")
    assert abs(m["quality"]["gain_db"] - ref["quality"]["gain_db"]) < 0.5  # micro, 8 steps: only that it continues sensibly


@needs_cuda
def test_cuda_and_bf16_train_on_the_gpu(tmp_path):
    dev = TrainDevice.of("cuda", "bf16")
    assert dev.device.type == "cuda"
    m = train(_cfg(device="cuda", precision="bf16"), tmp_path / "g", progress=False)
    assert m["train_device"].startswith("cuda") and m["precision"] == "bf16" and m["quality"]["gain_db"] == m["quality"]["gain_db"]


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA GPU: the refusal is for machines without one")
@pytest.mark.parametrize("args", [
    ["search", "--strategy", "halving", "--cost-table", "latency_tables/cpu-tiny.csv", "--latency-budget-ms", "150"],
    ["quality", "collect", "--cost-table", "latency_tables/cpu-tiny.csv"],
    ["pipeline", "--preset", "micro"],
])
def test_every_training_command_refuses_cuda_without_a_gpu_before_writing(args, tmp_path, monkeypatch, capsys):
    from pathlib import Path

    from rcai.cli.main import main

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["rcai", *args, "--out", str(out), "--train-device", "cuda"])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: --train-device cuda: no CUDA GPU here") and err.count("\n") == 1
    assert not out.exists()


def test_a_search_resumes_under_another_train_device_but_not_another_target(tmp_path):
    """The training device of a config's option groups (halving's, darts') may change on --resume, as
    a training's own device may; a nested deployment `device` (a target) may not."""
    from rcai.train.rundir import RunDir

    run = RunDir(tmp_path / "s")
    run.start({"strategy": "halving", "halving": {"rungs": [2], "train_device": "cuda", "train_precision": "fp32"}}, resume=False)
    run.start({"strategy": "halving", "halving": {"rungs": [2], "train_device": "cpu", "train_precision": "bf16"}}, resume=True)
    with pytest.raises(RcaiError, match=r"different config \(halving\)"):
        run.start({"strategy": "halving", "halving": {"rungs": [4], "train_device": "cpu", "train_precision": "bf16"}}, resume=True)
    run2 = RunDir(tmp_path / "p")
    run2.start({"profile": {"device": "cpu"}}, resume=False)
    with pytest.raises(RcaiError, match="different config"):
        run2.start({"profile": {"device": "gpu"}}, resume=True)
