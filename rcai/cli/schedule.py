"""`rcai schedule search`: a step-aware schedule (a subnet per segment of the sampling loop) over one
supernet, under a whole-loop latency budget by a cost table (rcai/search/schedule_search.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import CostTableOpt, ImageDirOpt, JsonOpt, console, out as stdout, print_json, threads_of
from .defaults import defaults
from .main import app

SS = defaults("search/schedule_search.py", "ScheduleSearchConfig")
schedule_app = typer.Typer(help="Step-aware schedules: a subnet per segment of the sampling loop.", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("search")
def search_cmd(
    supernet: Path = typer.Option(..., "--supernet", help="supernet.pt of `rcai supernet train` (predictor.json beside it)."),
    cost_table: str = CostTableOpt("latency_tables/cpu-tiny.csv", help="Cost table of the target: prices every step."),
    latency_budget_ms: float = typer.Option(..., "--latency-budget-ms", help="Budget for the whole T-step loop (ms, by the table)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder: schedule.json (for `rcai export --schedule`), result.json, evaluations.jsonl."),
    segments: int = typer.Option(SS["segments"], help="Segments of the loop, a subnet each."),
    boundaries: Optional[str] = typer.Option(None, help="Fixed segment boundaries as fractions of the loop, e.g. 0.3 or 0.2,0.6 (default: searched)."),
    sample_steps: int = typer.Option(SS["steps"], "--sample-steps", help="T: denoiser calls of the loop (ddim)."),
    evaluations: int = typer.Option(SS["evaluations"], help="Loop-metric evaluations (at least every single-subnet schedule of the pool)."),
    levels: int = typer.Option(SS["levels"], help="Per-step budgets a pool subnet is proposed at by the supernet's predictor."),
    seeds: int = typer.Option(SS["seeds"], help="Sampler seeds of the loop metric."),
    crops: int = typer.Option(SS["crops"], help="Validation crops of the loop metric."),
    seed: int = typer.Option(SS["seed"], help="The evolution's seed."),
    image_dir: Optional[str] = ImageDirOpt(),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: torch's; 1 on a busy machine)."),
    json: bool = JsonOpt,
) -> None:
    """Search the schedule of best loop quality (inherited weights, validation crops) within the budget;
    a rerun answers from its journal. Single-subnet schedules are among those judged."""
    from ..search.schedule_search import ScheduleSearchConfig, search_schedule

    cfg = ScheduleSearchConfig(latency_budget_ms=latency_budget_ms, segments=segments, boundaries=_fractions(boundaries), steps=sample_steps,
                               levels=levels, evaluations=evaluations, seeds=seeds, crops=crops, seed=seed, data_dir=image_dir)
    with threads_of(threads):
        res = search_schedule(supernet, cost_table, cfg, out, progress=None if json else console.print)
    if json:
        print_json({**res, "schedule": res["schedule"].to_dict()})
        return
    s, q, single = res["schedule"], res["quality"], res["best_single"]
    segs = ", ".join(f"steps {g.start}-{g.stop - 1}: {g.subnet}" for g in s.segments)
    stdout.print(f"{out}/schedule.json: {segs}; {res['table_loop_ms']:.4g} ms loop by the table (budget {res['budget_ms']:.4g}); "
                 f"{q['sample_psnr']:.3f} dB (sd {q['sample_psnr_sd']:.3f} over seeds), {res['evaluations']} evaluations")
    if single:
        stdout.print(f"best single subnet ({single['subnet']}): {single['quality']['sample_psnr']:.3f} dB at {single['table_loop_ms']:.4g} ms")


def _fractions(text: str | None) -> tuple[float, ...] | None:
    from ..errors import RcaiError

    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise RcaiError(f"--boundaries must be comma-separated fractions, e.g. 0.3 or 0.2,0.6, got {text!r}") from None
