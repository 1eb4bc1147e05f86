"""Step-aware schedule search over one supernet (issue 40): which subnet runs each segment of the
T-step sampling loop, maximising the loop quality (rcai/train/loop_quality.py: single-sample PSNR,
mean over sampler seeds, on the validation crops, every subnet with the weights it inherits) under a
whole-loop latency budget priced by a cost table (rcai/cost/schedule.py: the sum of the steps).

Cheap by construction:
- a pool of subnets, one per per-step budget: the supernet's predictor and the exact knapsack pick
  the predicted best subnet at each (the proposals of --strategy oneshot), geometrically from the
  cheapest subnet's step up to the most one step may cost within the loop budget, and at budget / T;
- every single-subnet schedule of the pool within the budget is judged first, so the pick is never
  worse than the best of them by the metric;
- then a small evolution over (segment boundaries, a pool subnet per segment): a tournament parent,
  one segment's subnet changed (the others walked down the pool until the budget holds) or, when the
  boundaries are searched, one boundary moved by a step.

Evaluations are journalled (evaluations.jsonl in the output folder, keyed by the per-step subnets and
the metric's settings); the search is deterministic given its seed, so a rerun answers from the journal.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import JsonConfig, counts_of, require_counts
from ..cost.model import OpCostModel, TableCostModel
from ..cost.schedule import schedule_cost
from ..errors import RcaiError
from ..io import append_line, atomic_write_json, read_jsonl
from ..space.space import Arch, SearchSpace
from ..space.step_schedule import Segment, StepSchedule
from ..space.subnet import SubnetSpec
from ..train.loop_quality import LoopQualityConfig, loop_quality
from .strategies.base import Problem, key
from .strategies.oneshot import candidates

JOURNAL = "evaluations.jsonl"
SCHEDULE_FILE = "schedule.json"
RESULT_FILE = "result.json"
METRIC = "sample_psnr"  # the loop quality the search maximises
Plan = tuple[tuple[int, ...], tuple[int, ...]]  # (first step of segments 1.., a pool index per segment)


@dataclass(frozen=True)
class ScheduleSearchConfig(JsonConfig):
    latency_budget_ms: float  # the whole T-step loop, by the cost table
    segments: int = 2
    boundaries: tuple[float, ...] | None = None  # fixed: where segments 1.. start, as fractions of the loop (None: equal to start with, searched)
    steps: int = 10  # T: denoiser calls of the loop
    levels: int = 6  # per-step budgets a pool subnet is proposed at
    evaluations: int = 24  # loop-metric evaluations (at least every single-subnet schedule of the pool)
    seeds: int = 2  # sampler seeds of the loop metric
    crops: int = 8  # validation crops of the loop metric
    seed: int = 0  # the evolution's
    data_dir: str | None = None

    def __post_init__(self) -> None:
        require_counts(counts_of(self, "segments", "steps", "levels", "evaluations", "seeds", "crops"), "--")
        b = self.latency_budget_ms
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 < b < math.inf:
            raise RcaiError(f"--latency-budget-ms must be a positive finite number, got {b!r}")
        if self.segments > self.steps:
            raise RcaiError(f"--segments {self.segments}: more segments than the loop's {self.steps} steps")
        self.starts()

    def starts(self) -> tuple[int, ...]:
        """The first step of segments 1.. (the fixed boundaries, or equal segments)."""
        fr = self.boundaries if self.boundaries is not None else tuple(k / self.segments for k in range(1, self.segments))
        if len(fr) != self.segments - 1:
            raise RcaiError(f"--boundaries: {self.segments} segments need {self.segments - 1} fractions, got {len(fr)}")
        if any(isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1 for f in fr):
            raise RcaiError(f"--boundaries must be fractions of the loop in (0, 1), got {list(fr)}")
        s = tuple(round(f * self.steps) for f in fr)
        if any(b <= a for a, b in zip((0, *s), (*s, self.steps))):
            raise RcaiError(f"--boundaries {list(fr)}: a segment of the {self.steps}-step loop would be empty (segments start at steps {[0, *s]})")
        return s

    def loop_config(self) -> LoopQualityConfig:
        return LoopQualityConfig(seeds=self.seeds, crops=self.crops, split="val", steps=self.steps, batch=self.crops)


def subnet_pool(space: SearchSpace, cost: OpCostModel, predictor: Callable, budget_ms: float, steps: int, levels: int) -> list[Arch]:
    """The pool (module doc), cheapest step first; refused in one line when even the cheapest subnet's loop exceeds the budget."""
    op_ms = lambda sp: cost.op_metric(sp, "latency_ms")  # noqa: E731
    step = lambda a: cost.estimate(a).latency_ms  # noqa: E731
    cheapest, largest = (space.extreme_arch(op_ms, largest=x)[0] for x in (False, True))
    lo = step(cheapest)
    if steps * lo > budget_ms * (1 + 1e-12):
        raise RcaiError(f"latency budget {budget_ms:.4g} ms is below the cheapest schedule's loop ({steps} steps of the cheapest subnet: "
                        f"{steps * lo:.4g} ms by {cost.name})")
    hi = max(lo, min(step(largest), budget_ms - (steps - 1) * lo))
    scores = predictor.slot_scores(space)
    pool = {key(cheapest): cheapest}
    for b in sorted({*np.geomspace(lo, hi, levels).tolist(), budget_ms / steps}):
        for a in candidates(Problem(space, predictor, cost, b, 1), predictor, scores, 1):
            pool.setdefault(key(a), a)
    return sorted(pool.values(), key=step)


@dataclass
class ScheduleSearch:
    """One search: the pool, its prices and the journalled judge (see the module doc)."""

    sn: Any  # rcai.oneshot.net.Supernet
    predictor: Any  # rcai.oneshot.predictor.SlotEffects
    cost: OpCostModel
    cfg: ScheduleSearchConfig
    out: Path | None = None
    tag: str = ""  # what the journal's records must match (the supernet and the metric's settings)

    def __post_init__(self) -> None:
        preset = self.sn.preset
        self.pool = subnet_pool(SearchSpace.of(preset), self.cost, self.predictor, self.cfg.latency_budget_ms, self.cfg.steps, self.cfg.levels)
        self.specs = {f"p{i}": SubnetSpec(preset, a) for i, a in enumerate(self.pool)}
        self.names = list(self.specs)
        self.judged: dict[tuple[int, ...], dict[str, Any]] = {}  # per-step pool indices -> its record
        self._loop_ms: dict[tuple[int, ...], float] = {}
        self._denoisers: dict[int, Any] = {}
        self._journal = {} if self.out is None else {r["key"]: r for r in read_jsonl(self.out / JOURNAL) if isinstance(r, dict) and r.get("tag") == self.tag}

    # -- a plan, its schedule and its price ----------------------------------------------------------
    def per_step(self, plan: Plan) -> tuple[int, ...]:
        starts, picks = plan
        bounds = (0, *starts, self.cfg.steps)
        return tuple(p for p, a, b in zip(picks, bounds, bounds[1:]) for _ in range(a, b))

    def schedule(self, per_step: tuple[int, ...]) -> StepSchedule:
        """The schedule running pool subnet per_step[t] at step t (runs of one subnet are one segment)."""
        segs, start = [], 0
        for t in range(1, len(per_step) + 1):
            if t == len(per_step) or per_step[t] != per_step[start]:
                segs.append(Segment(start, t, self.names[per_step[start]]))
                start = t
        used = {s.subnet for s in segs}
        return StepSchedule(self.sn.preset, self.cfg.steps, {n: s for n, s in self.specs.items() if n in used}, tuple(segs))

    def loop_ms(self, per_step: tuple[int, ...]) -> float:
        if per_step not in self._loop_ms:
            self._loop_ms[per_step] = schedule_cost(self.cost, self.schedule(per_step)).loop_ms
        return self._loop_ms[per_step]

    def feasible(self, per_step: tuple[int, ...]) -> bool:
        return self.loop_ms(per_step) <= self.cfg.latency_budget_ms * (1 + 1e-12)

    # -- the judge -----------------------------------------------------------------------------------
    def judge(self, per_step: tuple[int, ...]) -> dict[str, Any]:
        if per_step in self.judged:
            return self.judged[per_step]
        k = ",".join(self.specs[self.names[i]].hash for i in per_step)
        rec = self._journal.get(k)
        if rec is None:
            from ..diffusion import TorchDenoiser

            for i in set(per_step) - set(self._denoisers):
                self._denoisers[i] = TorchDenoiser(self.sn.subnet(self.pool[i])[0])
            q = loop_quality([self._denoisers[i] for i in per_step], self.sn.preset, self.cfg.loop_config(), data_dir=self.cfg.data_dir)
            rec = {"key": k, "tag": self.tag, **{m: q[m] for m in (METRIC, "sample_psnr_sd", "mean_psnr", "consistency_psnr", "bicubic_psnr")},
                   "per_seed_psnr": q["per_seed"]["psnr"]}
            if self.out is not None:
                append_line(self.out / JOURNAL, json.dumps(rec))
        self.judged[per_step] = rec = {**rec, "steps": [self.names[i] for i in per_step], "loop_ms": self.loop_ms(per_step)}
        return rec

    # -- the search ----------------------------------------------------------------------------------
    def run(self, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        say = progress or (lambda msg: None)
        cfg, rng = self.cfg, random.Random(self.cfg.seed)
        starts0, k = cfg.starts(), cfg.segments
        plans: dict[tuple[int, ...], Plan] = {}
        for i in range(len(self.pool)):  # every single-subnet schedule within the budget
            plan = (starts0, (i,) * k)
            if self.feasible(self.per_step(plan)):
                plans[self.per_step(plan)] = plan
                say(f"single {self.names[i]}: {self.judge(self.per_step(plan))[METRIC]:.3f} dB")
        proposals = 0
        while len(self.judged) < cfg.evaluations and proposals < 20 * cfg.evaluations:
            proposals += 1
            parents = rng.sample(sorted(plans), min(3, len(plans)))
            child = self._mutate(plans[max(parents, key=lambda p: self.judged[p][METRIC])], rng)
            steps = None if child is None else self.per_step(child)
            if steps is None or steps in self.judged or not self.feasible(steps):
                continue
            plans[steps] = child
            say(f"{'/'.join(self.judge(steps)['steps'])}: {self.judged[steps][METRIC]:.3f} dB")
        return self.result()

    def _mutate(self, plan: Plan, rng: random.Random) -> Plan | None:
        """One segment's subnet changed, the others walked down the pool (cheapest first) until the
        budget holds; or one boundary moved by a step (searched boundaries only)."""
        starts, picks = list(plan[0]), list(plan[1])
        if starts and self.cfg.boundaries is None and rng.random() < 0.3:
            j = rng.randrange(len(starts))
            starts[j] += rng.choice((-1, 1))
            ok = all(b > a for a, b in zip((0, *starts), (*starts, self.cfg.steps)))
            return (tuple(starts), tuple(picks)) if ok else None
        s = rng.randrange(len(picks))
        picks[s] = rng.randrange(len(self.pool)) if rng.random() < 0.3 else min(max(picks[s] + rng.choice((-2, -1, 1, 2)), 0), len(self.pool) - 1)
        others = [j for j in range(len(picks)) if j != s]
        while not self.feasible(self.per_step((tuple(starts), tuple(picks)))):
            down = [j for j in others if picks[j] > 0]
            if not down:
                return None
            picks[rng.choice(down)] -= 1
        return tuple(starts), tuple(picks)

    def result(self) -> dict[str, Any]:
        """The best schedule judged (ties: the cheaper), the best single-subnet one beside it."""
        def best(recs):
            return max(recs, key=lambda kv: (kv[1][METRIC], -kv[1]["loop_ms"]), default=None)

        top = best(self.judged.items())
        single = best((s, r) for s, r in self.judged.items() if len(set(s)) == 1)
        if top is None:
            raise RcaiError("schedule search: no schedule was judged")
        sched = self.schedule(top[0])
        return {
            "schedule": sched, "table_loop_ms": schedule_cost(self.cost, sched).loop_ms, "budget_ms": self.cfg.latency_budget_ms,
            "quality": _public(top[1]), "best_single": None if single is None else {"subnet": single[1]["steps"][0], "quality": _public(single[1]),
                                                                                   "table_loop_ms": single[1]["loop_ms"]},
            "metric": f"{METRIC}: single-sample PSNR (dB), mean over {self.cfg.seeds} sampler seeds, {self.cfg.crops} validation crops, inherited weights",
            "pool": [{"name": n, "step_ms": self.cost.estimate(s.choices).latency_ms, "predicted_db": self.predictor(s.choices), "choices": s.choices}
                     for n, s in self.specs.items()],
            "evaluations": len(self.judged), "history": [_public(r) for r in self.judged.values()], "config": self.cfg.to_dict(),
        }


def _public(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k not in ("key", "tag")}


def search_schedule(supernet: str | Path, cost_table: str | Path, cfg: ScheduleSearchConfig, out: str | Path | None = None,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Search (see the module doc); with `out`, write out/schedule.json, out/result.json and the
    journal. Every refusal (supernet, predictor, table, budget) comes before anything is written."""
    from ..cost.load import load_cost_model
    from .strategies.oneshot import load_supernet_and_predictor

    out = None if out is None else Path(out)
    if out is not None and out.exists() and not out.is_dir():
        raise RcaiError(f"{out}: exists and is not a folder")
    sn, predictor = load_supernet_and_predictor(str(supernet), None)  # the predictor is checked against the supernet's preset by the pool
    cost = load_cost_model(cost_table, sn.preset)
    if not isinstance(cost, TableCostModel):
        raise RcaiError(f"{cost_table}: the schedule search needs a cost table (.csv, `rcai profile`), got a {cost.name} model")
    st = Path(supernet).stat()
    tag = hashlib.sha256(json.dumps([str(Path(supernet).resolve()), st.st_size, st.st_mtime_ns, cfg.loop_config().to_dict(), cfg.data_dir]).encode()).hexdigest()[:12]
    search = ScheduleSearch(sn, predictor, cost, cfg, out, tag)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    res = search.run(progress)
    if out is not None:
        res["schedule"].save(out / SCHEDULE_FILE)
        atomic_write_json(out / RESULT_FILE, {**res, "schedule": res["schedule"].to_dict(), "supernet": str(supernet), "cost_table": str(cost_table)})
    return res
