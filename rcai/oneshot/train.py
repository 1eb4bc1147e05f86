"""Training the one-shot supernet once (`rcai supernet train`): single path, on the training device,
resumable, data-parallel under torchrun.

At every step one batch and one draw of (t, γ, ε) feed `paths` subnets in turn, each a forward and
backward through that subnet only, their gradients summed into one Adam step. Which subnets
(`sampling`, drawn from (seed, step), so every rank of a data-parallel run trains the same paths on
its own batch, and a resumed run draws what the uninterrupted one drew):
- uniform (SPOS, the default): `paths` uniformly random subnets;
- sandwich (BigNAS): the largest and the smallest subnet by the cost table, then random ones; with
  `distill` > 0 the others learn towards the largest's prediction (in-place distillation);
- fair (FairNAS): every choice of every slot once per `paths` paths.
Measured on the tiny preset (shared weights, 4-5 paths, Spearman of inherited quality against
training from scratch on 12-13 subnets, after ~850 supernet steps; benchmarks/results/oneshot_rank.md):
uniform +0.40 (vs 800 steps from scratch) / +0.59 (vs 1200), fair +0.23 / +0.33, sandwich -0.11 /
-0.18: a subnet trained at every step (the smallest, the largest) is overrated. In-place distillation
(distill 1) learnt ~5x slower at this length: after 400 steps the largest, the base and the smallest
subnet scored -0.05 / -0.11 / -0.03 dB over bicubic with inherited weights (validation crops), against
+0.45 / +0.20 / +0.54 dB trained on the data (distill 0): the children's distillation gradients on
the shared fixed parts (stem, head, down/up, FiLM) are as large as the teacher's and pull it towards
what the smallest path can compute before it has learnt anything.
The weights that are evaluated and saved are an EMA (rcai/train/ema.py). At `eval_at` steps the
inherited quality of the largest, the base and the smallest subnet (validation crops) is logged.
"""
from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..cost.load import load_cost_model
from ..cost.model import OpCostModel
from ..diffusion.training import noisy_batch, prediction_loss
from ..errors import RcaiError
from ..io import append_line, atomic_write_json
from ..lock import exclusive
from ..model.oneshot import set_path
from ..presets import get_preset
from ..progress import progress_bar
from ..space.space import Arch, SearchSpace
from ..train.batches import BatchStream
from ..threads import torch_threads
from ..train.device import TrainDevice, resolve_precision, step_seed, to_cpu
from ..train.distributed import average_grads, broadcast_, process_group, rank_device, world
from ..train.ema import WeightEMA
from ..train.quality import eval_set, gain
from ..train.rundir import RunDir, seed_everything
from ..train.setup import schedule_of, splits_of
from .config import SupernetConfig
from .net import Supernet, build_supernet

SUPERNET_FILE = "supernet.pt"


def sandwich_ends(cfg: SupernetConfig) -> tuple[Arch, Arch]:
    """The largest and the smallest subnet by the config's cost table (checked against the preset)."""
    preset = get_preset(cfg.preset)
    table = load_cost_model(cfg.cost_table, preset)
    if not isinstance(table, OpCostModel):
        raise RcaiError(f"{cfg.cost_table}: the sandwich rule needs a per-op cost model (a cost table), got a {table.name}")
    op_ms = lambda sp: table.op_metric(sp, "latency_ms")  # noqa: E731
    return table.space.extreme_arch(op_ms, largest=True)[0], table.space.extreme_arch(op_ms, largest=False)[0]


def step_paths(space: SearchSpace, largest: Arch, smallest: Arch, paths: int, seed: int, step: int, sampling: str = "sandwich") -> list[Arch]:
    """The subnets of one step, drawn from (seed, step). sandwich: the largest first (the teacher),
    the smallest, then random ones; uniform: random ones; fair: path i takes choice i (mod its count)
    of a random permutation of every slot's choices, so each choice is trained once per as many paths."""
    rng = random.Random(step_seed(seed, step))
    if sampling == "sandwich":
        return [largest, smallest] + [space.random_arch(rng) for _ in range(paths - 2)]
    if sampling == "uniform":
        return [space.random_arch(rng) for _ in range(paths)]
    perms = {s.path: rng.sample(list(s.choices), len(s.choices)) for s in space.all_slots()}
    return [space.pick(lambda s, i=i: perms[s.path][i % len(perms[s.path])]) for i in range(paths)]


def train_supernet(cfg: SupernetConfig, out: str | Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or continue) the supernet in `out`; writes out/supernet.pt and metrics.json (rank 0)
    and returns the metrics ({} on the other ranks)."""
    ends = sandwich_ends(cfg)  # a bad table, preset or image folder is refused before anything is written
    preset = get_preset(cfg.preset)
    train_split = splits_of(preset, cfg.data_dir, cfg.seed, cfg.batch_size).train
    ev = eval_set(preset, cfg.data_dir, split="val") if cfg.eval_at else None
    with process_group(cfg.device):
        dev = TrainDevice(rank_device(cfg.device), resolve_precision(cfg.precision, rank_device(cfg.device)))
        rank, _ = world()
        with exclusive(out) if rank == 0 else contextlib.nullcontext():
            return _train(cfg, RunDir(Path(out)), resume, progress and rank == 0, dev, ends, train_split, ev if rank == 0 else None)


def _train(cfg: SupernetConfig, run: RunDir, resume: bool, progress: bool, dev: TrainDevice, ends: tuple[Arch, Arch], train_split, ev) -> dict[str, Any]:
    rank, size = world()
    if rank == 0:
        run.start(cfg.to_dict(), resume, growable=("steps", "eval_at"))
    preset = get_preset(cfg.preset)
    space = SearchSpace.of(preset)
    seed_everything(cfg.seed)
    net = build_supernet(preset, cfg.sharing).to(dev.device)  # initialised on the CPU: the same weights everywhere
    broadcast_(list(net.state_dict().values()))
    schedule = schedule_of(preset)
    stream = BatchStream(train_split, cfg.batch_size, cfg.seed + 1000 * rank)
    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)
    ema = WeightEMA(net, cfg.ema)
    draws = dev.generator()
    forward = dev.forward(net)
    step, cpu_s = 0, 0.0
    state = run.load_checkpoint() if resume else None
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        stream.load_state_dict(state["stream"] if size == 1 else state["streams"][rank])
        ema.load_state_dict(state["ema"])
        step, cpu_s = state["step"], state["cpu_s"]
    if rank == 0:
        if resume:
            run.truncate_log(step)
        append_line(run.file("devices.jsonl"), json.dumps({"step": step, "ranks": size, **dev.describe()}))
    largest, smallest = ends
    t_cpu = time.process_time()

    def checkpoint() -> None:
        streams = _gather_streams(stream) if size > 1 else None
        if rank == 0:
            extra = {"streams": streams} if streams is not None else {"stream": stream.state_dict()}
            run.save_checkpoint(to_cpu({"model": net.state_dict(), "optimizer": opt.state_dict(), "ema": ema.state_dict(), "step": step,
                                        "cpu_s": cpu_s + time.process_time() - t_cpu, **extra}))

    net.train()
    shown = ""
    with progress_bar(progress, f"supernet ({cfg.sharing})", cfg.steps, step) as advance:
        while step < cfg.steps:
            t0 = time.perf_counter()
            lr_up, hr = (x.to(dev.device, non_blocking=True) for x in stream.next())
            nb = noisy_batch(schedule, lr_up, hr, draws.manual_seed(step_seed(cfg.seed, step)), preset.residual, preset.prediction)
            opt.zero_grad(set_to_none=True)
            losses, teacher = [], None
            for arch in step_paths(space, largest, smallest, cfg.paths, cfg.seed, step, cfg.sampling):
                set_path(net, arch)
                pred = forward(nb.net_input, nb.noise_level)
                if teacher is None or not cfg.distill:
                    loss = prediction_loss(pred, nb.target, preset.loss)
                    teacher = pred.detach() if cfg.distill else None
                else:
                    loss = cfg.distill * prediction_loss(pred, teacher, preset.loss)
                    if cfg.distill < 1:
                        loss = loss + (1 - cfg.distill) * prediction_loss(pred, nb.target, preset.loss)
                loss.backward()
                losses.append(loss.detach())
            average_grads(params)
            opt.step()
            ema.update(net)
            step += 1
            if rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps):
                values = [float(v) for v in losses]
                shown = f"loss {sum(values) / len(values):.4f} (mean of {len(values)} paths)"
                run.log({"step": step, "losses": values, "step_s": time.perf_counter() - t0})
            if ev is not None and step in cfg.eval_at:
                run.log({"step": step, **{name: gain(Supernet(ema.module, cfg.sharing).subnet(a)[0], ev, schedule)["gain_db"]
                                          for name, a in (("largest", largest), ("base", space.base_arch()), ("smallest", smallest))}})
            if step % cfg.ckpt_every == 0 or step == cfg.steps or step in cfg.eval_at:
                checkpoint()
            advance(shown)
    if rank != 0:
        return {}
    cpu_s += time.process_time() - t_cpu
    info = {"steps": step, "cost_table": cfg.cost_table, "sampling": cfg.sampling, "paths": cfg.paths, "distill": cfg.distill, "batch_size": cfg.batch_size, "seed": cfg.seed,
            "ranks": size, "cpu_s": cpu_s, "largest": largest, "smallest": smallest, **dev.describe()}
    Supernet(ema.module, cfg.sharing, info).save(run.file(SUPERNET_FILE))
    atomic_write_json(run.file("metrics.json"), info)
    return info


def _gather_streams(stream: BatchStream) -> list[dict[str, Any]] | None:
    """Every rank's batch-stream state at rank 0 (a data-parallel run resumes each rank's own stream)."""
    import torch.distributed as dist

    states: list[Any] = [None] * world()[1]
    dist.all_gather_object(states, stream.state_dict())
    return states if world()[0] == 0 else None


@dataclass(frozen=True)
class SupernetJob:
    """"Train this supernet in this folder": a job an executor can place like a TrainJob (its
    `device` field says where it trains; `run()` continues what the folder holds)."""

    config: SupernetConfig
    out: str
    threads: int | None = None  # torch threads for the job (None: unchanged)
    progress: bool = False

    @property
    def device(self) -> str:
        return self.config.device

    def finished(self) -> dict[str, Any] | None:
        path = Path(self.out) / "metrics.json"
        if not path.exists():
            return None
        from ..io import read_json

        m = read_json(path, expect=dict)
        return m if m.get("steps") == self.config.steps else None

    def run(self) -> dict[str, Any]:
        done = self.finished()
        if done is not None:
            return done
        with torch_threads(self.threads):
            return train_supernet(replace(self.config), self.out, resume=(Path(self.out) / "config.json").exists(), progress=self.progress)
