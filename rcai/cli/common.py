"""Shared CLI helpers: the options several commands take, and the output convention.

Output: a command's result (its figures, tables, the files it wrote) goes to stdout, as JSON with
`--json` else as text (`out`); progress, notes and warnings go to stderr (`console`), so
`rcai X --json > result.json` keeps only the result. One option name per concept across every
command (tests/test_cli.py holds the vocabulary)."""
from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

out = Console()  # results
console = Console(stderr=True)  # progress, notes, warnings

PresetOpt = typer.Option("tiny", "--preset", "-p", help="Search-space preset (see `rcai space --help`).")
JsonOpt = typer.Option(False, "--json", help="Print the result as JSON on stdout instead of text.")


def DeviceOpt(default: str = "cpu") -> Any:
    return typer.Option(default, "--device", "-d", help="Target: cpu (ONNX Runtime), torch (torch eager, this CPU), gpu (TensorRT if installed, else torch-cuda), torch-cuda (torch on the GPU, one CUDA graph replayed per call), jetson (TensorRT over ssh, --host).")


def ThreadsOpt(default: int | None = None) -> Any:
    return typer.Option(default, "--threads", help="Intra-op threads of the target (and of torch)" + ("." if default else "; default: all cores."))


def TrainDeviceOpt() -> Any:
    return typer.Option("auto", "--train-device", help="Where trainings run: auto (a CUDA GPU if there is one, else the CPU) | cpu | cuda | cuda:<i>. "
                        "Not the deployment target (--device).")


def TrainPrecisionOpt() -> Any:
    return typer.Option("auto", "--train-precision", help="fp32 | bf16 (autocast, fp32 master weights) | auto (bf16 on a CPU with native bf16, else fp32).")


def CostTableOpt(default: str | None = None, help: str = "Cost table CSV of the target (rcai profile).") -> Any:
    return typer.Option(default, "--cost-table", help=help)


def ImageDirOpt() -> Any:
    return typer.Option(None, "--image-dir", help="DIV2K-style folder of HR images (default: built-in scikit-image photos).")


def LatencyDataOpt(help: str = "Latency dataset CSV (model, latency_ms[, device]), e.g. from `rcai profile --archs`.") -> Any:
    return typer.Option(..., "--latency-data", help=help)


def threads_of(n: int | None):
    """A context running torch on `--threads n` (None: unchanged), the count checked first."""
    from ..threads import require_threads, torch_threads

    require_threads(n, default="torch's")
    return torch_threads(n)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=float))


def human(n: float) -> str:
    for unit, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"
