"""Shared CLI helpers: options used by several command groups, JSON/figure output."""
from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

console = Console(stderr=True)

PresetOpt = typer.Option("tiny", "--preset", "-p", help="Search-space preset (see `rcai space --help`).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=float))


def human(n: float) -> str:
    for unit, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"
