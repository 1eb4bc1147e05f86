"""`rcai pipeline`: the main job on built-in defaults (what `make demo` runs)."""
from __future__ import annotations

from typing import List, Optional

import typer

from .common import CostTableOpt, DeviceOpt, JsonOpt, PresetOpt, ThreadsOpt, TrainDeviceOpt, TrainPrecisionOpt, console, out as stdout, print_json
from .defaults import PIPELINE as D, PIPELINE_DARTS as DD, PIPELINE_HALVING as H
from .main import app


@app.command()
def pipeline(
    out: str = typer.Option("runs/demo", "--out", "-o", help="Run folder (report.md, summary.json, base/, search/)."),
    preset: str = PresetOpt,
    device: str = DeviceOpt(D["device"]),
    threads: int = ThreadsOpt(D["threads"]),
    speedup: float = typer.Option(D["speedup"], help="Latency budget = base table latency / speedup."),
    strategy: str = typer.Option(D["strategy"], help="halving (subnets trained from scratch, successive halving) | darts (the report's supernet search)."),
    train_steps: int = typer.Option(H["rungs"][-1], "--steps", help="halving: optimizer steps of every from-scratch training of the report."),
    rungs: List[int] = typer.Option(list(H["rungs"]), "--rung", help="halving: steps at which candidates are compared (repeatable)."),
    initial: int = typer.Option(H["initial"], help="halving: candidates of each bracket at the first rung."),
    brackets: int = typer.Option(H["brackets"], help="halving: brackets (later ones proposed by the surrogate)."),
    jobs: int = typer.Option(D["jobs"], help="Trainings at once (one torch thread each)."),
    search_steps: int = typer.Option(DD["steps"], "--search-steps", help="darts: bilevel search steps (the references train search + fine-tune steps)."),
    finetune_steps: int = typer.Option(DD["finetune_steps"], help="darts: fine-tuning steps of the extracted subnet."),
    warmup_steps: int = typer.Option(DD["warmup_steps"], "--warmup-steps", help="darts: weight-only steps before alpha moves."),
    sample_steps: int = typer.Option(D["steps_per_sample"], "--sample-steps", help="DDIM steps of the deployed loop."),
    rounds: int = typer.Option(D["rounds"], help="Interleaved timing rounds."),
    predictor: Optional[str] = typer.Option(D["predictor"], help="GNN predictor file, e.g. trained on this machine's `rcai profile --archs` data (default: none)."),
    cost_table: Optional[str] = CostTableOpt(D["cost_table"], help="Cost table CSV: reused if it exists (warned if measured elsewhere), "
                                             "else profiled into it (default: profile into the run folder)."),
    quality_model: Optional[str] = typer.Option(D["quality_model"], "--quality-model", help="Quality model (rcai quality fit) whose knapsack pick "
                                                "is trained and timed beside the searched subnet (default: predictors/quality-PRESET.json if it exists; none: skip)."),
    seed: int = typer.Option(D["seed"]),
    train_device: str = TrainDeviceOpt(),
    train_precision: str = TrainPrecisionOpt(),
    json: bool = JsonOpt,
) -> None:
    """Profile the ops on this machine -> search a subnet under a latency budget -> train it, the
    base, the cheapest and a random subnet of its latency alike -> export them to ONNX -> measure
    their whole sampling loops on the target -> report.md with plots. Resumable: run it again after a kill."""
    from dataclasses import replace

    from ..errors import RcaiError
    from ..pipeline import PipelineConfig, run_pipeline

    if device in ("gpu", "torch-cuda"):  # no GPU here: refused now, not after the minutes of search, training and export
        from ..targets import TargetSpec, resolve_device

        resolve_device(TargetSpec(device=device))
    if tuple(rungs)[-1:] != (train_steps,):
        raise RcaiError(f"rungs {tuple(rungs)} must be increasing steps ending at train_steps {train_steps}")
    cfg = PipelineConfig(preset=preset, device=device, threads=threads, speedup=speedup, steps_per_sample=sample_steps, strategy=strategy,
                         jobs=jobs, rounds=rounds, predictor=predictor, cost_table=cost_table, quality_model=quality_model, seed=seed,
                         train_device=train_device, train_precision=train_precision)
    # the flat options into the pipeline's option groups, over its defaults
    cfg = replace(cfg, halving=replace(cfg.halving, rungs=tuple(rungs), initial=initial, brackets=brackets),
                  darts=replace(cfg.darts, steps=search_steps, finetune_steps=finetune_steps, warmup_steps=warmup_steps))
    summary = run_pipeline(cfg, out, say=lambda m: console.print(f"[bold]>[/] {m}"), progress=not json)
    if json:
        print_json(summary)
        return
    parts = [f"{n} {summary[n]['measured_loop_ms']:.1f} ms, {summary[n]['quality']['gain_db']:+.3f} dB" for n in ("base", "subnet", "random", "predicted", "cheapest") if n in summary]
    stdout.print(" | ".join(parts) + f" (quality: gain over bicubic) | speed-up {summary['speedup_measured']:.2f}x measured | report: {out}/report.md")
