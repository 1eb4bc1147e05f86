"""Choosing the subnet after search: the subnet with the highest alpha log-probability whose
whole-loop latency is within the budget.

With an additive cost (a table: loop = steps * (overhead + sum of op latencies)) this is a
multiple-choice knapsack over the slots, nested slots included (a nested slot counts only when its
parent chose the op that holds it). We solve it exactly by dynamic programming over Pareto fronts:
every slot's (latency, score) options are merged slot by slot, dropping any option that another one
beats in both latency and score, so no subnet that could be best under some budget is ever lost.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch

from ..errors import RcaiError
from ..model.mixed import MixedOp
from ..model.unet import UNet
from ..space.space import Arch, SearchSpace, SlotInfo

LogProbs = dict[str, dict[str, float]]
OpLatency = Callable[[object], float]  # OpSpec -> ms per denoiser call


def alpha_logprobs(supernet: UNet) -> LogProbs:
    out: LogProbs = {}
    for m in supernet.modules():
        if isinstance(m, MixedOp):
            lp = torch.log_softmax(m.alpha.detach().double(), 0)
            out[m.path] = {n: float(v) for n, v in zip(m.choices, lp)}
    return out


def arch_from(space: SearchSpace, logp: LogProbs, overrides: Mapping[str, str] | None = None) -> Arch:
    """Every active slot takes its override, else its most probable choice."""
    overrides = overrides or {}
    return space.pick(lambda s: overrides.get(s.path) or max(logp[s.path], key=logp[s.path].get))


def score(arch: Mapping[str, str], logp: LogProbs) -> float:
    return sum(logp[p][c] for p, c in arch.items())


@dataclass
class _Front:
    """Pareto front of partial subnets: cost ascending, score strictly ascending; `picks` holds each
    point's (slot, choice) pairs as a linked list (tuple nesting) so merging copies nothing."""

    cost: np.ndarray
    score: np.ndarray
    picks: list

    @classmethod
    def of(cls, cost: np.ndarray, score: np.ndarray, pick: Callable[[int], object]) -> "_Front":
        """The Pareto-optimal points among these (ascending cost, each scoring above every cheaper
        one); pick(k) gives point k's picks, asked for the kept points only."""
        keep, best = [], -math.inf
        for k in np.lexsort((-score, cost)):
            if score[k] > best:
                keep.append(k)
                best = score[k]
        return cls(cost[keep], score[keep], [pick(k) for k in keep])

    def merge(self, other: "_Front") -> "_Front":
        """Every pair (one point of each), pruned back to a front."""
        n = len(other.cost)
        return _Front.of((self.cost[:, None] + other.cost[None, :]).ravel(), (self.score[:, None] + other.score[None, :]).ravel(),
                         lambda k: (self.picks[k // n], other.picks[k % n]))


def _slot_front(slot: SlotInfo, op_latency: OpLatency, logp: LogProbs) -> _Front:
    cost, score, picks = [], [], []
    for name, choice in slot.choices.items():
        front = _Front(np.array([sum(map(op_latency, choice.specs))]), np.array([logp[slot.path][name]]), [(slot.path, name)])
        for nested in choice.slots:
            front = front.merge(_slot_front(nested, op_latency, logp))
        cost += list(front.cost)
        score += list(front.score)
        picks += front.picks
    return _Front.of(np.array(cost), np.array(score), picks.__getitem__)


def _unlink(picks, out: dict[str, str]) -> dict[str, str]:
    stack = [picks]
    while stack:
        p = stack.pop()
        if p is None:
            continue
        if isinstance(p[0], str):
            out[p[0]] = p[1]
        else:
            stack.extend(p)
    return out


@dataclass(frozen=True)
class Selection:
    arch: Arch
    loop_ms: float  # by the additive model the knapsack used
    score: float  # sum of alpha log-probabilities
    front_size: int


def best_under_budget(space: SearchSpace, logp: LogProbs, op_latency: OpLatency, overhead_ms: float, steps: int, budget_ms: float) -> Selection:
    """The subnet of highest score with steps * (overhead + sum of op latencies) <= budget_ms (exact)."""
    if not (budget_ms > 0 and math.isfinite(budget_ms)):
        raise RcaiError(f"latency budget must be a positive number of ms, got {budget_ms}")
    _check_sums(space, logp, op_latency)
    fixed = sum(map(op_latency, space.fixed_specs))
    front = _Front(np.zeros(1), np.zeros(1), [None])
    for slot in space.slots:
        front = front.merge(_slot_front(slot, op_latency, logp))
    loop = steps * (overhead_ms + fixed + front.cost)
    ok = np.nonzero(loop <= budget_ms * (1 + 1e-12))[0]
    if not len(ok):
        raise RcaiError(f"no subnet meets the latency budget {budget_ms:.4g} ms: the cheapest subnet's loop is {loop[0]:.4g} ms")
    k = int(ok[-1])  # the front's score rises with cost: the last feasible point scores highest
    arch = space.validate(_unlink(front.picks[k], {}))
    return Selection(arch, float(loop[k]), float(front.score[k]), len(front.cost))


def _check_sums(space: SearchSpace, logp: LogProbs, op_latency: OpLatency) -> None:
    """Every score and op latency a finite number whose sums over a subnet stay finite (the fronts
    add them up in numpy, which would overflow to inf with only a warning): else a one-line error."""
    worst_score = worst_ms = 0.0
    for s in space.all_slots():
        scores = logp.get(s.path)
        if not isinstance(scores, Mapping) or any(n not in scores for n in s.choices):
            raise RcaiError(f"no score for every choice of slot {s.path}")
        for n, c in s.choices.items():
            v, ms = scores[n], sum(map(op_latency, c.specs))
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise RcaiError(f"slot {s.path}, choice {n}: score {v!r} is not a finite number")
            if not (math.isfinite(ms) and ms >= 0):
                raise RcaiError(f"slot {s.path}, choice {n}: latency {ms!r} ms is not a finite number >= 0")
            worst_score, worst_ms = max(worst_score, abs(v)), max(worst_ms, ms)
    n = len(space.all_slots())
    if not (math.isfinite(worst_score * n) and math.isfinite(worst_ms * n)):
        raise RcaiError(f"scores or latencies too large to add up over {n} slots (largest {worst_score:.3g}, {worst_ms:.3g} ms)")


def uniform_logprobs(space: SearchSpace, prefer: Callable[[SlotInfo, str], float] | None = None) -> LogProbs:
    """Log-probabilities for selection without alpha (e.g. `prefer` = -latency: the cheapest subnet)."""
    return {s.path: {n: (prefer(s, n) if prefer else 0.0) for n in s.choices} for s in space.all_slots()}


def sample_at_latency(space: SearchSpace, latency: Callable[[Arch], float], target_ms: float, tol: float, n: int, seed: int,
                      mixing: int = 30, max_moves: int = 400) -> list[Arch]:
    """n distinct random subnets whose latency lies within target * (1 +- tol). Each starts from a
    uniformly random subnet and re-draws one random slot at a time among the choices that do not move
    it further from the window (a random choice now and then, to leave a dead end); once inside, it
    takes `mixing` more such moves, all of them staying inside."""
    rng = random.Random(seed)
    lo, hi = target_ms * (1 - tol), target_ms * (1 + tol)

    def dist(lat: float) -> float:
        return max(lo - lat, lat - hi, 0.0)

    out: list[Arch] = []
    seen: set[tuple] = set()
    for _ in range(20 * n):
        if len(out) == n:
            return out
        arch = space.random_arch(rng)
        lat, inside = latency(arch), 0
        for _ in range(max_moves):
            slot = rng.choice(list(arch))
            options = []
            for name in space._slot_index[slot].choices:
                cand = space.pick(lambda s: name if s.path == slot else arch.get(s.path) or rng.choice(list(s.choices)))
                options.append((cand, latency(cand)))
            ok = [o for o in options if dist(o[1]) <= dist(lat)]
            arch, lat = rng.choice(ok if ok and rng.random() > 0.05 or dist(lat) == 0 else options)
            inside = inside + 1 if dist(lat) == 0 else 0
            if inside >= mixing:
                break
        key = tuple(sorted(arch.items()))
        if dist(lat) == 0 and key not in seen:
            seen.add(key)
            out.append(arch)
    if len(out) < n:
        raise RcaiError(f"found only {len(out)} of {n} subnets within {tol:.0%} of {target_ms:.4g} ms")
    return out
