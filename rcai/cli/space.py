"""`rcai space`: describe a preset's search space; `rcai space select`: TinyNAS space selection."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import RcaiError
from ..presets import get_preset, list_presets
from .common import JsonOpt, PresetOpt, human, out as stdout, print_json
from .defaults import STRATEGY
from .main import app

space_app = typer.Typer(invoke_without_command=True, help="Describe a preset's search space (or select one: `rcai space select`).")
app.add_typer(space_app, name="space")


@space_app.callback()
def space(ctx: typer.Context, preset: str = PresetOpt, json: bool = JsonOpt) -> None:
    """Print blocks, choices per slot, total subnet count, params and FLOPs of the supernet and of
    the base/largest/smallest subnet. Presets: rcai-report (the report's 944,784 subnets), tiny.
    `rcai space select`: choose a width x resolution space under a latency or memory constraint."""
    if ctx.invoked_subcommand is not None:
        return
    from ..cost.summary import space_summary

    s = space_summary(get_preset(preset))
    if json:
        print_json(s)
        return
    out = stdout
    out.print(f"[bold]{s['preset']}[/] (hash {s['preset_hash']}) — presets: {', '.join(list_presets())}")
    t = Table("slot", "choices", "subnets")
    for slot in s["slots"]:
        t.add_row(slot["slot"], ", ".join(slot["choices"]), str(slot["subnets"]))
    out.print(t)
    factors = " * ".join(str(b["subnets"]) for b in s["blocks"])
    out.print(f"subnets per ResNet block: {factors} = [bold]{s['subnets']:,}[/] subnets")
    t = Table("network", "params", "FLOPs (fwd, batch 1)")
    for k in ("supernet", "base", "largest", "smallest"):
        t.add_row(k, human(s[k]["params"]), human(s[k]["flops"]))
    out.print(t)


def _numbers(text: str, kind: type, option: str) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise RcaiError(f"{option}: expected comma-separated {kind.__name__}s, got {text!r}") from None
    if not values or min(values) <= 0:
        raise RcaiError(f"{option}: expected positive {kind.__name__}s, got {text!r}")
    return values


@space_app.command("select")
def select(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for space.json (every candidate), preset.json (the chosen one) and cdf.png."),
    preset: str = PresetOpt,
    widths: str = typer.Option("0.5,0.75,1,1.25,1.5", help="Width multipliers of the base channels, comma-separated."),
    resolutions: str = typer.Option("48,64,80", help="HR input sizes (px), comma-separated; LR = HR / the preset's scale."),
    latency_budget_ms: Optional[float] = typer.Option(None, help="Budget for the whole sampling loop (ms), predicted by --predictor."),
    predictor: Optional[Path] = typer.Option(None, help="GNN predictor: the latency of each sampled subnet of every candidate space."),
    head: Optional[str] = typer.Option(None, "--head", help="The predictor's output head (named after the device it learnt; for multi-device predictors)."),
    sample_steps: int = typer.Option(STRATEGY["steps_per_sample"], "--sample-steps", help="Sampling steps of the deployed loop; latency counts all of them."),
    max_memory_mib: Optional[float] = typer.Option(None, help="Peak activation memory limit (MiB, analytic, batch 1)."),
    samples: int = typer.Option(500, help="Random subnets drawn per candidate space."),
    seed: int = typer.Option(0, "--seed"),
    json: bool = JsonOpt,
) -> None:
    """TinyNAS space selection: for every width x resolution, draw random subnets, keep those within
    the latency budget and/or the memory limit, and choose the space whose kept subnets have the most
    FLOPs on average (their FLOPs CDF is plotted)."""
    from ..io import atomic_write_json

    w, r = _numbers(widths, float, "--widths"), _numbers(resolutions, int, "--resolutions")
    if latency_budget_ms is None and max_memory_mib is None:
        raise RcaiError("give a constraint: --latency-budget-ms (with --predictor) and/or --max-memory-mib")
    if (latency_budget_ms is None) != (predictor is None):
        raise RcaiError("--latency-budget-ms and --predictor go together (the predictor estimates each candidate space's latency)")
    if max_memory_mib is not None and not max_memory_mib > 0:
        raise RcaiError(f"--max-memory-mib: must be > 0, got {max_memory_mib}")
    if samples < 1:
        raise RcaiError(f"--samples: must be >= 1, got {samples}")
    if out.exists() and not out.is_dir():
        raise RcaiError(f"{out}: exists and is not a folder")
    base = get_preset(preset)
    from ..search.space_select import LatencyLimit, describe, plot_cdfs, select_space

    latency = None
    if latency_budget_ms is not None:
        from ..predictor.predictor import LatencyPredictor

        latency = LatencyLimit(latency_budget_ms, LatencyPredictor.load(predictor), sample_steps, head)
    memory = None if max_memory_mib is None else max_memory_mib * 2**20
    best, stats = select_space(base, w, r, memory, samples, seed, latency)
    out.mkdir(parents=True, exist_ok=True)
    plot_cdfs(stats, best, out / "cdf.png", memory, latency)
    rows = [{"width": s.width, "resolution": s.resolution, "preset": s.preset.name, "base_channels": s.preset.base_channels,
             "satisfied": s.satisfied, "mean_flops": s.mean_flops, "p80_flops": s.quantile(0.8), "chosen": s is best}
            for s in sorted(stats, key=lambda s: -s.mean_flops)]
    summary = {"preset": base.name, "constraint": describe(memory, latency), "max_memory_bytes": memory,
               "latency_budget_ms": latency_budget_ms, "sample_steps": sample_steps if latency else None,
               "predictor": str(predictor) if predictor else None, "samples": samples, "seed": seed,
               "chosen": next(x for x in rows if x["chosen"]), "spaces": rows,
               "files": {k: str(out / f) for k, f in (("space", "space.json"), ("preset", "preset.json"), ("cdf", "cdf.png"))}}
    atomic_write_json(out / "preset.json", best.preset.to_dict())
    atomic_write_json(out / "space.json", summary)
    if json:
        print_json(summary)
        return
    t = Table("width", "HR px", "base ch", "fit", "mean MFLOPs (fit)", "")
    for x in rows:
        t.add_row(f"{x['width']:g}", str(x["resolution"]), str(x["base_channels"]), f"{x['satisfied']:.0%}",
                  f"{x['mean_flops'] / 1e6:.1f}", "chosen" if x["chosen"] else "")
    stdout.print(t)
    stdout.print(f"{summary['constraint']}: chosen width {best.width:g}, resolution {best.resolution} "
                 f"({best.preset.name}); wrote {out}/space.json, preset.json, cdf.png")
