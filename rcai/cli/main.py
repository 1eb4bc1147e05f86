"""The `rcai` console script. Command groups register themselves on `app` when imported."""
from __future__ import annotations

import importlib
import sys

import typer

from ..errors import RcaiError

app = typer.Typer(
    name="rcai",
    help="Hardware-aware NAS for diffusion super-resolution: profile ops on a target, search a "
    "latency-aware subnet, export it and measure the whole T-step sampling loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"rcai {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print rcai's version and exit."),
) -> None:
    """rcai: profile -> search -> export -> bench. Run `rcai COMMAND --help` for each step.
    Shell completion: `rcai --install-completion`."""


# Each module adds its commands to `app` at import (see e.g. rcai/cli/space.py).
COMMAND_MODULES = ["space", "train", "sample", "profile", "tables", "search", "supernet", "schedule", "quality", "predictor", "deploy", "pipeline"]

for _name in COMMAND_MODULES:
    try:
        importlib.import_module(f"{__package__}.{_name}")
    except ModuleNotFoundError as e:  # a command group not built yet
        if e.name != f"{__package__}.{_name}":
            raise


def main() -> None:
    """Entry point: bad input is one line on stderr and exit code 2, never a traceback.
    (Usage errors are handled by typer itself, also with exit code 2.)"""
    try:
        app(prog_name="rcai")
    except RcaiError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except OSError as e:  # a user path rcai did not wrap itself: still one line naming it
        where = f"{e.filename}: " if e.filename is not None else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        sys.exit(RcaiError.exit_code)
