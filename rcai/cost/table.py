"""Cost table: one CSV row per op key (latency statistics, FLOPs, params, bytes, memory) plus a
`*.meta.json` sidecar saying where and how it was measured. Rows are appended one at a time with
fsync, so a killed profiling run keeps every row it finished; a trailing partial line is ignored."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import RcaiError
from ..io import append_line, atomic_write_json, atomic_write_text, read_json, refuse_special, repair_torn_line
from ..model.ops import OpSpec

SPEC_COLUMNS = ["key", "op", "c_in", "c_out", "h", "w", "groups", "emb"]
STAT_COLUMNS = ["median_ms", "p10_ms", "p90_ms", "cv", "count"]
COUNT_COLUMNS = ["flops", "flops_torch", "flops_mismatch", "params", "bytes", "peak_act_bytes"]
COLUMNS = SPEC_COLUMNS + STAT_COLUMNS + COUNT_COLUMNS
NUMERIC = [c for c in COLUMNS if c not in ("key", "op")]
MAX_OP_MS = 1e6  # one op taking over 16 minutes is not a measurement (1e300 would overflow every sum)


def meta_path(table: str | Path) -> Path:
    table = Path(table)
    return table.with_name(table.name.removesuffix(".csv") + ".meta.json")


@dataclass
class CostTable:
    path: Path
    meta: dict[str, Any]
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- writing ----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, meta: dict[str, Any]) -> "CostTable":
        """Start a new table, or reopen one to resume (its metadata must describe the same run)."""
        path = Path(path)
        refuse_special(path)
        if path.exists() and meta_path(path).exists():
            repair_torn_line(path)  # a row cut by a kill: dropped (and said) before appending
            table = cls.load(path)
            for k in ("arch_hash", "batch", "precision", "backend", "device", "threads"):
                if table.meta.get(k) != meta.get(k):
                    raise RcaiError(f"{path}: exists with {k}={table.meta.get(k)!r}, this run has {meta.get(k)!r}; use another --out")
            return table
        atomic_write_json(meta_path(path), meta)
        atomic_write_text(path, ",".join(COLUMNS) + "\n")
        return cls(path, dict(meta))

    def append(self, row: dict[str, Any]) -> None:
        buf = io.StringIO()
        csv.writer(buf).writerow([_fmt(row[c]) for c in COLUMNS])
        append_line(self.path, buf.getvalue())
        self.rows[row["key"]] = row

    def update_meta(self, **kw: Any) -> None:
        self.meta.update(kw)
        atomic_write_json(meta_path(self.path), self.meta)

    # -- reading ----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "CostTable":
        path = Path(path)
        if not path.exists():
            raise RcaiError(f"{path}: cost table not found")
        if not meta_path(path).exists():
            raise RcaiError(f"{path}: metadata sidecar {meta_path(path).name} not found")
        meta = read_json(meta_path(path), expect=dict)
        _check_overhead(meta_path(path), meta)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RcaiError(f"{path}: cannot read the cost table ({getattr(e, 'strerror', None) or e})") from None
        complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]  # drop a partial last line
        reader = csv.reader(io.StringIO(complete))
        header = next(reader, None)
        if header != COLUMNS:
            missing = [c for c in COLUMNS if c not in (header or [])]
            raise RcaiError(f"{path}: wrong columns (missing {', '.join(missing) or 'none'}; expected {len(COLUMNS)} columns)")
        rows: dict[str, dict[str, Any]] = {}
        first_line: dict[str, int] = {}
        for lineno, values in enumerate(reader, start=2):
            if len(values) != len(COLUMNS):
                raise RcaiError(f"{path}:{lineno}: expected {len(COLUMNS)} fields, got {len(values)} (truncated row?)")
            row = dict(zip(COLUMNS, values))
            for c in NUMERIC:
                try:
                    row[c] = float(row[c])
                except ValueError:
                    raise RcaiError(f"{path}:{lineno}: column {c} is not a number ({row[c]!r})") from None
                if not math.isfinite(row[c]) or row[c] < 0:
                    raise RcaiError(f"{path}:{lineno}: column {c} is {row[c]} for {row['key']}")
            for c in STAT_COLUMNS[:3]:
                if row[c] > MAX_OP_MS:
                    raise RcaiError(f"{path}:{lineno}: column {c} is {row[c]:g} ms for {row['key']} (over {MAX_OP_MS:g} ms: not a measurement)")
            if row["key"] in first_line:
                raise RcaiError(f"{path}:{lineno}: op {row['key']} appears twice (first on line {first_line[row['key']]})")
            first_line[row["key"]] = lineno
            rows[row["key"]] = row
        return cls(path, meta, rows)

    @property
    def precision(self) -> str:
        """The precision the ops were measured at (meta `precision`; tables from before it: fp32)."""
        return str(self.meta.get("precision") or "fp32")

    def check_compatible(self, preset, batch: int | None = None, precision: str | None = None, force: bool = False) -> None:
        """Refuse a table measured for another preset, batch or precision unless forced."""
        want = {"arch_hash": preset.arch_hash, "batch": batch, "precision": precision}
        for k, v in want.items():
            have = self.precision if k == "precision" else self.meta.get(k)
            if v is not None and have != v and not force:
                raise RcaiError(
                    f"{self.path}: table has {k}={have!r} ({self.meta.get('preset')}), expected {v!r} "
                    f"({preset.name}); pass --force to use it anyway"
                )

    def missing(self, specs: Iterable[OpSpec]) -> list[str]:
        return sorted({s.key for s in specs} - set(self.rows))

    def require(self, specs: Iterable[OpSpec]) -> None:
        missing = self.missing(specs)
        if missing:
            shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
            raise RcaiError(f"{self.path}: {len(missing)} ops missing from the table: {shown}")

    @property
    def latency_column(self) -> str:
        """The column an op's latency is read from: the profiling run's estimator (meta
        `latency_column`; tables from before it existed: median_ms)."""
        col = self.meta.get("latency_column", "median_ms")
        if col not in STAT_COLUMNS[:3]:
            raise RcaiError(f"{self.path}: latency_column {col!r} is not one of {STAT_COLUMNS[:3]}")
        return col

    @property
    def calibration(self) -> "Calibration | None":
        """The whole-network correction fitted by `rcai profile --calibrate N` (meta `calibration`)."""
        from .calibration import Calibration

        c = self.meta.get("calibration")
        return Calibration.from_dict(c, where=f"{meta_path(self.path)}: calibration") if c else None

    @property
    def overhead_ms(self) -> float:
        """Per-call overhead of the backend (an empty model's latency), counted once per network."""
        return float(self.meta.get("overhead_ms", 0.0))

    def latency(self, spec: OpSpec) -> float:
        """The op's own latency: its latency column minus the per-call overhead that every isolated
        measurement pays but a whole network pays only once (uncalibrated)."""
        return max(self.rows[spec.key][self.latency_column] - self.overhead_ms, 0.0)

    def value(self, spec: OpSpec, metric: str) -> float:
        if metric == "latency_ms":
            return self.latency(spec)
        return float(self.rows[spec.key][metric])


def _check_overhead(where: Path, meta: dict[str, Any]) -> None:
    v = meta.get("overhead_ms", 0.0)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= MAX_OP_MS:
        raise RcaiError(f"{where}: overhead_ms must be a finite number of ms >= 0, got {v!r}")


def spec_columns(spec: OpSpec) -> dict[str, Any]:
    return {"key": spec.key, "op": spec.op, "c_in": spec.c_in, "c_out": spec.c_out, "h": spec.h, "w": spec.w, "groups": spec.groups, "emb": spec.emb}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
