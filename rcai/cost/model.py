"""The cost-model seam: "what does this architecture cost on that target".

Search and bench depend on `CostModel`, never on a concrete one. Per-op models (the cost table, the
analytic counters) also give the differentiable expected cost of a supernet (rcai/cost/expected.py);
whole-network models (the GNN predictor) only estimate subnets.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

from ..model.ops import OpSpec
from ..presets import Preset
from ..space.space import SearchSpace
from .counters import op_counts
from .table import CostTable


@dataclass(frozen=True)
class Cost:
    latency_ms: float  # one step of the sampling loop: the network evaluation, plus sampler_ms
    flops: float
    params: float
    memory_bytes: float  # peak activation memory of the largest op (weights excluded)
    steps: int = 1  # sampling steps of the loop the latency is for
    sampler_ms: float = 0.0  # the sampler's own work per step (update, noise, copies), included in latency_ms

    @property
    def loop_ms(self) -> float:
        """The whole sampling loop: the denoiser runs once per step."""
        return self.latency_ms * self.steps

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "loop_ms": self.loop_ms}


class CostModel(ABC):
    name: str = "cost"

    def __init__(self, preset: Preset):
        self.preset = preset
        self.space = SearchSpace.of(preset)

    @abstractmethod
    def estimate(self, arch: Mapping[str, str], steps: int = 1) -> Cost:
        """Deterministic cost of the subnet `arch`."""

    def estimate_many(self, archs: Sequence[Mapping[str, str]], steps: int = 1) -> list[Cost]:
        """Several subnets at once (models that batch, like the predictor, override this)."""
        return [self.estimate(a, steps) for a in archs]


class OpCostModel(CostModel):
    """A cost model that is a sum over ops: also defines the per-op metrics the supernet's
    expected cost propagates. Latency is `overhead + sum(op latency)`; the overhead includes the
    sampler's per-step term (`sampler_ms`), a constant, so the expected cost stays differentiable."""

    sampler_ms: float = 0.0

    metrics = ("latency_ms", "flops", "params")

    @abstractmethod
    def op_metric(self, spec: OpSpec, metric: str) -> float: ...

    @property
    def overhead_ms(self) -> float:
        return 0.0

    def estimate(self, arch: Mapping[str, str], steps: int = 1) -> Cost:
        specs = self.space.arch_specs(arch)
        total = {m: sum(self.op_metric(s, m) for s in specs) for m in self.metrics}
        return Cost(
            latency_ms=self.overhead_ms + total["latency_ms"],
            flops=total["flops"],
            params=total["params"],
            memory_bytes=max(op_counts(s)["peak_act_bytes"] for s in specs),
            steps=steps,
            sampler_ms=self.sampler_ms,
        )


class CounterCostModel(OpCostModel):
    """FLOPs and params from the analytic counters; no latency (0)."""

    name = "counters"

    def op_metric(self, spec: OpSpec, metric: str) -> float:
        return 0.0 if metric == "latency_ms" else op_counts(spec)[metric]


class TableCostModel(OpCostModel):
    """Latency, FLOPs and params looked up in a measured cost table. A calibrated table (`rcai profile
    --calibrate N`) scales each op's latency by its kind's factor and adds the fitted per-network
    overhead; the per-op costs the search propagates carry the same factors, so the differentiable
    expected cost and every estimate agree (a launch-bound fit, `--cost-model launch`: each op costs
    scale x its latency + kernel_ms x its kernels, still a sum over ops). calibrated=False reads the bare table. A table profiled
    with calibration also measured every sampler's own per-step cost (meta `sampler_ms`): `sampler`
    names the one the loop runs, added to every step (0 for tables without it)."""

    name = "table"

    def __init__(self, preset: Preset, table: CostTable, force: bool = False, calibrated: bool = True, sampler: str = "ddim"):
        super().__init__(preset)
        table.check_compatible(preset, force=force)
        table.require(self.space.all_specs())
        self.table = table
        self.calibration = table.calibration if calibrated else None
        self.sampler = sampler
        self.sampler_ms = float((table.meta.get("sampler_ms") or {}).get(sampler, 0.0))

    @property
    def overhead_ms(self) -> float:
        return (self.calibration.overhead_ms if self.calibration else self.table.overhead_ms) + self.sampler_ms

    def op_metric(self, spec: OpSpec, metric: str) -> float:
        value = self.table.value(spec, metric)
        if metric == "latency_ms" and self.calibration:
            kernels = (self.table.meta.get("kernels") or {}).get(spec.key, 0.0) if self.calibration.model == "launch" else 0.0
            value = self.calibration.op_ms(spec.op, value, kernels)
        return value
