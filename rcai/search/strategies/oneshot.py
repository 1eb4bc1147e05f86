"""Search over a one-shot supernet (`--strategy oneshot --supernet S`): no training per candidate.

The supernet's quality predictor (per-slot op effects, fitted on inherited evaluations by `rcai
supernet train`: rcai/oneshot) gives each slot's choices a score; the exact knapsack under the
budget (rcai/search/select.py) picks the predicted best, at the budget and at a few tighter ones;
those and their single-slot neighbours within the budget are ranked by the predictor, and the best
`candidates` are judged with inherited weights on the validation crops (a session: journalled, a
killed search replays). The pick's weights are read off the supernet (inherited.pt), optionally
fine-tuned (`finetune_steps`), and saved as subnet.pt: `rcai export --run OUT` deploys it.
"""
from __future__ import annotations

import dataclasses
import random
import shutil
from pathlib import Path

from ...cost.model import OpCostModel
from ...errors import RcaiError
from ...io import atomic_torch_save
from ...space.space import Arch
from ...space.subnet import SubnetSpec
from ...train.rundir import RunDir
from ..result import SearchResult
from ..select import best_under_budget
from .base import JOURNAL, STRATEGIES, Problem, SearchStrategy, Session, key

TIGHTER = (1.0, 0.98, 0.96, 0.94, 0.92, 0.9)  # fractions of the budget the knapsack is also solved at


def load_supernet_and_predictor(path: str | None, preset):
    """The supernet file and the predictor beside it, refused in one line where either does not fit."""
    from ...oneshot.inherited import PREDICTOR_FILE
    from ...oneshot.net import Supernet
    from ...oneshot.predictor import SlotEffects

    if not path:
        raise RcaiError("--strategy oneshot needs --supernet (supernet.pt of `rcai supernet train`)")
    sn = Supernet.load(path, preset)
    pred = Path(path).parent / PREDICTOR_FILE
    if not pred.is_file():
        raise RcaiError(f"{path}: no {PREDICTOR_FILE} beside it (`rcai supernet fit --supernet {path}` evaluates subnets and fits one)")
    return sn, SlotEffects.load(pred, preset)


def candidates(problem: Problem, predict, scores: dict, n: int) -> list[Arch]:
    """The best `n` subnets by the predictor among the knapsack picks (at the budget and tighter) and
    their single-slot neighbours within the budget."""
    cost: OpCostModel = problem.cost  # type: ignore[assignment]
    op_ms = lambda sp: cost.op_metric(sp, "latency_ms")  # noqa: E731
    picks: dict[str, Arch] = {}
    for f in TIGHTER:
        try:
            a = best_under_budget(problem.space, scores, op_ms, cost.overhead_ms, problem.steps, problem.budget_ms * f).arch
        except RcaiError:
            break  # tighter than the cheapest subnet
        picks.setdefault(key(a), a)
    rng = random.Random(0)
    for a in list(picks.values()):
        for slot in a:
            for name in problem.space._slot_index[slot].choices:
                b = problem.with_choice(a, slot, name, rng)
                if problem.feasible(b):
                    picks.setdefault(key(b), b)
    return sorted(picks.values(), key=lambda a: -predict(a))[:n]


@STRATEGIES.register("oneshot")
class OneShot(SearchStrategy):
    name = "oneshot"
    trains = True  # its estimator is the supernet (no proxy is built)

    def train_device(self) -> str:
        return self.cfg.oneshot.train_device

    def check(self, problem: Problem) -> None:
        if not isinstance(problem.cost, OpCostModel):
            raise RcaiError(f"{self.cfg.cost_table}: --strategy oneshot needs a per-op cost model (a cost table), got a {problem.cost.name}")
        if problem.budget_ms is None:
            raise RcaiError("--strategy oneshot needs --latency-budget-ms")
        problem.check_reachable()
        load_supernet_and_predictor(self.cfg.oneshot.supernet, problem.space.preset)

    def search(self, problem: Problem, run: RunDir | None = None) -> SearchResult:
        import time

        from ...oneshot.inherited import crops, inherited_quality
        from ...train.device import TrainDevice

        o = self.cfg.oneshot
        t0 = time.perf_counter()
        sn, predictor = load_supernet_and_predictor(o.supernet, problem.space.preset)
        sn.net.to(TrainDevice.of(o.train_device, o.train_precision).device)
        ev = crops(sn, "val", self.cfg.proxy_config.data_dir)
        judged = dataclasses.replace(problem, estimate=lambda a: inherited_quality(sn, a, ev)["gain_db"])
        session = Session(judged, dataclasses.replace(self.cfg, evaluations=o.candidates), run.file(JOURNAL) if run else None)
        pool = candidates(problem, predictor, predictor.slot_scores(problem.space), o.candidates)
        for a in pool:
            session.evaluate(a)
        best = session.best()
        spec = SubnetSpec(problem.space.preset, problem.space.validate(best["arch"]))
        est = problem.cost.estimate(spec.choices, problem.steps)
        info = {"best_score": best["score"], "predicted": predictor(spec.choices), "evaluations": session.evaluations, "wall_s": time.perf_counter() - t0,
                "supernet": str(o.supernet), "sharing": sn.sharing, "supernet_cpu_s": sn.info.get("cpu_s"), "predictor_loo_spearman": predictor.loo_spearman}
        notes = [f"oneshot: {len(pool)} candidates by the predictor (LOO Spearman {predictor.loo_spearman:.2f} on {predictor.n} inherited evaluations), "
                 f"judged with inherited weights on the validation crops: best {best['score']:+.3f} dB (predicted {info['predicted']:+.3f})"]
        if run is not None:
            subnet, _ = sn.subnet(spec.choices)
            atomic_torch_save({k: v.detach().cpu() for k, v in subnet.state_dict().items()}, run.file("inherited.pt"))
            spec.save(run.file("subnet.json"))
            if o.finetune_steps:
                info["finetune"] = self._finetune(run, o)
                notes.append(f"fine-tuned {o.finetune_steps} steps from the inherited weights: {info['finetune']['quality']['gain_db']:+.3f} dB on the held-out crops")
            else:
                shutil.copyfile(run.file("inherited.pt"), run.file("subnet.pt"))
        return SearchResult(spec, est, "oneshot", history=session.history, notes=notes, budget_ms=problem.budget_ms, table_loop_ms=est.loop_ms, info=info)

    def _finetune(self, run: RunDir, o) -> dict:
        """The pick trained on from its inherited weights (constant lr, EMA: the `cpu` protocol's) into run/finetune; its weights become subnet.pt."""
        from dataclasses import replace

        from ...train.evaluate import EvalConfig
        from ...train.protocol import CPU, train_job

        n = o.finetune_steps
        m = train_job(replace(CPU, steps=n, eval_at=(n,)), run.file("finetune"), preset=self.cfg.preset, subnet=run.file("subnet.json"),
                      init=run.file("inherited.pt"), seed=self.cfg.seed, data_dir=self.cfg.proxy_config.data_dir,
                      eval=EvalConfig(steps=20, max_images=0), device=o.train_device, precision=o.train_precision, progress=self.progress).run()
        shutil.copyfile(run.file("finetune") / "model.pt", run.file("subnet.pt"))
        return {k: m[k] for k in ("quality", "train_steps", "train_s") if k in m}
