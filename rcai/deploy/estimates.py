"""What the cost models (rcai.cost.load: a table, a predictor...) said a deployed subnet's sampling
loop would take, next to the measurement: loop estimate = per-step estimate x steps;
error % = (estimate - measured) / measured."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from ..errors import RcaiError
from ..stats import error_pct
from ..space.step_schedule import StepSchedule
from ..targets.spec import TargetSpec
from .sidecar import DeploySidecar

if TYPE_CHECKING:  # the cost models import the model code, which a deployed loop never needs
    from ..cost.model import CostModel


def load_estimators(paths: Mapping[str, str | None], side: DeploySidecar, target: TargetSpec | None = None, force: bool = False,
                    sampler: str = "ddim") -> dict[str, CostModel]:
    """{name: cost model} for each given path (name: "table", "predictor"...), loaded once by the
    factory; a table measured on another target than `target` (its device, threads, batch) warns
    once, one of another precision than the deployed model's (an fp32 table for an int8 model, or
    the reverse) is refused in one line."""
    from ..cost.load import load_cost_model

    paths = {k: p for k, p in paths.items() if p}
    if paths and not side.choices:
        raise RcaiError(f"--{'/--'.join(paths)}: estimates need the subnet's choices, which only the sidecar has (no sidecar here)")
    batch, device, threads = (target.batch, target.device, target.threads) if target else (1, None, None)
    return {k: load_cost_model(p, side.preset, batch=batch, device=device, threads=threads, force=force, sampler=sampler,
                            precision=side.precision) for k, p in paths.items()}


def estimate_vs_measured(model: CostModel, choices: Mapping[str, str], steps: int, measured_loop_ms: float,
                         measured_step_ms: float | None = None, path: str = "") -> dict[str, Any]:
    """The model's Cost of the subnet over `steps` steps, with its errors against the measurement.
    step_ms: the network call alone (the sampler's per-step term left out), against the measured call."""
    cost = model.estimate(choices, steps)
    return _row(model.name, path, cost.to_dict(), cost.latency_ms - cost.sampler_ms, cost.loop_ms, measured_loop_ms, measured_step_ms)


def schedule_estimate_vs_measured(model: CostModel, schedule: StepSchedule, measured_loop_ms: float,
                                  measured_step_ms: float | None = None, path: str = "") -> dict[str, Any]:
    """The same for a step-aware schedule: loop = the sum of its steps (rcai.cost.schedule); step_ms:
    the mean network call over the steps."""
    from ..cost.schedule import schedule_cost

    cost = schedule_cost(model, schedule)
    return _row(model.name, path, cost.to_dict(), cost.call_ms, cost.loop_ms, measured_loop_ms, measured_step_ms)


def _row(source: str, path: str, cost: dict[str, Any], call_ms: float, loop_ms: float, measured_loop_ms: float,
         measured_step_ms: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {"source": source, "path": path, **cost, "step_ms": call_ms, "loop_error_pct": error_pct(loop_ms, measured_loop_ms)}
    row["step_error_pct"] = None if measured_step_ms is None else error_pct(call_ms, measured_step_ms)
    return row
