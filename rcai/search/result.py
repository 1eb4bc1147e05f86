"""What every search strategy returns: the chosen subnet, its estimated costs, and its history."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..cost.model import Cost
from ..space.subnet import SubnetSpec


@dataclass
class SearchResult:
    subnet: SubnetSpec
    estimate: Cost  # by the cost model that checked the budget
    selection: str  # "argmax" or "budget" (argmax broke the budget: best subnet meeting it)
    history: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"subnet_hash": self.subnet.hash, "estimate": self.estimate.to_dict(), "selection": self.selection, "notes": self.notes}
