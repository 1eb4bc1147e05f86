"""The whole sampling loop of every distinct architecture of an evaluation's records, timed together
in interleaved rounds (rcai.deploy.compare.compare_loops, ONNX Runtime on the CPU, 1 thread). The
figures are cached in `<out>/timing.json`: an architecture measured by an earlier report keeps its
figure, a later run only measures the new ones."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def measure_loops(records: list[dict[str, Any]], out: str | Path, steps: int, rounds: int, preset: str = "tiny") -> dict[str, dict[str, float]]:
    """subnet hash -> {median_ms, repeatability, load} for every record's `arch` (hash) and `choices`.
    The denoisers are exported with untrained weights (the timing does not depend on them) to
    `<out>/onnx/<hash>.onnx`."""
    from ..deploy import BenchConfig, export_subnet_onnx
    from ..deploy.compare import compare_loops
    from ..presets import get_preset
    from ..space.subnet import SubnetSpec
    from ..targets.sysinfo import load_average

    onnx_dir = Path(out) / "onnx"
    cache = Path(out) / "timing.json"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    cands = {}
    for r in records:
        if r["arch"] not in cands and r["arch"] not in known:
            path = onnx_dir / f"{r['arch']}.onnx"
            if not path.exists():
                export_subnet_onnx(SubnetSpec(get_preset(preset), r["choices"]), None, path, verify=False)
            cands[r["arch"]] = (path, "cpu")
    if cands:
        res = compare_loops(cands, BenchConfig(device="cpu", threads=1, sampler="ddim", steps=steps, psnr=False), rounds=rounds)
        known.update({k: {"median_ms": v["median_ms"], "repeatability": v["repeatability"], "load": (load_average() or [float("nan")])[0]} for k, v in res.items()})
        cache.write_text(json.dumps(known, indent=1))
    return known
