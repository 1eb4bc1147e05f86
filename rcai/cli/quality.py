"""`rcai quality collect|fit`: a quality model from subnets trained from scratch (rcai/proxies/additive.py),
for `rcai search --strategy knapsack`."""
from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from .common import CostTableOpt, JsonOpt, PresetOpt, TrainDeviceOpt, TrainPrecisionOpt, out as stdout, print_json
from .main import app

quality_app = typer.Typer(help="Quality model: train random subnets from scratch, fit per-op effects.", no_args_is_help=True)
app.add_typer(quality_app, name="quality")


@quality_app.command("collect")
def collect_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Data folder, e.g. runs/quality-data (results.jsonl; a killed run continues)."),
    cost_table: str = CostTableOpt(...),
    preset: str = PresetOpt,
    fracs: List[float] = typer.Option([0.35, 0.45, 0.55, 0.65, 0.75, 0.85], "--frac", help="Loop latency of the subnets, as fractions of the base's (repeatable)."),
    per_frac: int = typer.Option(6, "--per-frac", help="Subnets per fraction."),
    train_steps: int = typer.Option(800, "--steps", help="Optimizer steps of each subnet's training (the protocol its searches will be judged by)."),
    jobs: int = typer.Option(1, "--jobs", help="Subnets trained at once (one torch thread each, or spread over the GPUs)."),
    train_device: str = TrainDeviceOpt(),
    train_precision: str = TrainPrecisionOpt(),
    as_json: bool = JsonOpt,
) -> None:
    """Train random subnets across the latency range from scratch and record their quality."""
    from ..search.quality_data import CollectConfig, collect

    _counts(jobs=jobs, per_frac=per_frac, steps=train_steps)
    cfg = CollectConfig(preset=preset, cost_table=cost_table, fracs=tuple(fracs), per_frac=per_frac, train_steps=train_steps)
    count = [0]

    def start(total: int, finished: int) -> None:
        count[0] = finished
        typer.echo(f"{total} subnets planned ({finished} already trained); {train_steps} training steps each", err=True)

    def done(rec: dict) -> None:
        count[0] += 1
        if not as_json:
            typer.echo(f"[{count[0]}] {rec['id']} ({rec['frac']:.2f} x base loop, seed {rec['seed']}): quality {rec['quality']:+.3f} dB", err=True)

    recs = collect(cfg, out, jobs=jobs, on_done=done, on_start=start, train_device=train_device, train_precision=train_precision)
    if as_json:
        print_json({"out": str(out), "subnets": len(recs)})
    else:
        stdout.print(f"{out}: {len(recs)} subnets trained; fit with `rcai quality fit {out}/results.jsonl --out predictors/quality-{preset}.json`")


@quality_app.command("fit")
def fit_cmd(
    data: List[Path] = typer.Argument(..., help="results.jsonl of `rcai quality collect` (several: pooled)."),
    out: Path = typer.Option(..., "--out", "-o", help="Quality model to write, e.g. predictors/quality-tiny.json."),
    preset: str = PresetOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Fit the additive per-op quality model and print each op's effect with its interval."""
    from ..errors import RcaiError
    from ..io import refuse_special
    from ..proxies.additive import AdditiveQuality
    from ..search.quality_data import read_results
    from ..presets import get_preset

    refuse_special(out)
    records = []
    for path in data:
        if not path.is_file():
            raise RcaiError(f"{path}: no such file")
        records += read_results(path).values()  # every line a record (id, choices, finite quality), else one line naming it
    model = AdditiveQuality.fit(get_preset(preset), records, source=", ".join(map(str, data)))
    model.save(out)
    if as_json:
        print_json({"out": str(out), **model.__dict__})
        return
    fmt = lambda x, spec: "n/a" if x is None else format(x, spec)  # noqa: E731
    seed_sd = "" if model.noise_sd is None else f" (one subnet's sd over training seeds {model.noise_sd:.3f} dB)"
    stdout.print(f"wrote {out}: {model.n} subnets; leave-one-out Spearman {fmt(model.loo_spearman, '+.2f')}, RMSE {fmt(model.loo_rmse, '.3f')} dB"
                 f"{seed_sd}; intercept {model.intercept:+.3f} dB")
    for op, e in sorted(model.effects.items(), key=lambda kv: -kv[1]):
        lo, hi = model.ci95[op]
        stdout.print(f"  {op:12s} {e:+.4f} dB per slot  [{lo:+.4f}, {hi:+.4f}]")
    if model.seed_offsets:
        stdout.print("  training seeds vs their average: " + ", ".join(f"seed {k} {v:+.3f} dB" for k, v in model.seed_offsets.items()))


def _counts(**options: int) -> None:
    """Counts at the edge: a whole number >= 1, named by its option (--per-frac, not per_frac)."""
    from ..config import require_counts

    require_counts({name.replace("_", "-"): v for name, v in options.items()}, "--")
