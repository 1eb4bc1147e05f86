"""The run folder of a DARTS search (`rcai search --strategy darts`, strategy.py) of a Problem (its cost
table, budget and sampling steps), with the StrategyConfig's seed, data folder and own options (`cfg.darts`):
bilevel search (engine.py) -> subnet under the budget (choose.py) -> fine-tune -> evaluate.

Run folder: config.json, log.jsonl (+ log.csv), checkpoint.pt, supernet.pt, subnet.json,
subnet.pt, metrics.json, plots/. A resumed run continues from the last checkpoint of either phase.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch

from ....diffusion import preset_loss
from ....io import atomic_torch_save, atomic_write_csv, atomic_write_json
from ....space.extract import extract_subnet
from ....model.unet import UNet
from ....train.device import to_cpu
from ....train.evaluate import evaluate
from ....train.lr import set_lr
from ....train.quality import eval_set, quality
from ....train.rundir import RunDir, set_rng_state
from ....progress import progress_bar
from ....train.trainer import save_samples
from ...config import DartsOptions
from ....train.distributed import world
from ...plots import plot_search
from ..base import Problem, StrategyConfig
from .choose import choose_subnet, load_predictor
from .engine import Bilevel, build_bilevel


def search_in(cfg: StrategyConfig, run: RunDir, problem: Problem, progress: bool = True) -> dict[str, Any]:
    """The bilevel search of `problem` in a run folder that `run_strategy` has started (and locked), the
    problem the strategy checked (Darts.check: a per-op cost table, a reachable budget): continues from
    its last checkpoint where there is one. Returns the metrics (rank 0; {} on the other ranks)."""
    rank, _ = world()
    o, table, S = cfg.darts, problem.cost, problem.steps
    predictor = load_predictor(o, problem.space.preset)
    engine = build_bilevel(cfg, problem)
    state = run.load_checkpoint()
    step, phase = 0, "search"
    if state is not None:
        phase, step = state["phase"], state["step"]
        engine.load_state_dict(state["engine"])
    if rank == 0:  # lines after the checkpoint (or all, if none was reached) are redone
        run.truncate_log(step if phase == "search" else o.steps + step)

    def checkpoint(extra: dict[str, Any]) -> None:
        if rank == 0:
            run.save_checkpoint(to_cpu({"engine": engine.state_dict(), **extra}))  # CPU tensors: resumes on any device

    if phase == "search":
        with progress_bar(progress and rank == 0, "searching", o.steps, step) as advance:
            while step < o.steps:
                t0 = time.perf_counter()
                rec = engine.step(step)
                step += 1
                if rank == 0 and (step % o.log_every == 0 or step == o.steps):
                    rec.update(engine.argmax_costs(), step_s=time.perf_counter() - t0)
                    run.log(rec)
                if step % o.ckpt_every == 0 or step == o.steps:
                    checkpoint({"phase": "search", "step": step})
                advance(f"loss {rec.get('loss_arch', rec['loss_weights']):.4f}")
        phase, step = "finetune", 0
        checkpoint({"phase": phase, "step": 0})
    if rank != 0:
        return {}
    atomic_torch_save(to_cpu(engine.supernet.state_dict()), run.file("supernet.pt"))
    result = choose_subnet(engine, predictor)
    result.subnet.save(run.file("subnet.json"))
    subnet, _ = extract_subnet(engine.supernet, result.subnet.choices)
    ft_state = state.get("finetune") if state and state.get("phase") == "finetune" else None
    if ft_state:  # the checkpoint was taken mid fine-tune, after extraction (which draws random numbers)
        set_rng_state(state["rng"])
    finetune(subnet, engine, o, run, ft_state, progress, checkpoint)
    atomic_torch_save(to_cpu(subnet.state_dict()), run.file("subnet.pt"))
    preset = engine.supernet.preset
    ev = eval_set(preset, cfg.proxy_config.data_dir)
    metrics = evaluate(subnet, ev, engine.schedule, o.eval)
    metrics["quality"] = quality(subnet, ev, engine.schedule)
    save_samples(run.file("samples.png"), metrics.pop("_arrays"))
    base = table.estimate(table.space.base_arch(), S)
    metrics.update(
        search=result.to_dict(),
        table=table.estimate(result.subnet.choices, S).to_dict(),
        base_table=base.to_dict(),
        params=sum(p.numel() for p in subnet.parameters()),
        choices=result.subnet.choices,
        **engine.dev.describe(),
    )
    atomic_write_json(run.file("metrics.json"), metrics)
    records = run.read_log()
    write_csv_log(records, run.file("log.csv"))
    plot_search(records, run.file("plots"))
    return metrics


def finetune(subnet: UNet, engine: Bilevel, cfg: DartsOptions, run: RunDir, state, progress: bool, checkpoint: Callable) -> None:
    """The report's last phase: train the extracted subnet's weights (inherited) on the train split."""
    opt = torch.optim.Adam(subnet.parameters(), lr=cfg.lr_weights)
    forward = engine.dev.forward(subnet)
    step = 0
    if state:
        subnet.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = state["step"]
    subnet.train()
    with progress_bar(progress, "fine-tuning", cfg.finetune_steps, step) as advance:
        while step < cfg.finetune_steps:
            loss = preset_loss(forward, engine.schedule, subnet.preset, *engine.batch(engine.train_stream))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            set_lr(opt, cfg.lr_weights, cfg.finetune_lr_schedule, step, cfg.finetune_steps)
            opt.step()
            step += 1
            if step % cfg.log_every == 0 or step == cfg.finetune_steps:
                run.log({"step": cfg.steps + step, "loss_finetune": loss.item()})
            if step % cfg.ckpt_every == 0 or step == cfg.finetune_steps:
                checkpoint({"phase": "finetune", "step": step, "finetune": {"model": subnet.state_dict(), "optimizer": opt.state_dict(), "step": step}})
            advance(f"loss {loss.item():.4f}")


def write_csv_log(records: list[dict[str, Any]], path: Path) -> None:
    keys = sorted({k for r in records for k in r}, key=lambda k: (k != "step", k))
    atomic_write_csv(path, records, keys)
