"""The cost of a step-aware schedule (rcai/space/step_schedule.py) by any cost model: the sum over
the loop's steps of each step's subnet, one step each (its network call plus the sampler's per-step
term, as the model's Cost.latency_ms holds it)."""
from __future__ import annotations

from dataclasses import dataclass

from ..space.step_schedule import StepSchedule
from .model import Cost, CostModel


@dataclass(frozen=True)
class ScheduleCost:
    step_ms: tuple[float, ...]  # every step's estimate, in calling order (network + sampler term)
    subnets: dict[str, Cost]  # each distinct subnet's one-step cost
    sampler_ms: float  # the sampler's per-step term, included in every step_ms

    @property
    def loop_ms(self) -> float:
        return float(sum(self.step_ms))

    @property
    def steps(self) -> int:
        return len(self.step_ms)

    @property
    def call_ms(self) -> float:
        """The mean network call, the sampler's term left out."""
        return self.loop_ms / self.steps - self.sampler_ms

    def to_dict(self) -> dict:
        return {"loop_ms": self.loop_ms, "steps": self.steps, "sampler_ms": self.sampler_ms, "per_step_ms": list(self.step_ms),
                "subnets": {n: c.to_dict() for n, c in self.subnets.items()}}


def schedule_cost(model: CostModel, schedule: StepSchedule) -> ScheduleCost:
    """Each distinct subnet estimated once (one step), then summed over the steps that run it."""
    names = list(schedule.subnets)
    costs = dict(zip(names, model.estimate_many([schedule.subnets[n].choices for n in names], 1)))
    steps = tuple(c.latency_ms for c in schedule.per_step(costs))
    return ScheduleCost(steps, costs, float(costs[names[0]].sampler_ms))
