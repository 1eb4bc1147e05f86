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


def darts_config(**kw):
    """A DARTS StrategyConfig from flat keywords, as tests write them: StrategyConfig's fields, `data_dir`
    (the proxies' data folder), and DartsOptions' for the rest."""
    from dataclasses import fields

    from rcai.proxies import ProxyConfig
    from rcai.search.config import DartsOptions
    from rcai.search.strategies.base import StrategyConfig

    shared = {k: kw.pop(k) for k in [f.name for f in fields(StrategyConfig)] if k in kw}
    return StrategyConfig(**{"strategy": "darts", "proxy_config": ProxyConfig(data_dir=kw.pop("data_dir", None)), **shared,
                             "darts": DartsOptions(**kw)})


def run_darts(cfg, out, resume: bool = False) -> dict:
    """A DARTS run of a StrategyConfig through the one strategy runner the CLI, the pipeline and the
    benchmarks use; returns its result.json summary."""
    from rcai.search.strategies.run import run_strategy

    return run_strategy(cfg, out, resume=resume)[1]
