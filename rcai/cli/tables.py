"""`rcai tables show|check`: inspect a cost table, check it against measured subnets."""
from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .common import JsonOpt, LatencyDataOpt, human, print_json
from .main import app

tables_app = typer.Typer(help="Inspect and check cost tables.", no_args_is_help=True)
app.add_typer(tables_app, name="tables")


@tables_app.command("show")
def show(
    table: str = typer.Argument(..., help="Cost table CSV."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="List the ops this preset needs that the table lacks."),
    json: bool = JsonOpt,
) -> None:
    """Summary: where it was measured, every op with its median latency, spread and FLOPs."""
    from ..cost.table import CostTable
    from ..presets import get_preset
    from ..space.space import SearchSpace

    t = CostTable.load(table)
    missing = SearchSpace.of(get_preset(preset)).all_specs() if preset else []
    missing_keys = t.missing(missing) if preset else []
    if json:
        print_json({"meta": t.meta, "rows": list(t.rows.values()), "missing": missing_keys})
        return
    out = Console()
    m = t.meta
    out.print(f"[bold]{table}[/]: {m.get('device_model')} / {m.get('backend')} {m.get('backend_version')}, {m.get('precision')}, "
              f"threads {m.get('threads')}, batch {m.get('batch')}, preset {m.get('preset')} ({m.get('preset_hash')}), {m.get('date')}")
    out.print(f"per-call overhead {t.overhead_ms * 1000:.1f} us (subtracted from each op, added once per network); "
              f"latency column {t.latency_column}, method {m.get('method', 'sequential')}, clock {m.get('clock', 'wall')}")
    if m.get("drift"):
        h = m.get("half_split_summary", {})
        out.print(f"load {m.get('load_average')}; machine speed per round {m['drift']['min']:.3f}..{m['drift']['max']:.3f}; "
                  f"first vs second half of the rounds: median {h.get('median', float('nan')):.1%}, max {h.get('max', float('nan')):.1%}")
    cal = t.calibration
    if cal:
        what = f"whole {m.get('loop', {}).get('steps', '?')}-step loops ({m.get('loop', {}).get('clock')} clock)" if cal.target == "loop" else "single calls"
        out.print(f"calibrated on {cal.subnets} whole subnets' {what}: network overhead {cal.overhead_ms:.3f} ms, factors "
                  + ", ".join(f"{k} {v:.2f}" for k, v in sorted(cal.factors.items())) + " (used by every estimate)")
    if m.get("sampler_ms"):
        out.print("the sampler's own work per step (measured, added to every step of an estimate): "
                  + ", ".join(f"{k} {v * 1000:.0f} us" for k, v in sorted(m["sampler_ms"].items())))
    grid = Table("op key", "median ms", "p10-p90", "cv", "n", "FLOPs", "DS/torch")
    for r in t.rows.values():
        grid.add_row(r["key"], f"{r['median_ms']:.4f}", f"{r['p10_ms']:.4f}-{r['p90_ms']:.4f}", f"{r['cv']:.2f}", f"{r['count']:.0f}",
                     human(r["flops"]), {1: "[red]mismatch[/]", -1: "torch only"}.get(int(r["flops_mismatch"]), "ok"))
    out.print(grid)
    if preset:
        out.print(f"missing for {preset}: {', '.join(missing_keys) if missing_keys else 'none'}")


@tables_app.command("check")
def check(
    table: str = typer.Argument(..., help="Cost table CSV."),
    latency_data: str = LatencyDataOpt("dataset.csv written by `rcai profile --archs` (measured whole subnets)."),
    force: bool = typer.Option(False, "--force", help="Use a table measured for another preset/batch/precision."),
    json: bool = JsonOpt,
) -> None:
    """Table estimate (calibrated where the table is) vs measured whole subnets: Acc+-10%, Spearman,
    MAPE, bias, beside the measurement's own repeatability (first vs second half of its rounds, the
    ceiling of any estimate) and the load average. Run `rcai profile check` for the whole check."""
    from ..cost.check import check_table
    from ..targets.sysinfo import load_average
    from ..cost.table import CostTable

    res = check_table(CostTable.load(table), latency_data, force=force)
    res.pop("_arrays")
    res["load_average"] = load_average()
    if json:
        print_json(res)
        return
    out = Console()
    out.print(_grid({k: res[k] for k in ("repeatability", "table_sum", "uncalibrated", "raw_sum") if k in res}, LABELS))
    out.print(f"load average {res['load_average']}; {res['calibration_subnets_left_out']} calibration subnets left out")
    out.print(res["quantity"])


LABELS = {
    "repeatability": "re-measurement (2nd half of rounds vs 1st)",
    "table_sum": "table estimate (calibrated if the table is)",
    "uncalibrated": "table without its calibration",
    "raw_sum": "raw sum of isolated ops",
}


def _grid(rows: dict, labels: dict) -> Table:
    grid = Table("figure", "n", "Acc+-10%", "Acc+-5%", "Spearman", "MAPE", "bias")
    for k, r in rows.items():
        grid.add_row(labels.get(k, k), str(r["n"]), f"{r['acc_10']:.1%}", f"{r['acc_5']:.1%}", f"{r['spearman']:.3f}", f"{r['mape']:.1%}", f"{r['bias']:+.1%}")
    return grid
