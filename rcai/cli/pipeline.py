"""`rcai pipeline`: the main job on built-in defaults (what `make demo` runs)."""
from __future__ import annotations

from typing import Optional

import typer

from .common import JsonOpt, PresetOpt, console, print_json
from .main import app


@app.command()
def pipeline(
    out: str = typer.Option("runs/demo", "--out", "-o", help="Run folder (report.md, summary.json, base/, search/)."),
    preset: str = PresetOpt,
    device: str = typer.Option("cpu", "--device", "-d"),
    threads: int = typer.Option(1, help="Threads of the target (profiling, timing) and of torch (training)."),
    speedup: float = typer.Option(1.6, help="Latency budget = base table latency / speedup."),
    search_steps: int = typer.Option(240),
    finetune_steps: int = typer.Option(160),
    warmup_steps: int = typer.Option(40),
    steps_per_sample: int = typer.Option(50, help="DDIM steps of the deployed loop."),
    rounds: int = typer.Option(5, help="Interleaved timing rounds."),
    predictor: Optional[str] = typer.Option(None, help="GNN predictor (default: predictors/<device>-<preset>.pt if present)."),
    seed: int = typer.Option(0),
    json: bool = JsonOpt,
) -> None:
    """Profile (or reuse the shipped table) -> train the base model -> search a subnet under a
    latency budget -> export both to ONNX -> measure both whole sampling loops on the target ->
    report.md with plots. Resumable: run it again after a kill."""
    from ..pipeline import PipelineConfig, run_pipeline

    cfg = PipelineConfig(preset=preset, device=device, threads=threads, speedup=speedup, steps_per_sample=steps_per_sample,
                         search_steps=search_steps, finetune_steps=finetune_steps, warmup_steps=warmup_steps, rounds=rounds,
                         predictor=predictor, seed=seed)
    summary = run_pipeline(cfg, out, say=(lambda m: None) if json else (lambda m: console.print(f"[bold]>[/] {m}")), progress=not json)
    if json:
        print_json(summary)
        return
    parts = [f"{n} {summary[n]['measured_loop_ms']:.1f} ms, {summary[n]['quality']['gain_db']:+.3f} dB" for n in ("base", "subnet", "cheapest")]
    console.print(" | ".join(parts) + f" (quality: gain over bicubic) | speed-up {summary['speedup_measured']:.2f}x measured | report: {out}/report.md")
