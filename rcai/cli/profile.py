"""`rcai profile`: per-op cost table and whole-subnet latency dataset on a target."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import JsonOpt, PresetOpt, out as stdout, print_json
from .main import app



@app.command()
def profile(
    device: str = typer.Option("cpu", "--device", "-d", help="Target: cpu (ONNX Runtime), torch (torch eager on this CPU), gpu (TensorRT if installed, else torch-cuda with CUDA graphs), jetson (TensorRT over ssh, unverified)."),
    preset: str = PresetOpt,
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Table CSV (default latency_tables/<device>-<preset>.csv)."),
    threads: Optional[int] = typer.Option(None, help="Backend threads (default: all cores)."),
    batch: int = typer.Option(1, help="Batch size of every measurement."),
    archs: int = typer.Option(0, help="Also measure N random whole subnets end to end (the predictor's dataset)."),
    archs_out: Optional[str] = typer.Option(None, help="Dataset folder (default: <table without .csv>-archs/)."),
    rounds: int = typer.Option(2, help="Interleaved measurement rounds per subnet (--archs)."),
    seed: int = typer.Option(0, help="Seed of the random subnets (--archs)."),
    sampling: str = typer.Option("uniform", help="How --archs draws subnets: uniform | skewed (ops biased per subnet: reaches the extremes)."),
    skip_ops: bool = typer.Option(False, help="Only the --archs dataset, no op table."),
    host: Optional[str] = typer.Option(None, "--host", envvar="RCAI_REMOTE_HOST", help="Measure on [user@]addr[:port] over ssh (the host needs Python, numpy and the runtime; $RCAI_REMOTE_PYTHON, $RCAI_SSH_CONFIG)."),
    json: bool = JsonOpt,
) -> None:
    """Measure every distinct op of the preset's supernet on the target into a cost table
    (median/p10/p90/CV/count, FLOPs by DeepSpeed cross-checked by torch, params, bytes, peak activation
    memory). Resumable: run the same command again after a kill and it continues where it stopped."""
    from ..cost.archs import ArchDatasetConfig, profile_archs
    from ..cost.profile import NET_MEASURE, OP_MEASURE, ProfileConfig, default_table_path, profile_ops
    from ..errors import RcaiError

    if archs < 0 or rounds < 1:
        raise RcaiError(f"--archs must be >= 0 (0: no subnets) and --rounds >= 1, got {archs} and {rounds}")
    acfg = ArchDatasetConfig(archs=archs, rounds=rounds, seed=seed, sampling=sampling) if archs else None
    table_path = Path(out) if out else default_table_path(device, preset)
    result: dict = {}
    if not skip_ops:
        cfg = ProfileConfig(preset=preset, device=device, threads=threads, batch=batch, measure=OP_MEASURE, host=host)
        table = profile_ops(cfg, table_path, progress=not json)
        result["table"] = {"path": str(table.path), "ops": len(table.rows), "overhead_ms": table.overhead_ms}
        if not json:
            stdout.print(f"{table.path}: {len(table.rows)} ops, per-call overhead {table.overhead_ms * 1000:.1f} us")
    if archs:
        folder = Path(archs_out) if archs_out else table_path.with_name(table_path.name.removesuffix(".csv") + "-archs")
        cfg = ProfileConfig(preset=preset, device=device, threads=threads, batch=batch, measure=NET_MEASURE, host=host)
        dataset = profile_archs(cfg, acfg, folder, progress=not json)
        result["dataset"] = str(dataset)
        if not json:
            stdout.print(f"{dataset}: {archs} subnets, {rounds} rounds each")
    if json:
        print_json(result)
