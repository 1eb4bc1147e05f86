"""`rcai space`: describe a preset's search space."""
from __future__ import annotations

from rich.table import Table

from ..space.presets import get_preset, list_presets
from .common import JsonOpt, PresetOpt, human, out as stdout, print_json
from .main import app


@app.command()
def space(preset: str = PresetOpt, json: bool = JsonOpt) -> None:
    """Print blocks, choices per slot, total subnet count, params and FLOPs of the supernet and of
    the base/largest/smallest subnet. Presets: rcai-report (the report's 944,784 subnets), tiny."""
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
