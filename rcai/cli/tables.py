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
    from ..space.presets import get_preset
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
    out.print(f"per-call overhead {t.overhead_ms * 1000:.1f} us (subtracted from each op, added once per network)")
    grid = Table("op key", "median ms", "p10-p90", "cv", "n", "FLOPs", "DS/torch")
    for r in t.rows.values():
        grid.add_row(r["key"], f"{r['median_ms']:.4f}", f"{r['p10_ms']:.4f}-{r['p90_ms']:.4f}", f"{r['cv']:.2f}", f"{r['count']:.0f}",
                     human(r["flops"]), "[red]mismatch[/]" if r["flops_mismatch"] else "ok")
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
    """Table sum vs measured whole subnets: Acc+-10%, Spearman, MAPE, bias (and the measurement's
    own round-to-round repeatability, the ceiling of any estimate)."""
    from ..cost.check import check_table
    from ..cost.table import CostTable

    res = check_table(CostTable.load(table), latency_data, force=force)
    res.pop("_arrays")
    if json:
        print_json(res)
        return
    out = Console()
    grid = Table("estimate", "n", "Acc+-10%", "Acc+-5%", "Spearman", "MAPE", "bias")
    for k in ("table_sum", "raw_sum", "repeatability"):
        if k in res:
            r = res[k]
            grid.add_row(k, str(r["n"]), f"{r['acc_10']:.1%}", f"{r['acc_5']:.1%}", f"{r['spearman']:.3f}", f"{r['mape']:.1%}", f"{r['bias']:+.1%}")
    out.print(grid)
