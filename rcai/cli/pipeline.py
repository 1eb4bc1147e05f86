"""`rcai pipeline`: the main job on built-in defaults (what `make demo` runs)."""
from __future__ import annotations

from typing import List, Optional

import typer

from .common import CostTableOpt, DeviceOpt, JsonOpt, PresetOpt, ThreadsOpt, TrainDeviceOpt, TrainPrecisionOpt, console, out as stdout, print_json
from .defaults import PIPELINE as D
from .main import app


@app.command()
def pipeline(
    out: str = typer.Option("runs/demo", "--out", "-o", help="Run folder (report.md, summary.json, base/, search/)."),
    preset: str = PresetOpt,
    device: str = DeviceOpt(D["device"]),
    threads: int = ThreadsOpt(D["threads"]),
    speedup: float = typer.Option(D["speedup"], help="Latency budget = base table latency / speedup."),
    strategy: str = typer.Option(D["strategy"], help="halving (subnets trained from scratch, successive halving) | darts (the report's supernet search)."),
    train_steps: int = typer.Option(D["train_steps"], "--steps", help="halving: optimizer steps of every from-scratch training of the report."),
    rungs: List[int] = typer.Option(list(D["rungs"]), "--rung", help="halving: steps at which candidates are compared (repeatable)."),
    initial: int = typer.Option(D["initial"], help="halving: candidates of each bracket at the first rung."),
    brackets: int = typer.Option(D["brackets"], help="halving: brackets (later ones proposed by the surrogate)."),
    jobs: int = typer.Option(D["jobs"], help="Trainings at once (one torch thread each)."),
    search_steps: int = typer.Option(D["search_steps"], "--search-steps", help="darts: bilevel search steps (the references train search + fine-tune steps)."),
    finetune_steps: int = typer.Option(D["finetune_steps"], help="darts: fine-tuning steps of the extracted subnet."),
    warmup_steps: int = typer.Option(D["warmup_steps"], "--warmup-steps", help="darts: weight-only steps before alpha moves."),
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
    from ..pipeline import PipelineConfig, run_pipeline

    if device in ("gpu", "torch-cuda"):  # no GPU here: refused now, not after the minutes of search, training and export
        from ..targets import TargetSpec, resolve_device

        resolve_device(TargetSpec(device=device))
    cfg = PipelineConfig(preset=preset, device=device, threads=threads, speedup=speedup, steps_per_sample=sample_steps, strategy=strategy,
                         train_steps=train_steps, rungs=tuple(rungs), initial=initial, brackets=brackets, jobs=jobs, search_steps=search_steps, finetune_steps=finetune_steps, warmup_steps=warmup_steps, rounds=rounds,
                         predictor=predictor, cost_table=cost_table, quality_model=quality_model, seed=seed,
                         train_device=train_device, train_precision=train_precision)
    summary = run_pipeline(cfg, out, say=lambda m: console.print(f"[bold]>[/] {m}"), progress=not json)
    if json:
        print_json(summary)
        return
    parts = [f"{n} {summary[n]['measured_loop_ms']:.1f} ms, {summary[n]['quality']['gain_db']:+.3f} dB" for n in ("base", "subnet", "random", "predicted", "cheapest") if n in summary]
    stdout.print(" | ".join(parts) + f" (quality: gain over bicubic) | speed-up {summary['speedup_measured']:.2f}x measured | report: {out}/report.md")
