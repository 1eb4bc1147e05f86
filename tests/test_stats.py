"""rcai/stats.py on data whose answer is known."""
import math

import numpy as np
import pytest

from rcai.stats import icc, icc_consistency, paired_diff, pooled_sd, seed_spearman


def _table(shift=0.0, noise=0.0, n=8, seeds=(0, 1, 2), rng=np.random.default_rng(0)):
    return {f"a{i}": {s: i * 0.1 + (shift if s == 0 else 0.0) + noise * rng.standard_normal() for s in seeds} for i in range(n)}


def test_no_noise_is_perfect_agreement():
    t = _table()
    assert icc({k: list(v.values()) for k, v in t.items()}) == pytest.approx(1.0)
    assert icc_consistency(t) == pytest.approx(1.0)
    assert seed_spearman(t)[0] == pytest.approx(1.0)
    assert pooled_sd({k: list(v.values()) for k, v in t.items()}) == pytest.approx(0.0)


def test_a_lucky_seed_lowers_icc1_but_not_the_consistency_icc():
    t = _table(shift=0.3)
    assert icc({k: list(v.values()) for k, v in t.items()}) < 0.8
    assert icc_consistency(t) == pytest.approx(1.0)
    assert seed_spearman(t)[0] == pytest.approx(1.0)


def test_pure_noise_has_no_signal():
    rng = np.random.default_rng(1)
    t = {f"a{i}": {s: rng.standard_normal() for s in range(3)} for i in range(200)}
    assert abs(icc({k: list(v.values()) for k, v in t.items()})) < 0.1
    assert abs(icc_consistency(t)) < 0.1
    assert pooled_sd({k: list(v.values()) for k, v in t.items()}) == pytest.approx(1.0, abs=0.1)


def test_paired_difference_cancels_a_shared_seed_effect():
    a = {0: 1.0 + 0.5, 1: 1.0 - 0.5, 2: 1.0}
    b = {0: 0.9 + 0.5, 1: 0.9 - 0.5, 2: 0.9, 3: 5.0}  # seed 3: unpaired, left out
    d = paired_diff(a, b)
    assert d["n"] == 3 and d["diff"] == pytest.approx(0.1) and d["lo"] == pytest.approx(0.1) and d["hi"] == pytest.approx(0.1)
    assert math.isnan(paired_diff({0: 1.0}, {1: 1.0})["diff"])


def test_gap_to_median_centres_on_the_median_subnet_and_widens_with_noise():
    from rcai.stats import gap_to_median

    exact = gap_to_median([1.0, 1.0], [[0.2, 0.2], [0.5, 0.5], [0.9, 0.9]])
    assert exact["diff"] == pytest.approx(0.5) and exact["n"] == 3
    assert exact["lo"] >= 0.1 - 1e-9 and exact["hi"] <= 0.8 + 1e-9  # resampled medians stay among the subnets' means
    rng = np.random.default_rng(0)
    groups = [list(0.5 + rng.normal(0, 0.01, 2)) for _ in range(12)]
    tight = gap_to_median([0.7, 0.7], groups)
    noisy = gap_to_median([0.5, 0.9], groups)  # same mean, noisy seeds: a wider interval
    assert tight["lo"] > 0.15 and noisy["hi"] - noisy["lo"] > 3 * (tight["hi"] - tight["lo"])
    assert gap_to_median([], groups)["n"] == 0
