"""The trivial answers a search result stands beside (../shared/DESIGN.md, "Quality and cost figures"):
the base, the cheapest subnet, the subnets with one op in every GN-conv slot, and random subnets
within +-tol of a latency budget, all by one op cost model's whole-loop estimate."""
from __future__ import annotations

from typing import Mapping

from ..cost.model import OpCostModel
from ..errors import RcaiError
from ..search.select import sample_at_latency
from ..space.space import SearchSpace

Arch = Mapping[str, str]


def uniform_arch(space: SearchSpace, op: str) -> dict[str, str]:
    """`op` in every slot that offers it, the slot's first choice elsewhere."""
    return space.pick(lambda s: op if op in s.choices else next(iter(s.choices)))


class MatchedLatency:
    """Baselines at matched latency on one cost model: each budget is a fraction of the base's
    `steps`-step loop by the model's estimate."""

    def __init__(self, model: OpCostModel, steps: int):
        self.model, self.steps = model, steps
        self.space = model.space
        self.base = self.space.base_arch()
        self.cheapest = self.space.extreme_arch(lambda sp: model.op_metric(sp, "latency_ms"), largest=False)[0]

    def loop(self, arch: Arch) -> float:
        """The whole loop's estimate, ms."""
        return self.model.estimate(arch, self.steps).loop_ms

    def frac(self, arch: Arch) -> float:
        """The loop as a fraction of the base's."""
        return self.loop(arch) / self.loop(self.base)

    def target(self, frac: float) -> float:
        """The budget `frac` x the base's loop, ms."""
        return frac * self.loop(self.base)

    def random(self, frac: float, n: int, seed: int, tol: float = 0.05) -> list[dict[str, str]]:
        """n distinct random subnets within +-tol of the budget (rcai.search.select.sample_at_latency)."""
        return sample_at_latency(self.space, self.loop, self.target(frac), tol, n, seed=seed)

    def random_or_none(self, frac: float, seed: int, tol: float = 0.05) -> dict[str, str] | None:
        """One random subnet within +-tol of the budget, None where the space has none."""
        try:
            return self.random(frac, 1, seed, tol)[0]
        except RcaiError:
            return None

    def uniforms(self, ops: tuple[str, ...] | None = None) -> list[tuple[str, dict[str, str]]]:
        """(op, the uniform subnet of op) for each op (default: the preset's GN-conv ops, in order)."""
        return [(op, uniform_arch(self.space, op)) for op in (self.model.preset.gnconv_ops if ops is None else ops)]

    def uniform_near(self, frac: float, tol: float = 0.15) -> tuple[str, dict[str, str]] | None:
        """The uniform subnet whose loop lies closest to the budget (the first op on a tie), if within +-tol."""
        target = self.target(frac)
        op, a = min(self.uniforms(), key=lambda u: abs(self.loop(u[1]) / target - 1))
        return (op, a) if abs(self.loop(a) / target - 1) <= tol else None
