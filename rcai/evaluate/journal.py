"""The append-only results journal of an evaluation (`<out>/results.jsonl`, one record per job): a
killed run continues where it stopped. A line torn by a kill is skipped on reading and dropped before
the next append (rcai.io.append_line)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..io import append_line, read_jsonl


def records(path: str | Path) -> list[dict[str, Any]]:
    """Every complete record of the journal ([] if there is none)."""
    return read_jsonl(path)


def finished(path: str | Path) -> list[dict[str, Any]]:
    """The jobs that finished (an error record or a reuse check is a job to redo)."""
    return [r for r in records(path) if "error" not in r and "reuse_check" not in r]


def append(path: str | Path, rec: dict[str, Any]) -> None:
    """One record, on a line of its own, fsynced."""
    append_line(path, json.dumps(rec))


def todo(jobs: list[dict[str, Any]], done: dict[str, Any]) -> list[dict[str, Any]]:
    """The jobs whose id has no finished record."""
    return [j for j in jobs if j["id"] not in done]
