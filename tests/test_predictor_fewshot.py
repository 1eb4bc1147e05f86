"""Few-shot adaptation (`rcai predictor train --init P --shots K`): chosen by cross-validation within
the shots, never worse than the base predictor on held-out networks, recorded in the predictor file."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from rcai.predictor.dataset import load_dataset
from rcai.predictor.finetune import METHODS, choose
from rcai.predictor.predictor import LatencyPredictor, train_predictor
from rcai.predictor.train import PredictorTrainConfig
from helpers import run_cli  # noqa: E402
from test_predictor import make_dataset

FAST = PredictorTrainConfig(epochs=30, patience=10, min_val=4, finetune_epochs=20)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fewshot")
    return train_predictor(make_dataset(folder / "train", 40, seed=11, device="dev_a"), cfg=FAST)


def family(folder: Path, base: LatencyPredictor, n: int, seed: int, law) -> Path:
    """n networks whose 'measured' latency is law(base's prediction, k): a family where the right
    adaptation is known."""
    src = make_dataset(folder, n, seed=seed)
    ds = load_dataset(src)
    ms = base.predict(ds.graphs)
    rows = list(csv.DictReader(open(src)))
    for k, r in enumerate(rows):
        r["latency_ms"] = f"{law(ms[k], k):.6g}"
    with open(src, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return src


def mean_sq_log(p, t) -> float:
    return float(np.mean(np.log(np.asarray(p) / np.asarray(t)) ** 2))


def test_a_constant_factor_family_chooses_the_level_and_never_does_worse(base, tmp_path):
    """Latency = 2.5 x the base's: the level fit must be chosen (the zero-shot is off by 2.5x, a head
    or full fine-tune adds nothing that cross-validation can see), and on the held-out rest it is
    no worse than zero-shot and about right."""
    rng = np.random.default_rng(0)
    csv_path = family(tmp_path / "fam", base, 24, 21, lambda ms, k: 2.5 * ms * float(np.exp(rng.normal(0, 0.01))))
    tuned = train_predictor(csv_path, init=base, cfg=FAST, shots=10)
    a = tuned.meta["training"]["adaptation"]
    assert a["method"] == "level", a
    assert set(a["cv_mse_log"]) == set(METHODS) and a["shots"] == 10 and a["folds"] == 5
    assert a["cv_mse_log"]["level"] < a["cv_mse_log"]["zero"] / 100
    h = a["holdout"]["data"]
    assert h["n"] == 14 and h["adapted"]["acc_10"] == 1.0 and h["zero"]["acc_10"] == 0.0
    assert h["adapted"]["mape"] <= h["zero"]["mape"]


def test_a_family_the_base_already_predicts_keeps_the_base(base, tmp_path):
    """Latency = the base's prediction (1 % noise): nothing beats zero-shot by more than its standard
    error, so the base predictor is kept, and predicts as before."""
    rng = np.random.default_rng(1)
    csv_path = family(tmp_path / "same", base, 16, 22, lambda ms, k: ms * float(np.exp(rng.normal(0, 0.01))))
    tuned = train_predictor(csv_path, init=base, cfg=FAST, shots=8)
    a = tuned.meta["training"]["adaptation"]
    assert a["method"] == "zero", a
    ds = load_dataset(csv_path)
    assert np.allclose(tuned.predict(ds.graphs), base.predict(ds.graphs), rtol=1e-4)


def test_choice_rule_needs_a_gain_beyond_its_standard_error():
    e = np.array([0.04, 0.05, 0.03, 0.04])
    assert choose({"zero": e, "level": e * 0.5, "head": e * 0.5, "full": e * 0.5 * np.array([1.1, 0.9, 1.05, 0.95])})[0] == "level"
    noisy = {"zero": e, "level": np.array([0.0, 0.1, 0.0, 0.05]), "head": e, "full": e}
    assert choose(noisy)[0] == "zero"
    assert choose({m: e[:1] for m in METHODS})[0] == "zero"  # one shot: nothing to cross-validate


def test_cli_shots_records_and_prints_the_choice(base, tmp_path, monkeypatch, capsys):
    init = base.save(tmp_path / "base.pt")
    csv_path = family(tmp_path / "cli", base, 12, 23, lambda ms, k: 0.5 * ms)
    out = tmp_path / "adapted.pt"
    cli = lambda *a: run_cli(monkeypatch, capsys, *a)
    code, stdout, err = cli("predictor", "train", "--latency-data", str(csv_path), "--init", str(init), "--shots", "6",
                            "--out", str(out))
    assert code == 0, err
    assert "by level" in stdout and "cross-validation (5 folds)" in stdout and "the other 6 rows" in stdout
    meta = LatencyPredictor.load(out).meta
    assert meta["training"]["adaptation"]["method"] == "level" and meta["init"]["targets"] == ["dev_a"]
    code, stdout, err = cli("predictor", "train", "--latency-data", str(csv_path), "--init", str(init), "--adapt", "full",
                            "--shots", "6", "--out", str(out), "--json")
    assert code == 0 and json.loads(stdout)["training"]["adaptation"]["method"] == "full", err
    for bad, msg in ((["--shots", "0"], "--shots: must be >= 1"), (["--shots", "99"], "the dataset has 12 models"),
                     (["--adapt", "magic"], "unknown adaptation method 'magic'")):
        code, _, err = cli("predictor", "train", "--latency-data", str(csv_path), "--init", str(init), "--out", str(out), *bad)
        assert code == 2 and msg in err and err.strip().count("\n") == 0, err
    code, _, err = cli("predictor", "train", "--latency-data", str(csv_path), "--shots", "4", "--out", str(out))
    assert code == 2 and "give it with --init" in err
