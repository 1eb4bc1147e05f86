"""The one training job: "train this subnet from scratch in this folder". Every stage that trains
(`rcai train`, `rcai quality collect`, halving's and bo's rungs, the pipeline's references, the
evaluation and benchmark jobs, the one-shot pick's fine-tune) builds it with the one factory,
rcai/train/protocol.py `train_job` (a protocol: steps, batch, lr, EMA, curve; a device; a precision),
and hands it to an executor (rcai/search/executors.py), which places it (`TrainJob.placed`: a GPU
of its machine for a job whose device is `auto`, the torch threads it runs with) and runs it in a
worker process, in its own process or as a Ray task.

`run()` resumes from its folder: a finished training of these steps is read back, a killed or
shorter one (constant lr: extendable) continues from its last checkpoint. The device travels in the
job (`config.device`) and is resolved once, where the job runs (rcai/train/trainer.py `train`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import RcaiError
from ..io import read_json
from ..threads import torch_threads
from .rundir import RunDir
from .trainer import TrainConfig


@dataclass(frozen=True)
class TrainJob:
    config: TrainConfig  # what and how it trains; config.device is where (auto: resolved where it runs)
    out: str  # the run folder (config.json, checkpoint.pt, log.jsonl, metrics.json)
    resume: bool | None = None  # None: continue what the folder holds; False: a new run (an existing one is refused); True: must resume
    progress: bool = False  # a progress bar (a job run in the command's own process)
    threads: int | None = None  # torch threads while it runs (None: the process's; the executor sets its own)
    final_eval: bool = True  # False: no evaluation at the end (a timing run)

    @property
    def device(self) -> str:
        return self.config.device

    def placed(self, device: str, threads: int | None) -> "TrainJob":
        """This job on an executor's slot: `device` (the slot's, for a job whose device the executor
        spreads) and `threads`, where the job named none."""
        return replace(self, config=replace(self.config, device=device), threads=self.threads if self.threads is not None else threads)

    def finished(self) -> dict[str, Any] | None:
        """The metrics of a finished training of exactly these steps, else None. A config.json that
        names these steps is not enough (a run extended to a rung writes it first, then is killed):
        its metrics.json must say it trained them."""
        run = RunDir(Path(self.out))
        if not run.file("metrics.json").exists():
            return None
        metrics = read_json(run.file("metrics.json"), expect=dict)
        return metrics if metrics.get("train_steps") == self.config.steps else None

    def run(self) -> dict[str, Any]:
        from .trainer import train

        if self.resume is None:
            done = self.finished()
            if done is not None:
                return done
        resume = (Path(self.out) / "config.json").exists() if self.resume is None else self.resume
        with torch_threads(self.threads):
            return train(self.config, self.out, resume=resume, progress=self.progress, final_eval=self.final_eval)


def run_job(job: TrainJob) -> dict[str, Any]:
    """A picklable entry point for pools and Ray tasks."""
    if not isinstance(job, TrainJob):
        raise RcaiError(f"expected a TrainJob, got {type(job).__name__}")
    return job.run()


def run_indexed(item: tuple[int, TrainJob]) -> tuple[int, dict[str, Any]]:
    i, job = item
    return i, run_job(job)
