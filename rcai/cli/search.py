"""`rcai search`: a subnet under a latency budget by any registered strategy (rcai/search/strategies), one runner for all."""
from __future__ import annotations

from typing import List, Optional

import typer

from .common import CostTableOpt, ImageDirOpt, JsonOpt, PresetOpt, TrainDeviceOpt, TrainPrecisionOpt, out as stdout, print_json
from .defaults import DARTS, EVAL, STRATEGY, defaults
from .main import app

HALVING = defaults("search/config.py", "HalvingOptions")
RL = defaults("search/config.py", "RLOptions")
BO = defaults("search/config.py", "BOOptions")
ONESHOT = defaults("search/config.py", "OneShotOptions")


@app.command()
def search(
    cost_table: str = CostTableOpt(...),
    out: str = typer.Option(..., "--out", "-o", help="Run folder, e.g. runs/search."),
    preset: str = PresetOpt,
    softmax: str = typer.Option(DARTS["softmax"], help="Mixed-op weights: simple | temperature | gumbel | gdas (single path) | paired (single path, paired REINFORCE)."),
    latency_budget_ms: Optional[float] = typer.Option(STRATEGY["latency_budget_ms"], help="Budget for the whole sampling loop (ms)."),
    sample_steps: int = typer.Option(STRATEGY["steps_per_sample"], "--sample-steps", help="Sampling steps of the deployed loop; latency counts all of them."),
    penalty: str = typer.Option(DARTS["penalty"], help="expected | budget | target | mul-log (auto: budget if a budget is set; target: the budget is a target, pushed up to from below)."),
    lambda_latency: float = typer.Option(DARTS["lambda_latency"], help="Weight of the latency term (on latency / base latency)."),
    lambda_flops: float = typer.Option(DARTS["lambda_flops"], help="Weight of the FLOPs term (on FLOPs / base FLOPs)."),
    search_steps: int = typer.Option(DARTS["steps"], "--search-steps", help="Bilevel search steps."),
    warmup_steps: int = typer.Option(DARTS["warmup_steps"], "--warmup-steps", help="Weight-only steps before alpha moves."),
    finetune_steps: Optional[int] = typer.Option(None, "--finetune-steps", help=f"Fine-tuning steps of the extracted subnet (darts: default {DARTS['finetune_steps']}; "
                                                 f"oneshot: from its inherited weights, default {ONESHOT['finetune_steps']})."),
    lr_weights: float = typer.Option(DARTS["lr_weights"], help="Adam lr of the weights (report: 3e-6 at its scale)."),
    lr_alpha: float = typer.Option(DARTS["lr_alpha"], help="Adam lr of alpha (report: 3e-5 at its scale)."),
    batch_size: int = typer.Option(DARTS["batch_size"], "--batch-size", help="Training batch size."),
    seed: int = typer.Option(STRATEGY["seed"]),
    image_dir: Optional[str] = ImageDirOpt(),
    predictor: Optional[str] = typer.Option(None, help="GNN predictor: ranks candidates and checks the budget."),
    eval_steps: int = typer.Option(EVAL["steps"], help="DDIM steps of the PSNR/SSIM evaluation."),
    eval_images: int = typer.Option(EVAL["max_images"], help="Test crops evaluated."),
    force: bool = typer.Option(False, "--force", help="Use a table measured for another preset/batch/precision."),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed search from its last checkpoint."),
    strategy: str = typer.Option("darts", help="darts (bilevel supernet search) | grid | random | evolution | area | rl (sample-based) | "
                                 "knapsack (exact, with --proxy quality-model) | halving | bo (subnets trained from scratch) | oneshot "
                                 "(over a one-shot supernet, --supernet). Measured "
                                 "(benchmarks/results, subnets trained from scratch): darts, grid, random, evolution, area and rl never beat "
                                 "the median random subnet of their latency beyond its interval; halving and knapsack did at some budgets; "
                                 "no strategy has yet beaten random search of equal training cost beyond its interval; bo, warm-started from the "
                                 "quality model, lost to it at the one budget measured (0.6 x base, 3 search seeds: -0.049 [-0.099, -0.007] dB, "
                                 "results/search_budget_cpu800.md) and tied it cold-started (+0.001 [-0.078, +0.052])."),
    proxy: Optional[str] = typer.Option(None, help=f"Sample-based strategies: quality estimator (rcai/proxies; default {STRATEGY['proxy']}, "
                                        "quality-model for knapsack)."),
    quality_model: Optional[str] = typer.Option(None, "--quality-model", help="Quality model of `rcai quality fit` (default predictors/quality-PRESET.json)."),
    evaluations: int = typer.Option(STRATEGY["evaluations"], help="Sample-based strategies: quality-estimator calls."),
    reward: str = typer.Option(RL["reward"], help="rl: reward form hard | soft | linear."),
    rungs: List[int] = typer.Option(list(HALVING["rungs"]), "--rung", help="halving, bo: training steps at which candidates are compared (repeatable; the last is the full training)."),
    eta: int = typer.Option(HALVING["eta"], help="halving, bo: keep the best 1/eta of the candidates at each rung."),
    initial: Optional[int] = typer.Option(None, help=f"halving, bo: candidates of each bracket (round) at the first rung (default {HALVING['initial']}, bo {BO['initial']})."),
    trainings: float = typer.Option(BO["trainings"], help="bo: training budget in full trainings (every rung's steps count)."),
    brackets: int = typer.Option(HALVING["brackets"], help="halving: brackets (the first random near the budget, later ones by the surrogate)."),
    train_seed: int = typer.Option(HALVING["train_seed"], "--train-seed", help="halving, bo: training seed of every candidate (a paired comparison)."),
    jobs: int = typer.Option(HALVING["jobs"], help="halving, bo: trainings at once."),
    executor: str = typer.Option(HALVING["executor"], help="halving, bo: local (process pool) | ray (pip install 'rcai[distributed]')."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="halving, bo, ray: a cluster to join (auto or HOST:PORT; default: start a local one)."),
    train_device: str = TrainDeviceOpt(),
    train_precision: str = TrainPrecisionOpt(),
    supernet: Optional[str] = typer.Option(None, "--supernet", help="oneshot: supernet.pt of `rcai supernet train` (its predictor.json beside it)."),
    candidates: int = typer.Option(ONESHOT["candidates"], help="oneshot: subnets the predictor proposes that are judged with inherited weights."),
    json: bool = JsonOpt,
) -> None:
    """Train the supernet's weights and architecture parameters alternately with the target's
    latency in the architecture loss, extract the best subnet under the budget, fine-tune it and
    evaluate PSNR/SSIM. Multi-process: `torchrun --nproc_per_node N -m rcai search ...`.
    With --strategy grid|random|evolution|area|rl: sample subnets within the budget, score them with
    --proxy and keep the best (subnet.json; train it with `rcai train --subnet`). With --strategy knapsack:
    the subnet of highest predicted quality within the budget, exactly, by a quality model fitted on
    subnets trained from scratch (`rcai quality collect`, `rcai quality fit`). With --strategy halving:
    subnets within the budget trained from scratch, compared at rungs of the training (successive
    halving), candidates proposed by a surrogate fitted on what has been trained (trains: minutes each).
    With --strategy bo: the same trainings and rungs, every round's candidates chosen by expected
    improvement under a Bayesian surrogate (per-op effects, pairwise interactions, the rungs' learning
    curves), warm-started from --quality-model where that file exists, until --trainings are spent.
    With --strategy oneshot --supernet S: no training; the supernet's quality predictor proposes
    subnets within the budget, the best are judged with the weights they inherit from the supernet,
    and the pick's weights (subnet.pt, optionally fine-tuned) come from it: `rcai export --run OUT`."""
    _check_options(lr_weights=lr_weights, lr_alpha=lr_alpha, lambda_latency=lambda_latency, lambda_flops=lambda_flops,
                   eval_images=eval_images, evaluations=evaluations)
    _refuse_inapplicable(strategy, {k: v for k, v in locals().items() if k in APPLIES})
    from ..train.device import check_precision

    check_precision(train_precision)
    from ..proxies import ProxyConfig
    from ..search.config import BOOptions, DartsOptions, HalvingOptions, OneShotOptions, RLOptions
    from ..search.strategies.base import StrategyConfig
    from ..search.strategies.run import run_strategy
    from ..train.evaluate import EvalConfig
    from ..train.protocol import SIGNAL, TrainProtocol

    darts = DartsOptions(predictor=predictor, softmax=softmax, penalty=penalty, lambda_latency=lambda_latency, lambda_flops=lambda_flops,
                         steps=search_steps, warmup_steps=warmup_steps, lr_weights=lr_weights, lr_alpha=lr_alpha, batch_size=batch_size,
                         finetune_steps=DARTS["finetune_steps"] if finetune_steps is None else finetune_steps, eval=EvalConfig(steps=eval_steps, max_images=eval_images),
                         train_device=train_device, train_precision=train_precision)
    protocol = TrainProtocol(steps=max(rungs), batch_size=batch_size, lr=SIGNAL.lr, lr_schedule=SIGNAL.lr_schedule, ema=SIGNAL.ema,
                             eval_at=tuple(sorted(set(rungs))))
    proxy = proxy or ("quality-model" if strategy == "knapsack" else STRATEGY["proxy"])
    cfg = StrategyConfig(strategy=strategy, preset=preset, cost_table=cost_table, proxy=proxy, latency_budget_ms=latency_budget_ms,
                         steps_per_sample=sample_steps, evaluations=evaluations, rl=RLOptions(reward=reward), seed=seed, force=force,
                         proxy_config=ProxyConfig(data_dir=image_dir, seed=seed, quality_model=quality_model or f"predictors/quality-{preset}.json"),
                         darts=darts, halving=HalvingOptions(protocol=protocol, rungs=tuple(rungs), eta=eta, initial=HALVING["initial"] if initial is None else initial,
                                                             brackets=brackets, train_seed=train_seed, jobs=jobs, executor=executor,
                                                             ray_address=ray_address, train_device=train_device, train_precision=train_precision),
                         bo=BOOptions(trainings=trainings, initial=BO["initial"] if initial is None else initial),
                         oneshot=OneShotOptions(supernet=supernet, candidates=candidates, finetune_steps=finetune_steps or 0,
                                                train_device=train_device, train_precision=train_precision))
    _, summary = run_strategy(cfg, out, resume=resume, progress=not json)
    if not summary:
        return  # not rank 0
    if json:
        print_json(summary)
        return
    for note in summary["notes"]:
        stdout.print(note)
    stdout.print(f"{out}: {summary_line(cfg, summary)}")


def summary_line(cfg, s: dict) -> str:
    """The run's result in one line: the subnet, its loop by the table (and its quality where the strategy evaluated it)."""
    t = s["table"]
    if "base_table" in s:  # darts: trained, fine-tuned and evaluated
        b = s["base_table"]
        return (f"subnet {s['subnet_hash']} ({s['selection']}): loop {t['loop_ms']:.1f} ms vs base {b['loop_ms']:.1f} ms "
                f"({b['loop_ms'] / t['loop_ms']:.2f}x), FLOPs {t['flops'] / 1e6:.1f}M vs {b['flops'] / 1e6:.1f}M, "
                f"quality {s['quality']['gain_db']:+.3f} dB over bicubic, sampled PSNR {s['psnr']:.2f} dB, SSIM {s['ssim']:.3f}")
    budget = f" (budget {cfg.latency_budget_ms:.1f} ms)" if cfg.latency_budget_ms else ""
    score = {"halving": "quality (dB)", "bo": "quality (dB)", "oneshot": "inherited quality (dB, validation crops)"}.get(cfg.strategy, cfg.proxy)
    return (f"subnet {s['subnet_hash']}: {score} {s['best_score']:.6g}, loop {t['loop_ms']:.1f} ms{budget}; "
            f"{s['evaluations']} evaluations in {s['wall_s']:.1f} s")


# Options that only some strategies read: anything else given them is refused, never silently ignored.
_DARTS = ("darts",)
_SAMPLED = ("grid", "random", "evolution", "area", "rl", "knapsack")
APPLIES: dict[str, tuple[str, ...]] = {
    **{k: _DARTS for k in ("softmax", "penalty", "lambda_latency", "lambda_flops", "search_steps", "warmup_steps",
                           "lr_weights", "lr_alpha", "predictor", "eval_steps", "eval_images")},
    "finetune_steps": _DARTS + ("oneshot",), "supernet": ("oneshot",), "candidates": ("oneshot",),
    **{k: ("halving", "bo") for k in ("rungs", "eta", "initial", "train_seed", "jobs", "executor", "ray_address")},
    "brackets": ("halving",), "trainings": ("bo",),
    "train_device": _DARTS + ("halving", "bo", "oneshot"), "train_precision": _DARTS + ("halving", "bo", "oneshot"),
    "batch_size": _DARTS + ("halving", "bo"),
    "proxy": _SAMPLED, "evaluations": _SAMPLED, "reward": ("rl",), "quality_model": _SAMPLED + ("bo",),
}


def _refuse_inapplicable(strategy: str, given: dict) -> None:
    """One line for an option set away from its default that `strategy` does not read."""
    from ..errors import RcaiError

    params = {p.name: p.default for p in search_params()}
    wrong = [k for k, v in given.items() if strategy not in APPLIES[k] and _differs(v, params.get(k))]
    if wrong:
        flags = ", ".join("--" + ("rung" if k == "rungs" else k.replace("_", "-")) for k in sorted(wrong))
        raise RcaiError(f"{flags}: not read by --strategy {strategy} (" +
                        "; ".join(f"{'--' + k.replace('_', '-')}: {', '.join(APPLIES[k])}" for k in sorted(wrong)) + ")")


def _differs(value, default) -> bool:
    if isinstance(default, (list, tuple)) or isinstance(value, (list, tuple)):
        return list(value or []) != list(default or [])
    return value != default


def search_params():
    """The `rcai search` options with their defaults (typer's OptionInfo on the signature)."""
    import inspect

    return [p.replace(default=getattr(p.default, "default", p.default)) for p in inspect.signature(search).parameters.values()]


def _check_options(lr_weights: float, lr_alpha: float, lambda_latency: float, lambda_flops: float, eval_images: int, evaluations: int) -> None:
    """Numbers at the edge, one line each (torch would raise on a NaN lr; a NaN weight trains to NaN)."""
    import math

    from ..config import require_counts
    from ..errors import RcaiError

    for name, v in (("--lr-weights", lr_weights), ("--lr-alpha", lr_alpha)):
        if not (math.isfinite(v) and v > 0):
            raise RcaiError(f"{name} must be a positive finite learning rate, got {v}")
    for name, v in (("--lambda-latency", lambda_latency), ("--lambda-flops", lambda_flops)):
        if not math.isfinite(v):
            raise RcaiError(f"{name} must be a finite weight, got {v}")
    require_counts({"eval-images": eval_images, "evaluations": evaluations}, "--")
