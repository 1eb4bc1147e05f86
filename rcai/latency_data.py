"""The latency dataset (`dataset.csv` of `rcai profile --archs`): its columns and one reader, used by
the dataset writer (cost/archs), `rcai tables check` (cost/check) and the predictor (predictor/dataset).

    rows = read_rows(path, ("latency_ms", "subnet"))   # [(line number, {column: text})]
    ms = positive_ms(f"{path}:{line}", "latency_ms", row["latency_ms"])
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

from .errors import RcaiError

COLUMNS = ("model", "latency_ms", "device", "p10_ms", "p90_ms", "cv", "count", "round_ms", "repeatability", "subnet", "half1_ms", "half2_ms")


def read_rows(path: str | Path, required: Sequence[str] = ("model", "latency_ms")) -> list[tuple[int, dict[str, str]]]:
    """Every data row with its line number, cells stripped; one-line errors for a missing file or
    column, a cut or over-long line (a kill mid-append) and a file without rows."""
    path = Path(path)
    if not path.exists():  # a folder in its place: the OS error, one line at the CLI
        raise RcaiError(f"{path}: file not found")
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheet exports
        reader = csv.DictReader(f)
        cols = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in required if c not in cols]
        if missing:
            raise RcaiError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(cols) or 'none'})")
        reader.fieldnames = cols
        rows = []
        for r in reader:
            if None in r or None in r.values():
                n = len(cols) - sum(v is None for v in r.values()) + len(r.get(None) or [])
                raise RcaiError(f"{path} line {reader.line_num}: {n} fields, the header has {len(cols)} (a truncated line?)")
            rows.append((reader.line_num, {k: v.strip() for k, v in r.items()}))
    if not rows:
        raise RcaiError(f"{path}: no data rows")
    return rows


def positive_ms(where: str, column: str, text: str | None) -> float:
    """A measured latency: a positive finite number of ms, else a one-line error saying where."""
    if not text:
        raise RcaiError(f"{where}: {column} is missing")
    try:
        v = float(text)
    except ValueError:
        raise RcaiError(f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(v) or v <= 0:
        raise RcaiError(f"{where}: {column} must be a positive finite number of ms, got {text}")
    return v
