"""One CLI vocabulary: every command's options are walked (typer/click introspection) and checked
against the concepts below: one option name per concept, one concept per name, `--json` on every
command, one long name per short flag. Plus `rcai --version` and shell completion."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer

from rcai import __version__
from rcai.cli.main import app

# concept -> (its option name, names it must not go by). A name listed as a synonym is refused in
# every command: the file, folder or number it means already has a name.
CONCEPTS: dict[str, tuple[str, set[str]]] = {
    "cost table CSV": ("--cost-table", {"--table", "--costs", "--lut", "--latency-table"}),
    "GNN predictor file": ("--predictor", {"--pred", "--predictor-file", "--model-predictor"}),
    "folder of HR training images": ("--image-dir", {"--data", "--data-dir", "--images", "--hr-dir", "--dataset"}),
    "latency dataset CSV": ("--latency-data", {"--data", "--dataset", "--latency-csv", "--csv"}),
    "one LR input image": ("--image", {"--input", "--lr-image", "--img"}),
    "weight-only warm-up steps": ("--warmup-steps", {"--warmup", "--warm-up"}),
    "training batch size": ("--batch-size", {"--bs", "--train-batch"}),
    "inference batch (images per loop / measurement)": ("--batch", {"--infer-batch", "--batch-infer", "--n-images"}),
    "sampling steps (denoiser calls)": ("--sample-steps", {"--steps-per-sample", "--sampling-steps", "--denoise-steps", "--ddim-steps"}),
    "bilevel search steps": ("--search-steps", {"--search-iters", "--iterations"}),
    "optimizer steps of training": ("--steps", {"--iters", "--train-steps", "--num-steps"}),
    "target (device) to run on": ("--device", {"--target", "--backend", "--hw"}),
    "a predictor's output head": ("--head", {"--output-head", "--predictor-device"}),
    "target threads": ("--threads", {"--num-threads", "--intra-op-threads", "-j"}),
    "output file or folder": ("--out", {"--output", "--output-dir", "--out-dir", "--dest"}),
    "search-space preset": ("--preset", {"--space", "--config-preset"}),
    "random seed": ("--seed", {"--random-seed", "--rng"}),
    "machine-readable output": ("--json", {"--as-json", "--format-json", "--machine"}),
}
# short flag -> the only long name it may abbreviate
SHORT = {"-p": "--preset", "-o": "--out", "-d": "--device"}


def commands(cmd=None, path=()):
    cmd = cmd or typer.main.get_command(app)
    if hasattr(cmd, "commands"):
        if path and cmd.invoke_without_command:  # a group that is also a command (`rcai space`)
            yield " ".join(path), cmd
        for name, sub in cmd.commands.items():
            yield from commands(sub, path + (name,))
    else:
        yield " ".join(path), cmd


COMMANDS = dict(commands())


def options(cmd) -> list:
    return [p for p in cmd.params if p.param_type_name == "option"]


def test_the_walk_sees_every_command():
    assert {"space", "train", "sample", "profile", "search", "export", "bench", "pipeline", "predict",
            "tables show", "tables check", "predictor train", "predictor eval", "space select"} <= set(COMMANDS)


def test_device_means_a_target_everywhere():
    """One name, one meaning: every --device is where the models run, never e.g. a predictor's output head."""
    helps = {cmd: p.help for cmd, command in COMMANDS.items() for p in options(command) if "--device" in p.opts}
    assert helps and all(h.startswith("Target") for h in helps.values()), helps


def test_no_synonyms():
    names = {c: name for c, (name, _) in CONCEPTS.items()}
    bad = [f"{cmd}: {opt} (say {names[c]}: {c})" for cmd, command in COMMANDS.items() for p in options(command)
           for opt in p.opts + p.secondary_opts for c, (_, syn) in CONCEPTS.items() if opt in syn]
    assert bad == []


def test_one_concept_per_name():
    owners: dict[str, list[str]] = {}
    for concept, (name, synonyms) in CONCEPTS.items():
        owners.setdefault(name, []).append(concept)
    assert {n: c for n, c in owners.items() if len(c) > 1} == {}


def test_short_flags_mean_one_thing():
    bad = [f"{cmd}: {s} -> {p.opts}" for cmd, command in COMMANDS.items() for p in options(command)
           for s in p.opts if not s.startswith("--") and SHORT.get(s) not in p.opts]
    assert bad == []


def test_every_command_has_json():
    assert [cmd for cmd, command in COMMANDS.items() if not any("--json" in p.opts for p in options(command))] == []


def test_a_synonym_is_caught():
    """The check itself: a command that takes --table beside --cost-table fails it."""
    extra = typer.Typer()

    @extra.command()
    def bad(table: str = typer.Option(None, "--table"), json: bool = typer.Option(False, "--json")) -> None: ...

    cmd = typer.main.get_command(extra)
    assert any(o in CONCEPTS["cost table CSV"][1] for p in options(cmd) for o in p.opts)


def _rcai(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rcai", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_version():
    done = _rcai("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"rcai {__version__}"


@pytest.mark.parametrize("words,cword,expected", [("rcai ben", "1", "bench"), ("rcai bench --cost", "2", "--cost-table")])
def test_shell_completion(words, cword, expected):
    done = _rcai(env={"_RCAI_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword})
    assert done.returncode == 0 and expected in done.stdout.split()


def test_cli_defaults_are_the_config_dataclasses_defaults():
    import dataclasses

    from rcai.cli import defaults as d
    from rcai.deploy.bench import BenchConfig
    from rcai.pipeline import PipelineConfig
    from rcai.search.config import DartsOptions
    from rcai.train.evaluate import EvalConfig
    from rcai.train.trainer import TrainConfig

    from rcai.cli import profile as p
    from rcai.cost.archs import ArchDatasetConfig
    from rcai.cost.check import FidelityConfig
    from rcai.cost.profile import ProfileConfig
    from rcai.cost.rounds import InterleaveConfig
    from rcai.search.strategies.base import StrategyConfig
    from rcai.targets import TargetSpec

    for read, cls in ((d.TRAIN, TrainConfig), (d.EVAL, EvalConfig), (d.DARTS, DartsOptions), (d.BENCH, BenchConfig), (d.PIPELINE, PipelineConfig),
                      (p.PROFILE, ProfileConfig), (p.INTERLEAVE, InterleaveConfig), (p.ARCHS, ArchDatasetConfig), (p.CHECK, FidelityConfig), (p.TARGET, TargetSpec),
                      (d.STRATEGY, StrategyConfig)):
        real = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
        assert read == {k: v for k, v in real.items() if k not in NAMED_DEFAULTS}, cls.__name__
    for read, group in ((d.PIPELINE_HALVING, PipelineConfig().halving), (d.PIPELINE_DARTS, PipelineConfig().darts)):  # the pipeline's own groups
        real = {f.name: getattr(group, f.name) for f in dataclasses.fields(group) if f.default is not dataclasses.MISSING}
        assert read == real, type(group).__name__


NAMED_DEFAULTS = {"loop_steps"}  # defaults given by a constant's name (not read statically; no CLI option takes them)


def test_the_cli_starts_without_torch():
    """--help and every completion TAB import the CLI: it must not pull in torch (seconds)."""
    code = "import sys, rcai.cli.main; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_flops_profiler_keeps_stdout_clean():
    """DeepSpeed's logger prints on stdout when imported; `rcai profile --json` must stay parseable."""
    code = ("import torch\nfrom rcai.cost.flops import deepspeed_counts\n"
            "print(deepspeed_counts(torch.nn.Linear(4, 4), (torch.ones(1, 4),))[0])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "32.0"


def test_train_refuses_an_unknown_lr_schedule_in_one_line(tmp_path, monkeypatch, capsys):
    from helpers import run_cli

    code, _, err = run_cli(monkeypatch, capsys, "train", "--preset", "micro", "--out", str(tmp_path / "t"), "--steps", "1", "--lr-schedule", "warm")
    assert code == 2 and "lr schedule must be one of" in err and "Traceback" not in err and not (tmp_path / "t").exists()
