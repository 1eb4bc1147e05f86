"""The search-strategy seam: a strategy takes a quality estimator (arch -> score, higher is better),
a cost model and a latency budget, and returns the shared `SearchResult` with its real history.

Sample-based strategies run inside a `Session`, which
- never lets an over-budget subnet reach the estimator (`feasible`; strategies repair or reject),
- counts estimator calls against `evaluations` (a repeated subnet is answered from memory, free, but
  every proposal counts towards 20 x evaluations, so a converged strategy still stops),
- stops at `time_limit_s` too, checked before each proposal (an evaluation under way finishes),
- appends one JSON line per proposal to `evaluations.jsonl` in the run folder. A strategy is a
  deterministic function of its seed and the scores it receives, so resuming after a kill replays
  the journal (the same proposals come out, answered from their lines) and then carries on: the
  resumed run equals the uninterrupted one, line for line.
"""
from __future__ import annotations

import json
import math
import random
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ...config import JsonConfig
from ...cost.model import CostModel
from ...errors import RcaiError
from ...io import append_line, atomic_write_text, os_errors
from ...proxies import Estimator, ProxyConfig
from ...registry import Registry
from ...space.space import Arch, SearchSpace
from ...config import counts_of, require_counts
from ...train.rundir import RunDir
from ..config import FLAT_KEYS, AreaOptions, BOOptions, DartsOptions, EvolutionOptions, HalvingOptions, OneShotOptions, RLOptions
from ..result import SearchResult

JOURNAL = "evaluations.jsonl"
PROPOSALS_PER_EVALUATION = 20


@dataclass(frozen=True)
class StrategyConfig(JsonConfig):
    strategy: str = "evolution"  # a name in STRATEGIES: darts | grid | random | evolution | area | rl | knapsack | halving | bo | oneshot
    preset: str = "tiny"
    cost_table: str = "latency_tables/cpu-tiny.csv"
    proxy: str = "naswot"  # the quality estimator (rcai/proxies)
    latency_budget_ms: float | None = None  # whole sampling loop by the cost model
    steps_per_sample: int = 50
    evaluations: int = 100  # estimator calls
    time_limit_s: float | None = None  # wall-clock limit (makes the run depend on the machine's speed)
    seed: int = 0
    proxy_config: ProxyConfig = field(default_factory=ProxyConfig)
    force: bool = False  # use a cost table measured for another preset/batch/precision
    darts: DartsOptions = field(default_factory=DartsOptions)  # darts: the bilevel search, its fine-tune and evaluation
    halving: HalvingOptions = field(default_factory=HalvingOptions)  # halving, bo: rungs, brackets, the trainings' protocol and executor
    bo: BOOptions = field(default_factory=BOOptions)  # bo: training budget, surrogate prior and acquisition pool
    evolution: EvolutionOptions = field(default_factory=EvolutionOptions)  # evolution, area: population and tournament
    area: AreaOptions = field(default_factory=AreaOptions)  # area: its seeding pool and proxy
    rl: RLOptions = field(default_factory=RLOptions)  # rl: reward and policy step
    oneshot: OneShotOptions = field(default_factory=OneShotOptions)  # oneshot: the supernet, its candidates and the pick's fine-tune

    def __post_init__(self) -> None:
        require_counts(counts_of(self, "evaluations", "steps_per_sample"))
        b = self.latency_budget_ms
        if b is not None and not (isinstance(b, (int, float)) and 0 < b < float("inf")):
            raise RcaiError(f"latency budget must be a positive finite number of ms (or none), got {b!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str | None = None) -> "StrategyConfig":
        return super().from_dict({**d, "proxy_config": ProxyConfig.from_dict(d.get("proxy_config", {}), "proxy_config"),
                                  **{name: cls_.from_dict(d.get(name, {}), name) for name, cls_ in OPTION_GROUPS.items()}}, where)

    @staticmethod
    def migrate(d: dict[str, Any]) -> dict[str, Any]:
        """A stored config of an earlier release as today's keys: the strategies' options were flat fields,
        and a DARTS run folder held its engine's flat config, which had no `strategy`."""
        out = {k: v for k, v in d.items() if k not in FLAT_KEYS}
        if "strategy" not in d and any(FLAT_KEYS.get(k, ("",))[0] == "darts" for k in d):
            out["strategy"] = "darts"
        for old in set(d) & set(FLAT_KEYS):
            group, new = FLAT_KEYS[old]
            out[group] = {new: d[old], **out.get(group, {})}
        return out


OPTION_GROUPS = {"darts": DartsOptions, "halving": HalvingOptions, "bo": BOOptions, "evolution": EvolutionOptions, "area": AreaOptions, "rl": RLOptions,
                 "oneshot": OneShotOptions}


def key(arch: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(arch.items())))


@dataclass
class Problem:
    """What a sample-based strategy searches: a space, a quality estimator, a cost model and a budget.
    `estimators` holds further named estimators a strategy may use (AREA's seeding proxy)."""

    space: SearchSpace
    estimate: Estimator
    cost: CostModel
    budget_ms: float | None
    steps: int
    estimators: dict[str, Estimator] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._loop: dict[str, float] = {}

    def loop_ms(self, arch: Mapping[str, str]) -> float:
        k = key(arch)
        if k not in self._loop:
            self._loop[k] = self.cost.estimate(arch, self.steps).loop_ms
        return self._loop[k]

    def check_reachable(self) -> None:
        """Refuse a budget below the cheapest subnet's loop, in one line before any search (a per-op
        cost model's `op_metric` gives the cheapest subnet exactly: the slots are independent)."""
        if self.budget_ms is None:
            return
        cheapest, _ = self.space.extreme_arch(lambda sp: self.cost.op_metric(sp, "latency_ms"), largest=False)
        low = self.loop_ms(cheapest)
        if low > self.budget_ms:
            raise RcaiError(f"latency budget {self.budget_ms:.4g} ms is below the cheapest subnet's loop ({low:.4g} ms by {self.cost.name}, "
                            f"{self.steps} steps): no subnet can meet it")

    def feasible(self, arch: Mapping[str, str]) -> bool:
        return self.budget_ms is None or self.loop_ms(arch) <= self.budget_ms * (1 + 1e-12)

    def with_choice(self, arch: Arch, slot: str, name: str, rng: random.Random) -> Arch:
        """`arch` with `slot` set to `name`; slots that become active draw a random choice."""
        return self.space.pick(lambda s: name if s.path == slot else arch.get(s.path) or rng.choice(list(s.choices)))

    def repair(self, arch: Arch, rng: random.Random) -> Arch:
        """An over-budget subnet walked down to the budget: one random latency-reducing single-slot
        change at a time (so repairs stay diverse); RcaiError if no change reduces it."""
        while not self.feasible(arch):
            cur = self.loop_ms(arch)
            moves = [c for slot in arch for n in self.space._slot_index[slot].choices if n != arch[slot]
                     for c in [self.with_choice(arch, slot, n, rng)] if self.loop_ms(c) < cur]
            if not moves:
                raise RcaiError(f"no subnet meets the latency budget {self.budget_ms:.4g} ms (stuck at {cur:.4g} ms by {self.cost.name})")
            arch = rng.choice(moves)
        return arch

    def feasible_random(self, rng: random.Random, tries: int = 50) -> Arch:
        """A uniformly random subnet within the budget (rejection sampling, then repair)."""
        for _ in range(tries):
            arch = self.space.random_arch(rng)
            if self.feasible(arch):
                return arch
        return self.repair(arch, rng)


class Stop(Exception):
    """Raised inside a strategy when its session has used up its budget."""


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The journal's records up to its first line that is not one (cut by a kill, corrupted, edited):
    that line and every line after it are dropped from the file, with a one-line note, and redone by
    the replay, so a resumed run never appends after a bad line (and never twice the same proposal)."""
    if not path.exists():
        return []
    with os_errors(path, "cannot read"):
        lines = path.read_bytes().split(b"\n")
    good: list[dict[str, Any]] = []
    for raw in lines[:-1]:  # the last piece is b"" after a final newline, or a torn line
        try:
            rec = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            break
        if not (isinstance(rec, dict) and rec.get("i") == len(good) and isinstance(rec.get("kind"), str) and isinstance(rec.get("arch"), dict)
                and isinstance(rec.get("wall_s"), (int, float)) and (rec.get("score") is None or _finite(rec["score"]))):
            break
        good.append(rec)
    dropped = len(lines) - 1 - len(good) + (lines[-1] != b"")
    if dropped:
        atomic_write_text(path, "".join(raw.decode() + "\n" for raw in lines[:len(good)]))
        print(f"warning: {path}: line {len(good) + 1} is not a journal record (cut by a kill or corrupted): it and the "
              f"{dropped - 1} line(s) after it are dropped and redone", file=sys.stderr)
    return good


def _finite(score: Any) -> bool:
    """A score a journal may hold: a finite number (a NaN replayed would change the pick)."""
    return isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score)


class Session:
    """Counts, journals and replays every proposal of one run (see the module docstring)."""

    def __init__(self, problem: Problem, cfg: StrategyConfig, journal: Path | None = None):
        self.problem, self.cfg, self.journal = problem, cfg, journal
        self.replay: list[dict[str, Any]] = read_journal(journal) if journal else []
        self.history: list[dict[str, Any]] = []
        self.memo: dict[tuple[str, str], float] = {}
        self.evaluations = self.proxy_evaluations = 0
        self._t0, self._prior_s = time.perf_counter(), 0.0

    @property
    def wall_s(self) -> float:
        return self._prior_s + time.perf_counter() - self._t0

    def _check_budget(self) -> None:
        c = self.cfg
        if (self.evaluations >= c.evaluations or len(self.history) >= PROPOSALS_PER_EVALUATION * c.evaluations
                or (c.time_limit_s is not None and self.wall_s >= c.time_limit_s)):
            raise Stop

    def _record(self, rec: dict[str, Any], compute: Callable[[], float | None]) -> float | None:
        i = len(self.history)
        if i < len(self.replay):
            old = self.replay[i]
            if (old.get("arch"), old.get("kind")) != (rec["arch"], rec["kind"]):
                raise RcaiError(f"{self.journal}: line {i + 1} does not match this run's proposal (another config or code?); use another --out")
            rec = old
            self._prior_s, self._t0 = old["wall_s"], time.perf_counter()
        else:
            t = time.perf_counter()
            rec["score"] = compute()
            rec["eval_s"] = time.perf_counter() - t
            rec["wall_s"] = self.wall_s
            if self.journal:
                append_line(self.journal, json.dumps(rec))
        self.history.append(rec)
        return rec["score"]

    def evaluate(self, arch: Arch, kind: str = "quality") -> float:
        """The score of a within-budget subnet by the quality estimator (kind "quality") or by
        `problem.estimators[kind]`; Stop when the budget is used up."""
        self._check_budget()
        if not self.problem.feasible(arch):
            raise RcaiError(f"internal: a strategy proposed a subnet over the budget ({self.problem.loop_ms(arch):.4g} ms)")
        k = key(arch)
        cached = (kind, k) in self.memo
        est = self.problem.estimate if kind == "quality" else self.problem.estimators[kind]
        rec = {"i": len(self.history), "kind": kind, "arch": dict(arch), "loop_ms": self.problem.loop_ms(arch), "cached": cached}
        score = self._record(rec, (lambda: self.memo[(kind, k)]) if cached else (lambda: est(arch)))
        self.memo[(kind, k)] = score
        if not cached:
            if kind == "quality":
                self.evaluations += 1
            else:
                self.proxy_evaluations += 1
        return score

    def reject(self, arch: Arch) -> None:
        """Journal a proposal over the budget (never evaluated)."""
        self._check_budget()
        self._record({"i": len(self.history), "kind": "rejected", "arch": dict(arch), "loop_ms": self.problem.loop_ms(arch), "cached": False},
                     lambda: None)

    def best(self) -> dict[str, Any]:
        scored = [r for r in self.history if r["kind"] == "quality" and r["score"] is not None]
        if not scored:
            raise RcaiError("the search evaluated no subnet (evaluations or time limit too small?)")
        return max(scored, key=lambda r: r["score"])  # first of equals: the earliest


class SearchStrategy(ABC):
    """The seam every strategy sits behind: `search(problem, run)` writes what it needs into the run
    folder (`run_strategy` has started it; None: no folder) and returns the chosen subnet."""

    name = "strategy"
    trains = False  # True: the strategy measures quality itself (no estimator is built for it)
    distributed = False  # True: runs on every rank of a torchrun launch (rank 0 writes the run folder)

    def __init__(self, cfg: StrategyConfig, progress: bool = False):
        self.cfg, self.progress = cfg, progress

    def extra_estimators(self) -> tuple[str, ...]:
        """Estimators besides the quality one the strategy scores with (Problem.estimators: AREA's seeding proxy)."""
        return ()

    def train_device(self) -> str | None:
        """The training device of the strategy's option group (None: it trains nothing); run_strategy
        checks it is on this machine before the run folder exists."""
        return None

    def check(self, problem: Problem) -> None:
        """Refuse, in one line and before the run folder exists, a problem this strategy cannot search
        (by default: a budget that no subnet meets)."""
        if problem.budget_ms is not None:
            problem.repair(problem.space.base_arch(), random.Random(0))

    @abstractmethod
    def search(self, problem: Problem, run: RunDir | None = None) -> SearchResult | None: ...


class SampledStrategy(SearchStrategy):
    """A sample-based strategy: `run` proposes subnets through a session until it raises Stop; the
    session's journal is the run folder's evaluations.jsonl."""

    @abstractmethod
    def run(self, problem: Problem, session: Session, rng: random.Random) -> None: ...

    def search(self, problem: Problem, run: RunDir | None = None) -> SearchResult:
        """Run to the budget and return the best subnet evaluated (ties: the earliest)."""
        from ...space.subnet import SubnetSpec

        session = Session(problem, self.cfg, run.file(JOURNAL) if run else None)
        try:
            self.run(problem, session, random.Random(self.cfg.seed))
        except Stop:
            pass
        best = session.best()
        est = problem.cost.estimate(best["arch"], problem.steps)
        notes = [f"{self.name}: best score {best['score']:.6g} after {session.evaluations} evaluations "
                 f"({session.proxy_evaluations} seeding-proxy evaluations, {len(session.history)} proposals) in {session.wall_s:.1f} s"]
        info = {"best_score": best["score"], "best_at": best["i"], "evaluations": session.evaluations,
                "proxy_evaluations": session.proxy_evaluations, "proposals": len(session.history),
                "rejected": sum(r["kind"] == "rejected" for r in session.history), "wall_s": session.wall_s}
        return SearchResult(SubnetSpec(problem.space.preset, problem.space.validate(best["arch"])), est, "best-evaluated",
                            history=session.history, notes=notes, budget_ms=problem.budget_ms, table_loop_ms=est.loop_ms, info=info)


STRATEGIES: Registry[type] = Registry("search strategy")
