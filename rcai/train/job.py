"""The one training job: "train this subnet from scratch in this folder". Every stage that trains
(`rcai train`, `rcai quality collect`, halving's rungs, the pipeline's references, the evaluation
and benchmark jobs) builds a `TrainJob` and hands it to an executor (rcai/search/executors.py),
which decides where it runs: a worker process of the local pool, a GPU slot, a Ray task.

`run()` resumes from its folder: a finished training of these steps is read back, a killed or
shorter one (constant lr: extendable) continues from its last checkpoint. The worker's slot (set by
the executor: a device and a number of torch threads) fills in what the job left open: a job whose
device is `auto` runs on its worker's GPU.
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

_SLOT: dict[str, Any] = {"device": None, "threads": None}  # this worker's, set by set_slot


def set_slot(device: str | None, threads: int | None) -> None:
    """Where this process's jobs run (an executor's worker initializer): a device for jobs whose
    device is `auto` (None: resolve it here) and torch's threads per job (None: unchanged)."""
    _SLOT.update(device=device, threads=threads)


def slot_device(device: str) -> str:
    """A job's device in this worker: its own, unless it is `auto` and the worker holds a slot."""
    return _SLOT["device"] if device == "auto" and _SLOT["device"] else device


def claim_slot(slots: list[str | None], threads: int | None) -> None:
    """Pool initializer: the worker's device slot by its number in the pool (workers are numbered
    1, 2, ... as the pool starts them; a replaced worker takes the next number), round robin over
    `slots`; the worker's torch runs with the slot's threads. (No shared queue: its semaphores
    would outlive a killed command in the resource tracker.)"""
    import multiprocessing as mp

    number = (mp.current_process()._identity or (1,))[0]
    set_slot(slots[(number - 1) % len(slots)] if slots else None, threads)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


@dataclass(frozen=True)
class TrainJob:
    config: TrainConfig
    out: str  # the run folder (config.json, checkpoint.pt, log.jsonl, metrics.json)
    resume: bool | None = None  # None: continue what the folder holds; False: a new run (an existing one is refused); True: must resume
    progress: bool = False  # a progress bar (a job run in the command's own process)

    def device(self) -> str:
        """The job's own device unless it is `auto` and its worker holds a slot."""
        return slot_device(self.config.device)

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
        cfg = replace(self.config, device=self.device())
        with torch_threads(_SLOT["threads"]):
            return train(cfg, self.out, resume=resume, progress=self.progress)


def run_job(job: TrainJob) -> dict[str, Any]:
    """A picklable entry point for pools and Ray tasks."""
    if not isinstance(job, TrainJob):
        raise RcaiError(f"expected a TrainJob, got {type(job).__name__}")
    return job.run()


def run_indexed(item: tuple[int, TrainJob]) -> tuple[int, dict[str, Any]]:
    i, job = item
    return i, run_job(job)
