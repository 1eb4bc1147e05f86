"""What every search strategy returns: the chosen subnet, its estimated costs, and its history."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..cost.model import Cost
from ..space.subnet import SubnetSpec

# A subnet this far under its budget leaves latency unused: flagged in the run's summary.
UNDER_BUDGET_FLAG = 0.15


@dataclass
class SearchResult:
    subnet: SubnetSpec
    estimate: Cost  # by the cost model that checked the budget
    # how the subnet was chosen: darts "argmax" (the alphas' argmax meets the budget, or no budget) or "budget"
    # (the knapsack over the alphas); sample-based "best-evaluated"; halving "best-at-last-rung"; knapsack "best-evaluated"
    selection: str
    history: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    budget_ms: float | None = None  # whole-loop budget
    table_loop_ms: float | None = None  # the chosen subnet's loop by the additive table
    info: dict[str, Any] = field(default_factory=dict)  # the strategy's own figures (evaluations, wall time; darts: its metrics)

    @property
    def budget_use(self) -> float | None:
        """Fraction of the budget the subnet uses (by the cost model that checked it)."""
        return self.estimate.loop_ms / self.budget_ms if self.budget_ms else None

    @property
    def far_under_budget(self) -> bool:
        return self.budget_use is not None and self.budget_use < 1 - UNDER_BUDGET_FLAG

    def to_dict(self) -> dict[str, Any]:
        return {"subnet_hash": self.subnet.hash, "estimate": self.estimate.to_dict(), "selection": self.selection, "notes": self.notes,
                "budget_ms": self.budget_ms, "table_loop_ms": self.table_loop_ms, "budget_use": self.budget_use,
                "far_under_budget": self.far_under_budget}
