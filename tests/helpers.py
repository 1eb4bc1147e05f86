"""Helpers shared by test modules (pytest puts tests/ on sys.path)."""
import sys

import pytest


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """The real `rcai` entry point, in-process (a subprocess would re-import torch: slow)."""
    from rcai.cli.main import main

    monkeypatch.setattr(sys, "argv", ["rcai", *args])
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def run_darts(engine_cfg, out, resume: bool = False) -> dict:
    """A DARTS run described by its engine config (SearchConfig), through the one strategy runner
    the CLI, the pipeline and the benchmarks use; returns its result.json summary."""
    from rcai.search.strategies.darts import strategy_config
    from rcai.search.strategies.run import run_strategy

    return run_strategy(strategy_config(engine_cfg), out, resume=resume)[1]
