"""`rcai supernet train|fit|eval`: the one-shot supernet (rcai/oneshot): trained once, then every
subnet judged with inherited weights, and searched for any target and budget by `rcai search
--strategy oneshot --supernet S`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import CostTableOpt, ImageDirOpt, JsonOpt, PresetOpt, TrainDeviceOpt, TrainPrecisionOpt, out as stdout, print_json, threads_of
from .defaults import defaults
from .main import app

SN = defaults("oneshot/config.py", "SupernetConfig")
supernet_app = typer.Typer(help="One-shot supernet: train once (sandwich rule, in-place distillation), judge subnets with inherited weights.",
                           no_args_is_help=True)
app.add_typer(supernet_app, name="supernet")


@supernet_app.command("train")
def train_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (config, checkpoint, log; supernet.pt and predictor.json at the end)."),
    cost_table: str = CostTableOpt(SN["cost_table"], help="Cost table whose largest and smallest subnets every step trains (the sandwich rule)."),
    preset: str = PresetOpt,
    sharing: str = typer.Option(SN["sharing"], help="shared (nested ops share weights: conv3x3 = centre of conv5x5, OFA) | independent (own weights per op, SPOS)."),
    steps: int = typer.Option(SN["steps"], help="Training steps (each trains `--paths` subnets on one batch)."),
    batch_size: int = typer.Option(SN["batch_size"], "--batch-size"),
    sampling: str = typer.Option(SN["sampling"], help="Subnets a step trains: uniform (PATHS random; ranked best) | sandwich (the largest, the smallest, PATHS-2 random) | "
                                 "fair (each choice of each slot once per PATHS)."),
    paths: int = typer.Option(SN["paths"], help="Subnets per step."),
    distill: float = typer.Option(SN["distill"], help="In-place distillation: weight of the largest's prediction in the other subnets' target (0: data only)."),
    lr: float = typer.Option(SN["lr"], "--lr", help="Adam learning rate (constant)."),
    ema: float = typer.Option(SN["ema"], "--ema", help="Decay of the weights' EMA (the evaluated and saved weights)."),
    seed: int = typer.Option(SN["seed"]),
    image_dir: Optional[str] = ImageDirOpt(),
    predictor_subnets: int = typer.Option(300, "--predictor-subnets", help="Subnets judged with inherited weights to fit the quality predictor after training (0: none)."),
    train_device: str = TrainDeviceOpt(),
    train_precision: str = TrainPrecisionOpt(),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: torch's; 1 on a busy machine)."),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run from its last checkpoint (and its evaluations)."),
    json: bool = JsonOpt,
) -> None:
    """Train the weight-sharing supernet once, then fit its quality predictor. Multi-process:
    `torchrun --nproc_per_node N -m rcai supernet train ...` (gradients averaged across ranks)."""
    from ..errors import RcaiError
    from ..oneshot.config import SupernetConfig
    from ..oneshot.train import train_supernet

    if predictor_subnets < 0:
        raise RcaiError(f"--predictor-subnets must be >= 0, got {predictor_subnets}")
    cfg = SupernetConfig(preset=preset, cost_table=cost_table, sharing=sharing, steps=steps, batch_size=batch_size, sampling=sampling, paths=paths, distill=distill, lr=lr, ema=ema,
                         seed=seed, data_dir=image_dir, eval_at=tuple(s for s in SN["eval_at"] if s < steps) + (steps,),
                         device=train_device, precision=train_precision)
    with threads_of(threads):
        m = train_supernet(cfg, out, resume=resume, progress=not json)
        if not m:
            return  # not rank 0
        fitted = _fit(out / "supernet.pt", predictor_subnets, seed, image_dir, train_device, progress=not json) if predictor_subnets else None
    if json:
        print_json({"supernet": str(out / "supernet.pt"), **m, "predictor": fitted})
        return
    stdout.print(f"{out}/supernet.pt: {cfg.sharing} supernet, {m['steps']} steps x {cfg.paths} paths, {m['cpu_s'] / 3600:.2f} CPU-hours "
                 f"({m['train_device']}, {m['precision']})")
    if fitted:
        stdout.print(_fit_line(fitted))


@supernet_app.command("fit")
def fit_cmd(
    supernet: Path = typer.Option(..., "--supernet", help="supernet.pt of `rcai supernet train`."),
    subnets: int = typer.Option(300, "--subnets", help="Subnets judged with inherited weights (spread over the latency range)."),
    seed: int = typer.Option(0),
    image_dir: Optional[str] = ImageDirOpt(),
    train_device: str = TrainDeviceOpt(),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: torch's; 1 on a busy machine)."),
    json: bool = JsonOpt,
) -> None:
    """Judge subnets with inherited weights on the validation crops and fit the quality predictor
    (predictor.json beside the supernet; a killed run continues its evaluations)."""
    from ..errors import RcaiError

    if subnets < 3:
        raise RcaiError(f"--subnets must be >= 3, got {subnets}")
    with threads_of(threads):
        fitted = _fit(supernet, subnets, seed, image_dir, train_device, progress=not json)
    print_json(fitted) if json else stdout.print(_fit_line(fitted))


@supernet_app.command("eval")
def eval_cmd(
    supernet: Path = typer.Option(..., "--supernet", help="supernet.pt of `rcai supernet train`."),
    subnet: Path = typer.Option(..., "--subnet", help="subnet.json of the subnet to judge."),
    split: str = typer.Option("eval", help="eval (the held-out crops every quality figure is read on) | val (the crops a search chooses on)."),
    image_dir: Optional[str] = ImageDirOpt(),
    json: bool = JsonOpt,
) -> None:
    """A subnet's quality with the weights it inherits from the supernet (the metric of a subnet trained from scratch)."""
    from ..errors import RcaiError
    from ..oneshot.inherited import crops, inherited_quality
    from ..oneshot.net import Supernet
    from ..space.subnet import SubnetSpec

    if split not in ("eval", "val"):
        raise RcaiError(f"--split must be eval or val, got {split!r}")
    sn = Supernet.load(supernet)
    spec = SubnetSpec.load(subnet, expect_preset=sn.preset)
    q = inherited_quality(sn, spec.choices, crops(sn, split, image_dir))
    if json:
        print_json({"subnet_hash": spec.hash, **{k: v for k, v in q.items() if k != "eval_files"}})
        return
    stdout.print(f"subnet {spec.hash} with inherited weights: {q['gain_db']:+.3f} dB [{q['gain_lo']:+.3f}, {q['gain_hi']:+.3f}] over bicubic "
                 f"on {q['crops']} {split} crops")


def _fit(supernet: Path, n: int, seed: int, image_dir: str | None, train_device: str, progress: bool) -> dict:
    from ..oneshot.inherited import fit_beside

    return fit_beside(supernet, n, seed, image_dir, train_device, progress)


def _fit_line(f: dict) -> str:
    return (f"{f['predictor']}: quality predictor on {f['n']} inherited evaluations, leave-one-out Spearman {f['loo_spearman']:.2f}, "
            f"RMSE {f['loo_rmse']:.3f} dB")
