"""`rcai train`: the report's model training engine for a base model or a subnet (Algorithm 1 with
gamma ~ U(abar_t, abar_{t-1}), the preset's L1 or L2), with atomic checkpoints, --resume and a PSNR/SSIM evaluation."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import JsonConfig
from ..diffusion import preset_loss
from ..errors import RcaiError
from ..io import append_line, atomic_torch_save, atomic_write_json, load_torch
from ..model.unet import UNet
from ..progress import progress_bar
from ..presets import Preset, get_preset
from ..runfolder import open_run
from ..space.space import SearchSpace
from ..space.subnet import SubnetSpec
from .batches import BatchStream
from .device import TrainDevice, check_precision, check_train_device, step_seed, to_cpu
from .memory import check_train_memory
from .ema import WeightEMA
from .evaluate import EvalConfig, evaluate
from .quality import eval_set, quality
from .rundir import RunDir, seed_everything
from .lr import check_lr_schedule, set_lr
from .setup import schedule_of, splits_of
from ..config import counts_of, require_counts


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    preset: str = "tiny"
    subnet: str | None = None  # subnet.json; None = the base model (first choice of every slot)
    init: str | None = None  # weights (state_dict .pt) to start from, e.g. a searched subnet.pt
    steps: int = 400
    batch_size: int = 8
    lr: float = 2e-3  # report: 3e-6 at its scale (64 ch, batch 8, thousands of epochs)
    lr_schedule: str = "cosine"  # constant | cosine (to 0 at the last step; rcai/train/lr.py)
    seed: int = 0
    data_dir: str | None = None
    ckpt_every: int = 50
    log_every: int = 10
    # EMA decay of the weights that are evaluated and saved (0: the last weights; rcai/train/ema.py).
    ema: float = 0.0
    # Steps at which the primary metric is logged ({"step", "quality", ...} lines of log.jsonl): the
    # learning curve, and the rungs of a multi-fidelity search.
    eval_at: tuple[int, ...] = ()
    eval: EvalConfig = field(default_factory=EvalConfig)
    # Where and how precisely it trains (rcai/train/device.py); a run may resume under other ones.
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        require_counts(counts_of(self, "steps", "batch_size", "ckpt_every", "log_every"))
        check_train_device(self.device)
        check_precision(self.precision)
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < float("inf")):
            raise RcaiError(f"lr must be a positive finite number, got {self.lr!r}")
        if not (isinstance(self.ema, (int, float)) and 0.0 <= self.ema < 1.0):
            raise RcaiError(f"ema must be a decay in [0, 1) (0: off), got {self.ema!r}")
        if any(not isinstance(s, int) or s < 1 for s in self.eval_at):
            raise RcaiError(f"eval_at must list whole steps >= 1, got {self.eval_at!r}")
        check_lr_schedule(self.lr_schedule)

    @property
    def extendable(self) -> bool:
        """A run of this config trained further (more steps) equals one run of the longer config:
        the lr does not depend on the run's length."""
        return self.lr_schedule == "constant"


def build_model(cfg: TrainConfig) -> tuple[UNet, SubnetSpec]:
    preset = get_preset(cfg.preset)
    if cfg.subnet:
        spec = SubnetSpec.load(cfg.subnet, expect_preset=preset)
    else:
        spec = SubnetSpec(preset, SearchSpace.of(preset).base_arch())
    model = spec.build()
    if cfg.init:
        model.load_state_dict(load_torch(cfg.init, "weights file"))
    return model, spec


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True, final_eval: bool = True) -> dict[str, Any]:
    """Train (or continue) the run in `out`; returns its metrics (metrics.json). `final_eval=False`
    skips the evaluations at the end (a timing run): the metrics then hold the counts and timing only."""
    dev = TrainDevice.of(cfg.device, cfg.precision)  # a bad device is refused before anything is written
    with open_run(out, lambda: prepare(cfg, dev)) as ready:  # checked, then one writer per run folder
        return _train(cfg, out, resume, progress, dev, ready, final_eval)


@dataclass
class Prepared:
    """What a training builds from its config, before its folder is written."""
    model: UNet
    spec: SubnetSpec
    splits: Any
    ev: Any


def prepare(cfg: TrainConfig, dev: TrainDevice) -> Prepared:
    """Build and check everything a training reads (preset, subnet, weights, images, memory): a bad
    input is refused here, before the run folder exists. The order of the seeded draws is the training's."""
    seed_everything(cfg.seed)
    model, spec = build_model(cfg)  # initialised on the CPU: the same weights on every device
    if dev.device.type == "cpu":
        check_train_memory(model, cfg.batch_size)
    splits = splits_of(spec.preset, cfg.data_dir, cfg.seed, cfg.batch_size)
    return Prepared(model, spec, splits, eval_set(spec.preset, cfg.data_dir))


def _train(cfg: TrainConfig, out: str | Path, resume: bool, progress: bool, dev: TrainDevice, ready: Prepared, final_eval: bool = True) -> dict[str, Any]:
    run = RunDir(Path(out))
    run.start(cfg.to_dict(), resume, growable=("steps", "eval_at") if cfg.extendable else (), paths=("subnet", "init", "data_dir"))
    model, spec, ev = ready.model, ready.spec, ready.ev
    model.to(dev.device)
    spec.save(run.file("subnet.json"))
    preset: Preset = spec.preset
    schedule = schedule_of(preset)
    stream = BatchStream(ready.splits.train, cfg.batch_size, cfg.seed)  # on the CPU, checkpointed: the same batches everywhere
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    ema = WeightEMA(model, cfg.ema) if cfg.ema else None
    draws = dev.generator()  # the loss's draws, re-seeded from (seed, step) at every step
    forward = dev.forward(model)
    step = 0
    state = run.load_checkpoint() if resume else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        stream.load_state_dict(state["stream"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        step = state["step"]
    if resume:
        run.truncate_log(step)  # lines after the checkpoint (or all, if none was reached) are redone
    append_line(run.file("devices.jsonl"), json.dumps({"step": step, **dev.describe()}))  # where each part of the run trained
    judged = ema.module if ema is not None else model  # the weights evaluated and saved

    def checkpoint() -> None:
        extra = {"ema": ema.state_dict()} if ema is not None else {}
        run.save_checkpoint(to_cpu({"model": model.state_dict(), "optimizer": opt.state_dict(), "stream": stream.state_dict(), "step": step, **extra}))

    model.train()
    q = None  # the primary metric of the last step, where eval_at measured it
    shown = ""  # the last logged loss (reading it every step would stall a GPU)
    first, t_loop, t_eval = step, time.perf_counter(), 0.0
    with progress_bar(progress, "training", cfg.steps, step) as advance:
        while step < cfg.steps:
            t0 = time.perf_counter()
            lr_up, hr = (x.to(dev.device, non_blocking=True) for x in stream.next())
            loss = preset_loss(forward, schedule, preset, lr_up, hr, draws.manual_seed(step_seed(cfg.seed, step)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            set_lr(opt, cfg.lr, cfg.lr_schedule, step, cfg.steps)
            opt.step()
            if ema is not None:
                ema.update(model)
            step += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                value = loss.item()
                shown = f"loss {value:.4f}"
                run.log({"step": step, "loss": value, "step_s": time.perf_counter() - t0})
            if step in cfg.eval_at:
                t1 = time.perf_counter()
                q = quality(judged, ev, schedule)
                t_eval += time.perf_counter() - t1
                run.log({"step": step, "quality": q["gain_db"], "quality_lo": q["gain_lo"], "quality_hi": q["gain_hi"], "denoise_mse": q["denoise_mse"]})
            if step % cfg.ckpt_every == 0 or step == cfg.steps or step in cfg.eval_at:
                checkpoint()
            advance(shown)
    if dev.device.type == "cuda":
        torch.cuda.synchronize(dev.device)
    # this call's loop: its training steps (train_s) and its evaluations at eval_at (eval_s)
    timing = {"steps_run": step - first, "train_s": time.perf_counter() - t_loop - t_eval, "eval_s": t_eval}
    atomic_torch_save(to_cpu(judged.state_dict()), run.file("model.pt"))
    metrics: dict[str, Any] = {}
    if not final_eval:
        return {"train_steps": step, **timing, **dev.describe()}
    if cfg.eval.max_images:  # 0: no sampled evaluation (a rung of a search reads the primary metric only)
        metrics = evaluate(judged, ev, schedule, cfg.eval)
        save_samples(run.file("samples.png"), metrics.pop("_arrays"))
    measured_last = q is not None and step in cfg.eval_at  # the loop ended on an evaluated step: same weights, same figure
    metrics["quality"] = q if measured_last else quality(judged, ev, schedule)
    metrics.update(train_steps=step, params=sum(p.numel() for p in model.parameters()), subnet_hash=spec.hash, **timing, **dev.describe())
    atomic_write_json(run.file("metrics.json"), metrics)
    return metrics


def save_samples(path: Path, arrays: dict[str, Any], max_images: int = 4) -> None:
    """Rows: bicubic, model output, ground truth (the report's Fig. 5.6 layout)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .evaluate import to_uint8

    import numpy as np

    total = len(arrays["sr"])
    n = min(max_images, total)
    picks = np.linspace(0, total - 1, n).round().astype(int)  # spread over the test images, not one image's crops
    fig, axes = plt.subplots(3, n, figsize=(2.2 * n, 6.6), squeeze=False)
    for j, pick in enumerate(picks):
        for i, (k, title) in enumerate((("lr_up", "bicubic"), ("sr", "rcai"), ("hr", "ground truth"))):
            axes[i][j].imshow(to_uint8(arrays[k][pick]))
            axes[i][j].set_axis_off()
            if j == 0:
                axes[i][j].set_title(title, loc="left", fontsize=9)
    fig.tight_layout()
    from ..io import atomic_write_bytes
    import io as _io

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
