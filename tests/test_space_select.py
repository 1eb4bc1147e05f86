"""TinyNAS space selection: the constraint is respected and the rule picks the most FLOPs under it."""
import random

import pytest

from rcai.cost.model import CounterCostModel
from rcai.errors import RcaiError
from rcai.search.space_select import candidate, select_space
from rcai.space.space import SearchSpace


def test_candidate_spaces_scale_width_and_resolution(micro):
    p = candidate(micro, 2.0, 48)
    assert (p.base_channels, p.hr_size, p.lr_size) == (16, 48, 24) and p.hash != micro.hash
    with pytest.raises(RcaiError, match="multiple of"):
        candidate(micro, 1.0, 30)


def test_selection_counts_only_subnets_within_the_memory_limit(micro):
    best, _ = select_space(micro, [1.0, 2.0], [32], float("inf"), samples=40)
    assert best.width == 2.0 and best.satisfied == 1.0  # unconstrained: the wider space has more FLOPs
    limit = CounterCostModel(candidate(micro, 2.0, 32)).estimate(SearchSpace.of(candidate(micro, 2.0, 32)).base_arch()).memory_bytes * 0.99
    best, stats = select_space(micro, [1.0, 2.0], [32], limit, samples=40)
    for s in stats:  # re-draw the same subnets: the CDF holds exactly those within the limit
        space, counters = SearchSpace.of(s.preset), CounterCostModel(s.preset)
        rng = random.Random(0)
        costs = [counters.estimate(space.random_arch(rng)) for _ in range(40)]
        fit = sorted(c.flops for c in costs if c.memory_bytes <= limit)
        assert list(s.flops) == fit and s.satisfied == len(fit) / 40
    assert best.mean_flops == max(s.mean_flops for s in stats) and best.satisfied > 0
    with pytest.raises(RcaiError, match="no sampled subnet"):
        select_space(micro, [1.0], [32], 1.0, samples=10)


def _untrained_predictor(path):
    import torch

    from rcai.predictor.model import LatencyGNN, ModelConfig
    from rcai.predictor.predictor import LatencyPredictor

    torch.manual_seed(0)
    return LatencyPredictor(LatencyGNN(ModelConfig()), {"targets": ["cpu"]}).save(path)


def test_cli_space_select_subprocess(micro, tmp_path):
    """`rcai space select` as a user runs it: latency budget (GNN predictor) and memory limit; the
    subnets it counts as fitting are exactly those within both, re-drawn here."""
    import json
    import subprocess
    import sys

    import numpy as np

    from rcai.predictor.predictor import LatencyPredictor
    from rcai.search.space_select import LatencyLimit

    pred_file = _untrained_predictor(tmp_path / "p.pt")
    pred = LatencyPredictor.load(pred_file)
    wide = candidate(micro, 1.0, 32)
    rng = random.Random(0)
    draws = [SearchSpace.of(wide).random_arch(rng) for _ in range(16)]
    loop = LatencyLimit(1.0, pred, steps=3).loop_ms(wide, draws)
    budget = float(np.median(loop))  # about half the wide space's subnets fit
    out = tmp_path / "sel"
    done = subprocess.run([sys.executable, "-m", "rcai", "space", "select", "-p", "micro", "--widths", "0.5,1", "--resolutions", "32",
                           "--latency-budget-ms", repr(budget), "--predictor", str(pred_file), "--sample-steps", "3",
                           "--max-memory-mib", "100", "--samples", "16", "-o", str(out), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert json.loads((out / "space.json").read_text()) == summary
    assert (out / "cdf.png").read_bytes()[:4] == b"\x89PNG"
    by_width = {s["width"]: s for s in summary["spaces"]}
    assert by_width[1.0]["satisfied"] == np.mean(loop <= budget) and 0 < by_width[1.0]["satisfied"] < 1
    chosen = summary["chosen"]
    assert chosen["mean_flops"] == max(s["mean_flops"] for s in summary["spaces"]) and chosen["chosen"]
    from rcai.presets import Preset

    assert Preset.from_dict(json.loads((out / "preset.json").read_text())).name == chosen["preset"]


@pytest.mark.parametrize("args,message", [
    ([], "give a constraint"),
    (["--latency-budget-ms", "5"], "go together"),
    (["--max-memory-mib", "1", "--widths", "1,x"], "--widths: expected comma-separated floats"),
    (["--max-memory-mib", "1", "--resolutions", "30"], "must be a multiple of"),
    (["--max-memory-mib", "-1"], "--max-memory-mib: must be > 0"),
    (["--max-memory-mib", "1e-9"], "no sampled subnet of any candidate space satisfies"),
    (["--latency-budget-ms", "5", "--predictor", "missing.pt"], "missing.pt"),
])
def test_cli_space_select_bad_input(tmp_path, monkeypatch, capsys, args, message):
    from helpers import run_cli

    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "space", "select", "-p", "micro", "--widths", "1", "--resolutions", "32",
                             "--samples", "4", "-o", "sel", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_cli_space_select_out_is_a_file(tmp_path, monkeypatch, capsys):
    from helpers import run_cli

    (tmp_path / "f").write_text("x")
    code, _, err = run_cli(monkeypatch, capsys, "space", "select", "-p", "micro", "--max-memory-mib", "1", "-o", str(tmp_path / "f"))
    assert code == 2 and "not a folder" in err
