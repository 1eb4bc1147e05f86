"""The pipeline's search stage, one per strategy (`rcai pipeline --strategy`): how the searched subnet
is found and how every model of the report is trained, so that the report compares like with like.

  halving  (default) `rcai search --strategy halving` on subnets trained from scratch with the
           protocol of the training device (rcai/train/protocol.py: `cpu` or `gpu`) stopped at
           `train_steps`, compared at its rungs
           under training seed `seed + 1`; the pick is then trained afresh with `seed`, like the
           base, the cheapest and the random subnet: its figure is not the score that selected it
  darts    the report's bilevel supernet search, its subnet inherited and fine-tuned; the
           references trained from scratch with as many weight updates (cosine lr)

The references run side by side on `jobs` processes (`threads` torch threads each, or on the
GPUs), as training jobs (rcai/train/job.py) dispatched by the local executor.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .registry import Registry
from .space.subnet import SubnetSpec
from .train.evaluate import EvalConfig
from .train.job import TrainJob
from .train.protocol import TrainProtocol, train_job

SEARCH_STAGES: Registry[type["SearchStage"]] = Registry("pipeline search stage")


class SearchStage:
    weights = "model"  # the searched subnet's weights file in its run folder (model.pt)

    def __init__(self, cfg):
        self.cfg = cfg
        self.ev = EvalConfig(steps=20, max_images=cfg.eval_images, seed=cfg.seed)

    def train_protocol(self) -> TrainProtocol:
        """How every model of the report is trained from scratch."""
        raise NotImplementedError

    def job(self, subnet: str | None, run: Path) -> TrainJob:
        """The training of `subnet` (None: the base model) into `run`, on the pipeline's device."""
        c = self.cfg
        return train_job(self.train_protocol(), run, preset=c.preset, subnet=subnet, seed=c.seed, eval=self.ev,
                         device=c.train_device, precision=c.train_precision)

    def search(self, table_path: Path, budget: float, out: Path, say: Callable[[str], None], progress: bool) -> tuple[Path, dict[str, Any]]:
        """The searched subnet: (a folder holding its subnet.json, {notes, selection, table_loop_ms, ...})."""
        raise NotImplementedError

    def random_search(self, table_path: Path, budget: float, search: dict[str, Any], out: Path, say: Callable[[str], None]) -> str | None:
        """Random search of the search's training cost, where that cost is in trainings: the subnet.json
        of its pick (trained afresh by the caller like every model of the report), or None."""
        return None

    def trained_pick(self, found: Path, out: Path) -> tuple[Path, dict[str, str | None]]:
        """Where the searched subnet's trained weights are, and what is left to train for it."""
        return out / "subnet", {"subnet": str(found / "subnet.json")}

    def train_all(self, runs: dict[str, tuple[Path, str | None]], say: Callable[[str], None]) -> None:
        """Train every (run folder, subnet.json | None = base) not trained yet, `jobs` at a time."""
        from .search.executors import make_executor

        todo = [(name, run, sub) for name, (run, sub) in runs.items() if not (run / "metrics.json").exists()]
        if not todo:
            return
        c = self.cfg
        say(f"training {', '.join(n for n, _, _ in todo)} from scratch ({self.train_protocol().steps} steps each, {c.jobs} at a time, "
            f"train device {c.train_device})")
        with make_executor("local", min(c.jobs, len(todo)), threads=c.threads) as pool:
            list(pool.train([self.job(sub, run) for _, run, sub in todo]))


@SEARCH_STAGES.register("halving")
class HalvingStage(SearchStage):
    def protocol(self):
        """The training device's protocol (rcai/train/protocol.py) run to train_steps, evaluated at the rungs."""
        from dataclasses import replace

        from .train.protocol import for_device

        return replace(for_device(self.cfg.train_device), steps=self.cfg.train_steps, eval_at=tuple(self.cfg.halving.rungs))

    def protocol_name(self) -> str:
        """The registered name of the training device's protocol (`cpu` or `gpu`)."""
        from .train.protocol import PROTOCOLS, for_device

        base = for_device(self.cfg.train_device)
        return next(name for name, p in PROTOCOLS.items() if p == base)

    def train_protocol(self) -> TrainProtocol:
        """The search's protocol to train_steps, its curve the last step only."""
        from dataclasses import replace

        p = self.protocol()
        return replace(p, eval_at=(p.steps,))

    def search(self, table_path, budget, out, say, progress):
        from dataclasses import replace

        from .search.strategies.base import StrategyConfig
        from .search.strategies.run import run_strategy

        c, h, run = self.cfg, self.cfg.halving, out / "search"
        say(f"halving search: {h.initial} x {h.brackets} candidates trained from scratch, compared at {h.rungs} steps (training seed {c.seed + 1}, {c.jobs} at a time)")
        halving = replace(h, protocol=self.protocol(), train_seed=c.seed + 1, jobs=c.jobs, train_device=c.train_device, train_precision=c.train_precision)
        scfg = StrategyConfig(strategy="halving", preset=c.preset, cost_table=str(table_path), latency_budget_ms=budget,
                              steps_per_sample=c.steps_per_sample, seed=c.seed, halving=halving)
        _, summary = run_strategy(scfg, run, resume=(run / "config.json").exists())
        return run, {"notes": summary["notes"], "selection": summary["selection"], "table_loop_ms": summary["table"]["loop_ms"],
                     "far_under_budget": summary.get("far_under_budget", False), "strategy": "halving", "trainings": summary["trainings"],
                     "protocol": self.protocol_name()}

    def random_search(self, table_path, budget, search, out, say):
        """As many random subnets as the search's cost in full trainings (rounded), drawn as the
        search drew its first bracket (the same sampler, window and seed: the first of them are its
        candidates), each trained like the search's candidates to train_steps (training seed
        `seed + 1`), in the search's own training folders (what the search trained already is
        extended, never paid twice); the best by that training is the pick."""
        from .cost.load import load_cost_model
        from .errors import RcaiError
        from .presets import get_preset
        from .search.executors import make_executor
        from .search.select import sample_at_latency
        from .train.protocol import rung_qualities

        c, pick = self.cfg, out / "random-search.json"
        tol = c.halving.fill_tol
        if pick.exists():
            return str(pick)
        preset = get_preset(c.preset)
        table = load_cost_model(table_path, preset)
        loop = lambda a: table.estimate(a, c.steps_per_sample).loop_ms  # noqa: E731
        n = max(1, round(search["trainings"]))
        try:  # halving's first bracket: sample_at_latency(..., seed=search seed * 1000)
            archs = [a for a in sample_at_latency(table.space, loop, budget * (1 - tol), tol, n, seed=c.seed * 1000) if loop(a) <= budget]
        except RcaiError:
            return None  # a budget near the cheapest subnet: no random search to compare with
        say(f"random search of the search's cost: the best of {len(archs)} random subnets near the budget trained to {c.train_steps} steps "
            f"(training seed {c.seed + 1})")
        runs = [(spec, out / "search" / "trainings" / spec.hash) for spec in (SubnetSpec(preset, a) for a in archs)]
        with make_executor("local", max(1, min(c.jobs, len(archs))), threads=c.threads) as pool:
            scores = rung_qualities(pool, runs, self.protocol(), c.train_steps, c.seed + 1, c.train_device, c.train_precision)
        return save_spec(preset, archs[max(range(len(archs)), key=lambda i: scores[i])], pick)


@SEARCH_STAGES.register("darts")
class DartsStage(SearchStage):
    weights = "subnet"  # the darts strategy writes subnet.pt

    def train_protocol(self) -> TrainProtocol:
        """From scratch with as many weight updates as the search and its fine-tune (cosine lr, batch 8, no EMA)."""
        d = self.cfg.darts
        return TrainProtocol(steps=d.steps + d.finetune_steps, batch_size=d.batch_size, lr=d.lr_weights, lr_schedule="cosine", ema=0.0, eval_at=())

    def search(self, table_path, budget, out, say, progress):
        from dataclasses import replace

        from .io import read_json
        from .search.strategies.base import StrategyConfig
        from .search.strategies.run import run_strategy

        c, d, run = self.cfg, self.cfg.darts, out / "search"
        say(f"bilevel ({d.softmax}) search: {d.steps} steps, fine-tune {d.finetune_steps}")
        if (run / "result.json").exists():  # done: its fine-tune and evaluation are not redone
            summary = read_json(run / "result.json")
        else:
            darts = replace(d, predictor=c.predictor, eval=self.ev, train_device=c.train_device, train_precision=c.train_precision)
            scfg = StrategyConfig(strategy="darts", preset=c.preset, cost_table=str(table_path), latency_budget_ms=budget,
                                  steps_per_sample=c.steps_per_sample, seed=c.seed, darts=darts)
            _, summary = run_strategy(scfg, run, resume=(run / "config.json").exists(), progress=progress)
        return run, {**summary["search"], "strategy": "darts"}

    def trained_pick(self, found, out):
        return found, {}  # inherited from the supernet and fine-tuned by the search itself


def save_spec(preset, arch: dict[str, str], path: Path) -> str:
    if not path.exists():
        SubnetSpec(preset, arch).save(path)
    return str(path)

