"""`rcai profile`: measure every distinct op of a preset's supernet on a target into a cost table.

The op list is read off the supernet (SearchSpace.all_specs), never hand-written. Each op is built
standalone, exported to ONNX and measured; FLOPs come from DeepSpeed's profiler (as in the report),
cross-checked against torch's FlopCounterMode. Rows are appended as they are measured, so a killed
run restarted with the same arguments continues where it stopped.
"""
from __future__ import annotations

import datetime as _dt
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import RcaiError
from ..io import refuse_special
from ..lock import exclusive
from ..model.ops import OpSpec, build_op
from ..model.ops.registry import example_inputs
from ..onnx_export import export_onnx
from ..progress import progress_bar
from ..space.presets import Preset, get_preset
from ..space.space import SearchSpace
from ..targets import MeasureConfig, Target, resolve_device
from .counters import op_counts
from .table import CostTable, spec_columns

FLOPS_TOLERANCE = 0.01  # DeepSpeed vs torch disagreement flagged above 1%
# Isolated ops are fast (tens of microseconds): afford many repeats for a stable median.
OP_MEASURE = MeasureConfig(warmup=10, min_repeats=50, max_repeats=2000, chunk=25, rel_tol=0.01, max_seconds=3.0)
# Whole subnets (a few ms): fewer repeats per round, several interleaved rounds.
NET_MEASURE = MeasureConfig(warmup=5, min_repeats=20, max_repeats=300, chunk=10, rel_tol=0.02, max_seconds=3.0)


@dataclass(frozen=True)
class ProfileConfig:
    preset: str = "tiny"
    device: str = "cpu"
    threads: int | None = None
    batch: int = 1
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    host: str | None = None  # [user@]addr[:port]: measure there over ssh

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise RcaiError(f"--threads must be >= 1 (or left out for all cores), got {self.threads}")
        if self.batch < 1:
            raise RcaiError(f"--batch must be >= 1, got {self.batch}")

    def target(self) -> Target:
        settings = {"threads": self.threads} if self.threads else {}
        return resolve_device(self.device, host=self.host, **settings)


def default_table_path(device: str, preset: str) -> Path:
    return Path("latency_tables") / f"{device}-{preset}.csv"


def table_meta(cfg: ProfileConfig, preset: Preset, target: Target) -> dict[str, Any]:
    info = target.info().to_dict()
    return {
        **info,
        "device_name": cfg.device,
        "batch": cfg.batch,
        "precision": info.get("precision", "fp32"),
        "host": socket.gethostname(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "rcai_version": __version__,
        "preset": preset.name,
        "preset_hash": preset.hash,
        "arch_hash": preset.arch_hash,
        "measure": cfg.measure.to_dict(),
        "target_settings": target.settings(),
        "host_facts": target.host_facts(),
    }


class _Overhead(torch.nn.Module):
    """The smallest model: one multiply on one number. Its latency is the per-call overhead."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0


def measure_overhead(target: Target, cfg: MeasureConfig, workdir: Path) -> float:
    if not target.takes_onnx:
        return target.prepare(_Overhead(), {"x": ((1, 1), "float32")}).measure(cfg).median_ms
    path = export_onnx(_Overhead(), [torch.ones(1, 1)], ["x"], workdir / "overhead.onnx")
    return target.prepare(path).measure(cfg).median_ms


def deepspeed_counts(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[float, float]:
    """(flops, macs) from DeepSpeed's flops profiler."""
    import contextlib
    import logging
    import sys

    logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(sys.stderr):  # its logger, made at import, would print on stdout (breaking --json)
        from deepspeed.profiling.flops_profiler import get_model_profile

    with torch.no_grad():
        flops, macs, _ = get_model_profile(module, args=list(inputs), print_profile=False, detailed=False, as_string=False)
    return float(flops), float(macs)


def profile_op(spec: OpSpec, target: Target, batch: int, measure: MeasureConfig, workdir: Path) -> dict[str, Any]:
    torch.manual_seed(0)
    module = build_op(spec).eval()
    inputs = example_inputs(spec, batch)
    names = list(spec.input_shapes(batch))
    if target.takes_onnx:
        stats = target.prepare(export_onnx(module, inputs, names, workdir / f"{spec.key}.onnx")).measure(measure)
    else:  # torch targets run the module itself
        specs = {n: (tuple(t.shape), str(t.dtype).replace("torch.", "")) for n, t in zip(names, inputs)}
        stats = target.prepare(module, specs).measure(measure)
    counts = op_counts(spec, batch)
    ds_flops, ds_macs = deepspeed_counts(module, inputs)
    mismatch = abs(2 * ds_macs - counts["flops"]) / max(counts["flops"], 1.0) > FLOPS_TOLERANCE
    return {
        **spec_columns(spec),
        "median_ms": stats.median_ms,
        "p10_ms": stats.p10_ms,
        "p90_ms": stats.p90_ms,
        "cv": stats.cv,
        "count": stats.count,
        "flops": ds_flops,
        "flops_torch": counts["flops"],
        "flops_mismatch": int(mismatch),
        "params": counts["params"],
        "bytes": counts["bytes"],
        "peak_act_bytes": counts["peak_act_bytes"],
    }


def profile_ops(cfg: ProfileConfig, out: str | Path, progress: bool = True) -> CostTable:
    refuse_special(Path(out))  # before its lock file: never a /dev/full.lock
    with exclusive(out):  # one writer per table
        return _profile_ops(cfg, out, progress)


def _profile_ops(cfg: ProfileConfig, out: str | Path, progress: bool) -> CostTable:
    preset = get_preset(cfg.preset)
    target = cfg.target()
    specs = SearchSpace.of(preset).all_specs()
    table = CostTable.create(out, table_meta(cfg, preset, target))
    with tempfile.TemporaryDirectory(prefix="rcai-profile-") as tmp:
        workdir = Path(tmp)
        if "overhead_ms" not in table.meta:
            table.update_meta(overhead_ms=measure_overhead(target, cfg.measure, workdir))
        todo = [s for s in specs if s.key not in table.rows]
        with progress_bar(progress, "profiling ops", len(specs), len(specs) - len(todo), transient=False) as advance:
            for spec in todo:
                table.append(profile_op(spec, target, cfg.batch, cfg.measure, workdir))
                advance(spec.key)
    return table
