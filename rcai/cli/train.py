"""`rcai train`: train a base model or a subnet."""
from __future__ import annotations

from typing import Optional

import typer

from .common import ImageDirOpt, JsonOpt, PresetOpt, TrainDeviceOpt, TrainPrecisionOpt, out as stdout, print_json
from .defaults import EVAL, TRAIN
from .main import app


@app.command()
def train(
    out: str = typer.Option(..., "--out", "-o", help="Run folder, e.g. runs/base."),
    preset: str = PresetOpt,
    subnet: Optional[str] = typer.Option(None, help="subnet.json to train (default: the base model)."),
    init: Optional[str] = typer.Option(None, help="Start from these weights (a state_dict .pt, e.g. a searched subnet.pt)."),
    steps: int = typer.Option(TRAIN["steps"], help="Optimizer steps."),
    batch_size: int = typer.Option(TRAIN["batch_size"], "--batch-size", help="Training batch size."),
    lr: float = typer.Option(TRAIN["lr"], help="Adam learning rate (report: 3e-6 at its scale)."),
    lr_schedule: str = typer.Option(TRAIN["lr_schedule"], "--lr-schedule", help="constant | cosine (decays to 0 at the last step)."),
    seed: int = typer.Option(TRAIN["seed"]),
    image_dir: Optional[str] = ImageDirOpt(),
    eval_steps: int = typer.Option(EVAL["steps"], help="DDIM steps of the PSNR/SSIM evaluation."),
    eval_images: int = typer.Option(EVAL["max_images"], help="Test crops evaluated."),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run from its last checkpoint (on any --train-device)."),
    train_device: str = TrainDeviceOpt(),
    train_precision: str = TrainPrecisionOpt(),
    json: bool = JsonOpt,
) -> None:
    """Train a base model or a subnet: checkpoints atomically, logs the loss to log.jsonl, and
    evaluates the quality metric and sampled PSNR/SSIM on the held-out photos (writes model.pt, metrics.json, samples.png)."""
    import torch

    from ..config import require_counts
    from ..search.executors import make_executor
    from ..train.evaluate import EvalConfig
    from ..train.protocol import TrainProtocol, train_job

    require_counts({"eval-steps": eval_steps, "eval-images": eval_images}, "--")  # the line below prints the sampled PSNR
    protocol = TrainProtocol(steps=steps, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule, ema=0.0, eval_at=())
    job = train_job(protocol, out, preset=preset, subnet=subnet, init=init, seed=seed, data_dir=image_dir, device=train_device,
                    precision=train_precision, eval=EvalConfig(steps=eval_steps, max_images=eval_images), resume=resume, progress=not json)
    with make_executor("local", 1, threads=torch.get_num_threads()) as ex:  # one job, in this process
        [(_, metrics)] = list(ex.train([job]))
    if json:
        print_json(metrics)
    else:
        q = metrics["quality"]
        stdout.print(f"{out}: quality {q['gain_db']:+.3f} dB over bicubic [{q['gain_lo']:+.3f}, {q['gain_hi']:+.3f}] on {q['crops']} held-out crops; "
                     f"sampled PSNR {metrics['psnr']:.2f} dB (bicubic {metrics['bicubic_psnr']:.2f}), SSIM {metrics['ssim']:.3f} "
                     f"(bicubic {metrics['bicubic_ssim']:.3f}) on {metrics['images']} crops")
