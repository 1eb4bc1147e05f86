"""The subnet a DARTS search ends with: the argmax of alpha, or under a budget the exact knapsack over
alpha's log-probabilities (rcai/search/select.py), checked by the GNN predictor where the config names one."""
from __future__ import annotations

from ....cost.load import load_cost_model
from ....cost.model import CostModel
from ....presets import Preset
from ....space.subnet import SubnetSpec
from ...config import DartsOptions
from ...result import UNDER_BUDGET_FLAG, SearchResult
from ...select import alpha_logprobs, arch_from, best_under_budget
from .engine import Bilevel


def load_predictor(o: DartsOptions, preset: Preset) -> CostModel | None:
    """The GNN predictor that ranks candidates and checks the budget, where the options name one."""
    return load_cost_model(o.predictor, preset) if o.predictor else None


def choose_subnet(engine: Bilevel, predictor: CostModel | None) -> SearchResult:
    """Without a budget: the argmax subnet. With one: the subnet of highest alpha log-probability
    whose table loop latency is within the budget (exact knapsack, rcai/search/select.py); with a
    predictor, the budget is tightened until the predictor agrees too (at most 4 tries)."""
    space, S = engine.space, engine.steps_per_sample
    logp = alpha_logprobs(engine.supernet)
    judge = predictor or engine.cost
    if not engine.budget_ms:
        argmax = arch_from(space, logp)
        return SearchResult(SubnetSpec(space.preset, argmax), judge.estimate(argmax, S), "argmax")
    budget, limit, notes = engine.budget_ms, engine.budget_ms, []
    for _ in range(4):
        sel = best_under_budget(space, logp, lambda sp: engine.cost.op_metric(sp, "latency_ms"), engine.cost.overhead_ms, S, limit)
        est = judge.estimate(sel.arch, S)
        if est.loop_ms <= budget:
            break
        notes.append(f"{judge.name} puts the table's choice at {est.loop_ms:.1f} ms > budget {budget:.1f} ms; tightening")
        limit *= budget / est.loop_ms * 0.995
    selection = "argmax" if sel.arch == arch_from(space, logp) else "budget"
    notes.append(f"knapsack over {sel.front_size} Pareto-optimal subnets: loop {sel.loop_ms:.1f} ms by the table "
                 f"({sel.loop_ms / budget:.0%} of the {budget:.1f} ms budget)")
    result = SearchResult(SubnetSpec(space.preset, sel.arch), est, selection, notes=notes, budget_ms=budget, table_loop_ms=sel.loop_ms)
    if result.far_under_budget:
        notes.append(f"FLAG: the subnet uses only {result.budget_use:.0%} of the budget (more than {UNDER_BUDGET_FLAG:.0%} under)")
    return result
