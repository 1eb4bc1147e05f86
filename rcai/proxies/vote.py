"""Vote ensemble (Abdelfattah et al. 2021: synflow, jacob_cov, snip). Their vote compares two networks
by the majority of the three proxies; a strategy needs one score per subnet, so each member's score is
placed among the same member's scores of `vote_refs` fixed random subnets (interpolated rank in
[0, 1]) and the vote is the mean of the three: a subnet that beats the references on every member
scores 1, one that wins 2 of 3 comparisons against every reference scores 2/3."""
from __future__ import annotations

import random

import numpy as np

from ..space.space import SearchSpace
from .base import PROXIES, ProxyConfig, make_estimator

MEMBERS = ("synflow", "jacob_cov", "snip")


def position(value: float, refs: np.ndarray) -> float:
    """Interpolated rank of `value` among sorted `refs`, in [0, 1]."""
    return float(np.interp(value, refs, np.linspace(0, 1, len(refs)), left=0.0, right=1.0)) if len(refs) > 1 else 0.5


def references(preset, cfg: ProxyConfig) -> list[dict[str, str]]:
    rng = random.Random(cfg.seed + 7919)
    return [SearchSpace.of(preset).random_arch(rng) for _ in range(cfg.vote_refs)]


def vote_of(scores: dict[str, float], refs: dict[str, np.ndarray]) -> float:
    return float(np.mean([position(scores[m], refs[m]) for m in MEMBERS]))


@PROXIES.register("vote")
def vote(preset, cfg: ProxyConfig):
    members = {m: make_estimator(m, preset, cfg) for m in MEMBERS}
    ref_archs = references(preset, cfg)
    refs: dict[str, np.ndarray] = {}

    def score(arch) -> float:
        if not refs:  # computed on first use
            refs.update({m: np.sort([f(a) for a in ref_archs]) for m, f in members.items()})
        return vote_of({m: f(arch) for m, f in members.items()}, refs)

    return score
