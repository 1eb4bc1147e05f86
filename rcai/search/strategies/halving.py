"""Multi-fidelity search over subnets trained from scratch (successive halving, Hyperband-style rungs),
candidates proposed by a quality surrogate fitted on what has been trained so far.

Each of `brackets` brackets trains `initial` candidates within the budget to the first rung (steps
of the training protocol, rcai/train/protocol.py), keeps the best 1/eta, trains those on to the
next rung (a constant-lr run is extended, never restarted: each step is paid once), and so on to
the last rung. Bracket 0 draws its candidates at random near the budget (subnets that leave latency
unused rarely win); later brackets fit the additive per-op model (rcai/proxies/additive.py) to every
first-rung result so far and take its exact optimum under the budget (knapsack) and its best-ranked
near-budget subnets not yet trained. The pick is the best subnet at the last rung: only what the
rungs measured best gets there. Every training uses `train_seed`, so candidates are compared on the
same data order and noise draws (a paired comparison). Trainings of a rung run at once on the
executor (rcai/search/executors.py) as training jobs (rcai/train/job.py); every rung result is a journal line, and each training resumes
from its own folder, so a killed search continues where it stopped and ends as the uninterrupted one.
"""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from ...config import require_counts
from ...errors import RcaiError
from ...space.space import Arch
from ...space.subnet import SubnetSpec
from ...train.protocol import rung_qualities
from ...train.rundir import RunDir
from ..executors import check_executor, make_executor
from .base import STRATEGIES, Problem, SampledStrategy, Session, key


@STRATEGIES.register("halving")
class SuccessiveHalving(SampledStrategy):
    name = "halving"
    trains = True  # its estimator is training itself: no proxy is built

    def __init__(self, cfg, progress: bool = False):
        super().__init__(cfg, progress)
        self.h = h = cfg.halving
        p = h.protocol
        for r in h.rungs:
            require_counts({"rung": r})
        if h.eta < 2:
            raise RcaiError(f"eta {h.eta} keeps every candidate at every rung (no halving): eta must be 2 or more")
        check_executor(h.executor, h.ray_address)  # all of it before the run folder exists
        if not h.rungs or any(r not in p.eval_at for r in h.rungs) or list(h.rungs) != sorted(set(h.rungs)):
            raise RcaiError(f"rungs {h.rungs} must be increasing steps among the protocol's eval_at {p.eval_at}")
        if p.lr_schedule != "constant":
            raise RcaiError("halving extends trainings from rung to rung: the protocol's lr_schedule must be constant")

    def train_device(self) -> str:
        return self.h.train_device

    def run(self, problem: Problem, session: Session, rng: random.Random) -> None:
        cfg = self.cfg
        self.trainings: dict[str, int] = {}  # subnet key -> steps trained
        self.preset = problem.space.preset
        self.runs = Path(session.journal).parent / "trainings" if session.journal else Path(self.h.work_dir or "trainings")
        scores: dict[tuple[str, int], float] = {}
        last = self.h.rungs[-1]
        problem.estimate = lambda a: scores[(key(a), last)]
        problem.estimators.update({f"rung{r}": (lambda r: lambda a: scores[(key(a), r)])(r) for r in self.h.rungs[:-1]})
        executor = make_executor(self.h.executor, self.h.jobs, self.h.ray_address)
        first: list[dict[str, Any]] = []  # first-rung results: the surrogate's data
        try:
            for bracket in range(self.h.brackets):
                alive = self.propose(problem, rng, bracket, first)
                for i, rung in enumerate(self.h.rungs):
                    todo = [a for a in alive if (key(a), rung) not in scores]
                    for a, q in zip(todo, self.train_rung(executor, todo, rung)):
                        scores[(key(a), rung)] = q
                        self.trainings[key(a)] = max(self.trainings.get(key(a), 0), rung)
                    ranked = sorted(alive, key=lambda a: -session.evaluate(a, "quality" if rung == last else f"rung{rung}"))
                    if i == 0:
                        first += [{"choices": a, "quality": scores[(key(a), rung)]} for a in alive]
                    alive = ranked[: max(1, math.ceil(len(ranked) / self.h.eta))]
        finally:
            executor.close()

    def train_rung(self, executor, archs: list[Arch], rung: int) -> list[float]:
        """Quality (dB) of each subnet trained with the protocol up to `rung` steps in its folder
        (runs/<subnet hash>), the trainings at once on `executor`, on the options' device."""
        specs = [SubnetSpec(self.preset, a) for a in archs]
        return rung_qualities(executor, [(s, self.runs / s.hash) for s in specs], self.h.protocol, rung, self.h.train_seed,
                              self.h.train_device, self.h.train_precision)

    def propose(self, problem: Problem, rng: random.Random, bracket: int, first: list[dict[str, Any]]) -> list[Arch]:
        """`initial` distinct within-budget subnets not yet trained (see the module docstring)."""
        from ..select import best_under_budget, sample_at_latency
        from ...cost.model import OpCostModel
        from ...proxies.additive import AdditiveQuality

        n, seen = self.h.initial, {key(r["choices"]) for r in first}

        def near_budget(count: int, seed: int) -> list[Arch]:
            if problem.budget_ms is None:
                return [problem.space.random_arch(rng) for _ in range(count)]
            target = problem.budget_ms * (1 - self.h.fill_tol)
            try:
                archs = sample_at_latency(problem.space, problem.loop_ms, target, self.h.fill_tol, count, seed=seed)
            except RcaiError:  # a budget near the cheapest subnet: fall back on any feasible subnet
                archs = [problem.feasible_random(rng) for _ in range(count)]
            return [a for a in archs if problem.feasible(a)]

        if bracket == 0 or len(first) < 3:
            pool = near_budget(n, seed=self.cfg.seed * 1000 + bracket)
            return _distinct(pool, seen, n) or [problem.feasible_random(rng)]
        model = AdditiveQuality.fit(problem.space.preset, first, resamples=50)
        picks: list[Arch] = []
        if isinstance(problem.cost, OpCostModel) and problem.budget_ms is not None:
            cost = problem.cost
            sel = best_under_budget(problem.space, model.slot_scores(problem.space), lambda sp: cost.op_metric(sp, "latency_ms"),
                                    cost.overhead_ms, problem.steps, problem.budget_ms)
            if problem.feasible(sel.arch):
                picks.append(sel.arch)
        pool = near_budget(self.h.surrogate_pool, seed=self.cfg.seed * 1000 + bracket)
        picks += sorted(pool, key=lambda a: -model(a))
        return _distinct(picks, seen, n) or [problem.feasible_random(rng)]

    def search(self, problem: Problem, run: RunDir | None = None):
        result = super().search(problem, run)
        steps = sum(self.trainings.values())
        result.notes.append(f"halving: {len(self.trainings)} subnets trained, {steps} training steps = "
                            f"{steps / self.h.protocol.steps:.2f} full trainings of {self.h.protocol.steps} steps (seed {self.h.train_seed})")
        result.selection = "best-at-last-rung"
        result.info["trainings"] = steps / self.h.protocol.steps
        return result


def _distinct(archs: list[Arch], seen: set[str], n: int) -> list[Arch]:
    out, keys = [], set(seen)
    for a in archs:
        if key(a) not in keys:
            keys.add(key(a))
            out.append(a)
        if len(out) == n:
            break
    return out
