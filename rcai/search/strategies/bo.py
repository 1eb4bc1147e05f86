"""Surrogate-driven multi-fidelity search (`--strategy bo`): Bayesian optimisation over subnets trained
from scratch, on halving's rungs and trainings (halving.py: `SuccessiveHalving.train_rung`, its protocol, training seed,
executor and run folders), with its own proposals and promotions. Options: `StrategyConfig.bo`.

The surrogate is a Bayesian linear model of a subnet's quality at the last rung:
  intercept + the per-op effects (AdditiveQuality's features: how many slots take each op, vs the
  slot's reference) + pairwise interactions (the product of two ops' counts over the slots)
  + an offset per earlier rung,
so every rung figure of every training is evidence (an earlier rung's as a noisier observation of the
last rung's, `rung_noise` x `noise_sd`): a subnet's learning curve informs its final quality, and the
model's effects inform subnets never trained (like AdditiveQuality, the features count ops over the slots,
so subnets that differ only in where they place the same ops look alike to it). Prior: Gaussian, the effects centred on a quality model's
(`proxy_config.quality_model`, rcai/proxies/additive.py, where that file exists: the warm start, its
bootstrap intervals as the prior sd) or on 0 with sd `effect_sd`; the posterior is exact.

Rounds, until the training budget (`trainings` x the protocol's steps, every rung step counted) is
spent: score a pool (near-budget random subnets, the knapsack optimum of the posterior mean's
additive part, one-slot neighbours of the best so far; all within the latency budget, none trained
yet) by expected improvement over the trained subnet of best posterior mean (the improvement's
variance counts both subnets' covariance), pick `initial`
of them one at a time (each pick's variance is fantasised away, so a round is diverse), train them
to the first rung, refit, promote the best 1/eta by the posterior mean to the next rung, and so on.
Expected improvement under the latency constraint is this EI over subnets that meet it (the
constraint is the cost model's, known exactly). The first round, with no quality model and no data,
is random near the budget (halving's first bracket); with a quality model its first candidate is the
prior's best of the pool, the others improvements on it. The pick is the best subnet measured at the
last rung. A deterministic function of the seed and the journalled scores: a killed run resumes to
the uninterrupted result (base.py).
"""
from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np

from ...errors import RcaiError
from ...space.space import Arch
from ..executors import make_executor
from .base import STRATEGIES, Problem, Session, key
from .halving import SuccessiveHalving, _distinct


class Surrogate:
    """The Bayesian linear model of the module docstring over one space, with its prior."""

    def __init__(self, space, rungs: tuple[int, ...], opts, model=None):
        from ...proxies.additive import references

        refs = set(references(space).values())
        self.ops = sorted({n for s in space.all_slots() for n in s.choices} - refs)
        self.pairs = [(i, j) for i in range(len(self.ops)) for j in range(i, len(self.ops))]
        self.n_slots = len(space.all_slots())
        self.early = list(rungs[:-1])
        self.noise = {r: opts.noise_sd * (opts.rung_noise if r != rungs[-1] else 1.0) for r in rungs}
        d = 1 + len(self.ops) + len(self.pairs) + len(self.early)
        m0, sd0 = np.zeros(d), np.empty(d)
        sd0[0] = 10.0  # the intercept: effectively free (the protocol sets its level)
        sd0[1:1 + len(self.ops)] = opts.effect_sd
        sd0[1 + len(self.ops):1 + len(self.ops) + len(self.pairs)] = opts.interaction_sd
        sd0[1 + len(self.ops) + len(self.pairs):] = 10.0  # an earlier rung's offset: free
        if model is not None:  # the warm start: the quality model's effects and their intervals
            m0[0] = model.intercept
            for k, op in enumerate(self.ops):
                m0[1 + k] = model.effects.get(op, 0.0)
                lo, hi = model.ci95.get(op, [m0[1 + k] - 2 * opts.effect_sd, m0[1 + k] + 2 * opts.effect_sd])
                sd0[1 + k] = max((hi - lo) / 3.92, 0.01)
        self.m0, self.p0 = m0, 1.0 / sd0 ** 2
        self.fit([])

    def features(self, arch: Arch, rung: int | None = None) -> np.ndarray:
        counts = np.array([sum(v == op for v in arch.values()) for op in self.ops], float)
        pairs = np.array([counts[i] * counts[j] / self.n_slots for i, j in self.pairs])
        early = np.array([float(rung == r) for r in self.early])
        return np.r_[1.0, counts, pairs, early]

    def fit(self, obs: list[tuple[Arch, int, float]]) -> "Surrogate":
        """The posterior given (subnet, rung, quality dB) observations."""
        A = np.diag(self.p0)
        b = self.p0 * self.m0
        for arch, rung, q in obs:
            x, w = self.features(arch, rung), 1.0 / self.noise[rung] ** 2
            A += w * np.outer(x, x)
            b += w * q * x
        self.cov = np.linalg.inv(A)
        self.cov = (self.cov + self.cov.T) / 2
        self.mean = self.cov @ b
        return self

    def predict(self, X: np.ndarray, cov: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and sd of the last rung's quality for rows of features."""
        c = self.cov if cov is None else cov
        return X @ self.mean, np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", X, c, X), 1e-18))

    def slot_scores(self, space) -> dict[str, dict[str, float]]:
        """The posterior mean's additive part per slot and choice (the knapsack's input)."""
        eff = dict(zip(self.ops, self.mean[1:1 + len(self.ops)]))
        return {s.path: {n: float(eff.get(n, 0.0)) for n in s.choices} for s in space.all_slots()}

    def pick(self, X: np.ndarray, incumbent: np.ndarray, n: int, chosen: list[int] | None = None) -> list[int]:
        """`n` rows by expected improvement over the incumbent subnet (features `incumbent`): the
        improvement f(x) - f(incumbent) is Gaussian under the posterior, with the two subnets'
        covariance (so what both share, e.g. the intercept, cancels). One row at a time, each then
        treated as observed at the last rung (its variance and its neighbours' shrink; the mean is
        kept), so a round is diverse. `chosen`: rows picked already."""
        cov, out = self.cov.copy(), list(chosen or [])
        noise = self.noise[max(self.noise)] ** 2
        for k in out:
            cov = _observe(cov, X[k], noise)
        D = X - incumbent
        while len(out) < min(n, len(X)):
            mu, sd = self.predict(D, cov)
            ei = expected_improvement(mu, sd, 0.0)
            ei[out] = -np.inf
            k = int(np.argmax(ei))  # ties: the earliest row
            out.append(k)
            cov = _observe(cov, X[k], noise)
        return out


def _observe(cov: np.ndarray, x: np.ndarray, noise: float) -> np.ndarray:
    """The covariance after one more observation at features x (rank-one update)."""
    cx = cov @ x
    return cov - np.outer(cx, cx) / (noise + x @ cx)


def expected_improvement(mu: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    z = (mu - best) / sd
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    pdf = np.exp(-0.5 * z ** 2) / math.sqrt(2 * math.pi)
    return (mu - best) * cdf + sd * pdf


def round_cost(n: int, rungs: tuple[int, ...], eta: int) -> int:
    """Training steps of a round of n candidates (each promoted subnet's training is extended, not restarted)."""
    steps, prev = 0, 0
    for r in rungs:
        steps += n * (r - prev)
        prev, n = r, max(1, math.ceil(n / eta))
    return steps


@STRATEGIES.register("bo")
class SurrogateSearch(SuccessiveHalving):
    name = "bo"

    def run(self, problem: Problem, session: Session, rng: random.Random) -> None:
        h, o = self.h, self.cfg.bo
        self.trainings: dict[str, int] = {}
        self.preset = problem.space.preset
        self.runs = Path(session.journal).parent / "trainings" if session.journal else Path(h.work_dir or "trainings")
        self.budget_steps = int(round(o.trainings * h.protocol.steps))
        scores: dict[tuple[str, int], float] = {}
        last = h.rungs[-1]
        problem.estimate = lambda a: scores[(key(a), last)]
        problem.estimators.update({f"rung{r}": (lambda r: lambda a: scores[(key(a), r)])(r) for r in h.rungs[:-1]})
        model = self.quality_model(problem)
        self.surrogate = Surrogate(problem.space, h.rungs, o, model)
        obs: list[tuple[Arch, int, float]] = []
        archs: dict[str, Arch] = {}
        executor = make_executor(h.executor, h.jobs, h.ray_address)
        try:
            for rnd in range(10 ** 6):
                spent = sum(self.trainings.values())
                n = o.initial
                while n and spent + round_cost(n, h.rungs, h.eta) > self.budget_steps:
                    n -= 1
                if not n:
                    return
                alive = self.propose_round(problem, rng, rnd, n, archs, obs, warm=model is not None)
                if not alive:
                    return
                for i, rung in enumerate(h.rungs):
                    todo = [a for a in alive if (key(a), rung) not in scores]
                    for a, q in zip(todo, self.train_rung(executor, todo, rung)):
                        scores[(key(a), rung)] = q
                        self.trainings[key(a)] = max(self.trainings.get(key(a), 0), rung)
                    for a in alive:  # journalled in the round's order; the replayed score is the one used
                        archs[key(a)] = a
                        obs.append((a, rung, session.evaluate(a, "quality" if rung == last else f"rung{rung}")))
                    self.surrogate.fit(obs)
                    if i + 1 < len(h.rungs):
                        mu, _ = self.surrogate.predict(np.array([self.surrogate.features(a) for a in alive]))
                        order = sorted(range(len(alive)), key=lambda k: (-mu[k], k))
                        alive = [alive[k] for k in order[: max(1, math.ceil(len(alive) / h.eta))]]
        finally:
            executor.close()

    def quality_model(self, problem: Problem):
        """The quality model of the warm start, where one is named and its file exists (None otherwise)."""
        from ...proxies.additive import AdditiveQuality

        path = self.cfg.proxy_config.quality_model
        if not (self.cfg.bo.warm_start and path and Path(path).exists()):
            return None
        return AdditiveQuality.load(path, problem.space.preset)

    def propose_round(self, problem: Problem, rng: random.Random, rnd: int, n: int, archs: dict[str, Arch],
                      obs: list[tuple[Arch, int, float]], warm: bool) -> list[Arch]:
        """`n` distinct untrained subnets within the budget (see the module docstring)."""
        from ..select import best_under_budget
        from ...cost.model import OpCostModel

        seen = set(archs)
        pool = self.near_budget(problem, rng, self.cfg.bo.pool, seed=self.cfg.seed * 1000 + rnd)
        if not obs and not warm:
            return _distinct(pool, seen, n) or [problem.feasible_random(rng)]
        s = self.surrogate
        extra: list[Arch] = []
        if isinstance(problem.cost, OpCostModel) and problem.budget_ms is not None:
            cost = problem.cost
            sel = best_under_budget(problem.space, s.slot_scores(problem.space), lambda sp: cost.op_metric(sp, "latency_ms"),
                                    cost.overhead_ms, problem.steps, problem.budget_ms)
            extra.append(sel.arch)
        trained = sorted(archs.values(), key=key)
        if trained:
            mu, _ = s.predict(np.array([s.features(a) for a in trained]))
            for k in sorted(range(len(trained)), key=lambda k: (-mu[k], k))[:3]:
                extra += self.neighbours(problem, trained[k], rng)
        cands = _distinct([a for a in extra + pool if problem.feasible(a)], seen, 10 ** 9)
        if not cands:
            return [problem.feasible_random(rng)]
        X = np.array([s.features(a) for a in cands])
        if trained:  # the incumbent: what has been trained with the best posterior mean
            T = np.array([s.features(a) for a in trained])
            mu = s.predict(T)[0]
            return [cands[k] for k in s.pick(X, T[int(np.argmax(mu))], n)]
        best = int(np.argmax(s.predict(X)[0]))  # the warm start's first round: the prior's best, then improvements on it
        return [cands[k] for k in s.pick(X, X[best], n, chosen=[best])]

    def near_budget(self, problem: Problem, rng: random.Random, count: int, seed: int) -> list[Arch]:
        """Random subnets with a loop in [1 - 2 fill_tol, 1] x the budget (halving's window)."""
        from ..select import sample_at_latency

        if problem.budget_ms is None:
            return [problem.space.random_arch(rng) for _ in range(count)]
        tol = self.h.fill_tol
        try:
            archs = sample_at_latency(problem.space, problem.loop_ms, problem.budget_ms * (1 - tol), tol, count, seed=seed)
        except RcaiError:  # a budget near the cheapest subnet: any feasible subnet
            archs = [problem.feasible_random(rng) for _ in range(count)]
        return [a for a in archs if problem.feasible(a)]

    def neighbours(self, problem: Problem, arch: Arch, rng: random.Random) -> list[Arch]:
        """Every one-slot change of `arch` (newly active nested slots drawn at random)."""
        return [problem.with_choice(arch, slot, c, rng) for slot in sorted(arch)
                for c in problem.space._slot_index[slot].choices if c != arch[slot]]

    def search(self, problem: Problem, run=None):
        result = super(SuccessiveHalving, self).search(problem, run)
        steps, full = sum(self.trainings.values()), self.h.protocol.steps
        warm = self.quality_model(problem) is not None
        result.notes.append(f"bo: {len(self.trainings)} subnets trained, {steps} training steps = {steps / full:.2f} of the budget's "
                            f"{self.budget_steps / full:.2f} full trainings of {full} steps (seed {self.h.train_seed}); surrogate prior: "
                            + (f"the quality model {self.cfg.proxy_config.quality_model}" if warm else "none (cold start)"))
        result.selection = "best-at-last-rung"
        result.info.update(trainings=steps / full, budget_trainings=self.budget_steps / full, warm_start=warm,
                           posterior_effects={op: float(v) for op, v in zip(self.surrogate.ops, self.surrogate.mean[1:1 + len(self.surrogate.ops)])})
        return result
