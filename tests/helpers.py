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
