"""`rcai export` and `rcai bench`: ship the subnet as ONNX, measure its whole sampling loop."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import RcaiError
from .common import CostTableOpt, DeviceOpt, JsonOpt, ThreadsOpt, console, human, out as stdout, print_json
from .defaults import BENCH
from .main import app


@app.command()
def export(
    out: str = typer.Argument(..., help="Output ONNX file (e.g. runs/NAME/subnet.onnx); the sidecar goes to OUT.json. With --schedule: a folder."),
    run: Optional[str] = typer.Option(None, "--run", help="Run folder with subnet.json and model.pt / subnet.pt."),
    subnet: Optional[str] = typer.Option(None, "--subnet", help="subnet.json (instead of --run)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="state_dict .pt for --subnet (omitted: random init, warned)."),
    fp16: bool = typer.Option(False, "--fp16", help="Write an fp16 model (fp32 inputs/outputs); the same as --precision fp16."),
    precision: Optional[str] = typer.Option(None, "--precision", help="fp32 | fp16 | int8 (ONNX Runtime static quantization, QDQ, Conv in int8, calibrated on the model's own sampling loop). Default fp32."),
    calibration: int = typer.Option(64, "--calibration", help="int8: calibration inputs (crops of the training photos x 8 noise levels of their fp32 DDIM loop)."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Compare ONNX Runtime with torch (fp32 max abs diff <= 1e-4)."),
    seed: int = typer.Option(0, help="Seed of the random init when there are no weights."),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="A step-aware schedule (schedule.json): OUT is a folder with one ONNX per distinct subnet + the schedule."),
    supernet: Optional[str] = typer.Option(None, "--supernet", help="With --schedule: the supernet file the subnets' weights are read off (subnets the schedule gives by run folder use the run's)."),
    json: bool = JsonOpt,
) -> None:
    """Export the subnet's denoiser (inputs x [B,6,H,W], noise_level [B,1]; output eps; dynamic
    batch; opset 17), check it with onnx.checker, verify it against torch and write the sidecar."""
    if schedule is not None or supernet is not None:
        if run or subnet or weights or fp16 or precision not in (None, "fp32"):
            raise RcaiError("export --schedule: the subnets come from the schedule (fp32); --run/--subnet/--weights/--precision do not apply")
        return _export_schedule(out, schedule, supernet, verify, json)
    from ..deploy import export_subnet_onnx, load_state, run_files
    from ..deploy.export import INT8_TOLERANCE
    from ..deploy.quantize import CalibrationConfig
    from ..space.subnet import SubnetSpec

    if (run is None) == (subnet is None):
        raise RcaiError("export: give exactly one of --run DIR or --subnet subnet.json")
    if run is not None:
        if weights is not None:
            raise RcaiError("export: --weights goes with --subnet, not --run (the run has its weights)")
        spec_path, weights_path = run_files(run)
    else:
        spec_path, weights_path = Path(subnet), Path(weights) if weights else None
    spec = SubnetSpec.load(spec_path)
    state = load_state(weights_path) if weights_path else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report carries the random-init warning
        rep = export_subnet_onnx(spec, state, out, fp16=fp16, verify=verify, weights_path=weights_path, seed=seed, precision=precision,
                                 calibration=CalibrationConfig(inputs=calibration))
    if json:
        print_json(rep.to_dict())
        return
    for w in rep.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    diff = "not verified" if rep.max_abs_diff is None else f"{rep.max_abs_diff:.2e}"
    stdout.print(f"wrote {rep.onnx_path} ({rep.precision}, opset {rep.opset}, {human(rep.params)} params, {rep.onnx_bytes / 1e6:.2f} MB) + {Path(rep.sidecar_path).name}")
    stdout.print(f"onnx.checker ok; ONNX Runtime vs torch max abs diff (fp32, batch {rep.verify_batch}): {diff}")
    if rep.precision == "fp16":
        stdout.print(f"fp16 ({rep.fp16_converter}) max abs diff vs torch fp32: {rep.fp16_max_abs_diff:.2e}")
    if rep.precision == "int8":
        st, cal = rep.quantization["settings"], rep.quantization["calibration"]
        which = f"{st['quantized_nodes']} {'/'.join(st['op_types'])} nodes quantized, the rest fp32" if st["op_types"] else "every op ORT quantizes"
        stdout.print(f"int8 ({st['format']}, {st['activations']} activations, {st['weights']} weights{' per channel' if st['per_channel'] else ''}; "
                     f"{which}), calibrated on {cal['inputs']} loop inputs ({cal['crops']} crops x {len(cal['recorded_steps'])} steps)")
        if rep.int8_rel_error is not None:
            stdout.print(f"int8 vs torch fp32 on held-out loop inputs: relative error {rep.int8_rel_error:.2%} (warned above {INT8_TOLERANCE:.0%}), max abs diff {rep.int8_max_abs_diff:.2e}")


def _export_schedule(out: str, schedule: Optional[str], supernet: Optional[str], verify: bool, json: bool) -> None:
    from ..deploy.schedule_export import export_schedule
    from ..space.step_schedule import StepSchedule

    if schedule is None:
        raise RcaiError("export: --supernet goes with --schedule")
    rep = export_schedule(StepSchedule.load(schedule), out, supernet, verify=verify)
    if json:
        print_json(rep.to_dict())
        return
    for name, r in rep.subnets.items():
        diff = "not verified" if r["max_abs_diff"] is None else f"max abs diff vs torch {r['max_abs_diff']:.2e}"
        stdout.print(f"{name}: {Path(r['onnx_path']).name} ({human(r['params'])} params, {rep.step_counts[name]} steps; {diff})")
    stdout.print(f"wrote {rep.out} ({len(rep.subnets)} subnets + {Path(rep.schedule_path).name}); weights: {rep.weights}")


@app.command()
def bench(
    model: str = typer.Argument(..., help="Deployed ONNX file (with its sidecar MODEL.json), or a folder of `rcai export --schedule`."),
    device: str = DeviceOpt(BENCH["device"]),
    sample_steps: Optional[int] = typer.Option(BENCH["steps"], "--sample-steps", help="Denoiser calls (default: T for ddpm, 50 for ddim)."),
    sampler: str = typer.Option(BENCH["sampler"], "--sampler", help="ddpm | ddim."),
    batch: int = typer.Option(BENCH["batch"], "--batch", help="Inference batch (images per loop)."),
    image: Optional[str] = typer.Option(BENCH["image"], "--image", help="LR image of the preset's LR size, or 'random' (default: a built-in photo crop)."),
    threads: Optional[int] = ThreadsOpt(BENCH["threads"]),
    loops: int = typer.Option(BENCH["loops"], "--loops", help="Timed whole loops per round."),
    rounds: int = typer.Option(BENCH["rounds"], "--rounds", help="Rounds of the loop measurement (the figure: median of all timed loops)."),
    loop: str = typer.Option(BENCH["loop"], "--loop", help="Where the sampler runs: auto (on the model's device for torch targets, else host) | host (numpy) | device (torch, on the model's device) | graph (the whole loop as one CUDA graph: torch-cuda)."),
    precision: Optional[str] = typer.Option(BENCH["precision"], "--precision", help="torch / torch-cuda targets: fp32 | fp16 | bf16 (the subnet and its float inputs cast; default fp32). ONNX targets run the file's own precision."),
    clock: str = typer.Option(BENCH["clock"], "--clock", help="Clock the loop figure is quoted on: auto (process CPU time for one CPU thread, else wall) | wall | cpu; both are recorded."),
    seed: int = typer.Option(BENCH["seed"], "--seed"),
    cost_table: Optional[str] = CostTableOpt(help="Cost table CSV: its estimate is shown beside the measurement."),
    predictor: Optional[str] = typer.Option(BENCH["predictor"], "--predictor", help="Latency predictor file: its estimate too."),
    preset: Optional[str] = typer.Option(BENCH["preset"], "--preset", "-p", help="Only without a sidecar: the preset whose schedule to use."),
    weights: Optional[str] = typer.Option(BENCH["weights"], "--weights", help="Torch weights for the PSNR reference (default: from the sidecar)."),
    check: bool = typer.Option(BENCH["psnr"], "--psnr/--no-psnr", help="Run the loop the other way once (the torch subnet for an ONNX target, the ONNX file on this CPU for torch / torch-cuda) and report the PSNR between the images."),
    quality: Optional[bool] = typer.Option(None, "--quality/--no-quality", help="The primary metric (gain over bicubic, held-out crops) of MODEL vs its fp32 torch model (default: on for int8 models); --quality also the loop quality: the sampled loop's PSNR/SSIM over seeds, mean of samples, consistency, beside bicubic and the ideal sampler."),
    quality_seeds: int = typer.Option(BENCH["quality_seeds"], "--quality-seeds", help="Loop quality: samples (noise seeds) per crop."),
    quality_crops: int = typer.Option(BENCH["quality_crops"], "--quality-crops", help="Loop quality: held-out crops."),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="With a folder of `rcai export --schedule`: run this schedule (schedule.json) over its subnets instead of its own."),
    force: bool = typer.Option(False, "--force", help="Use a --cost-table measured at another batch or precision."),
    host: Optional[str] = typer.Option(None, "--host", envvar="RCAI_REMOTE_HOST", help="Run the loop on [user@]addr[:port] over ssh (the host needs rcai's dependencies: numpy, torch, the runtime)."),
    json: bool = JsonOpt,
) -> None:
    """Run the full sampling loop of MODEL on the target of --device and report per-step latency
    percentiles, whole-loop latency, images/s, peak memory, the table/predictor estimates and the PSNR
    of its image vs the loop run the other way from the same noise. ONNX targets (cpu, gpu with
    TensorRT, jetson, --host) run the file; torch and torch-cuda run the subnet it was exported from."""
    from ..deploy import BenchConfig, bench_loop

    cfg = BenchConfig(
        device=device, threads=threads, sampler=sampler, steps=sample_steps, batch=batch, image=image, seed=seed,
        loops=loops, rounds=rounds, clock=clock, loop=loop, precision=precision, preset=preset, weights=weights, table=cost_table, predictor=predictor, psnr=check, quality=quality, force=force,
        quality_seeds=quality_seeds, quality_crops=quality_crops,
    )
    from ..deploy.scheduled import scheduled_folder

    folder = scheduled_folder(model)
    if schedule is not None and folder is None:
        raise RcaiError(f"--schedule: {model} is not a folder of `rcai export --schedule`")
    say = None if json else (lambda m: console.print(f"[dim]{m}[/]"))
    if folder is not None:
        from ..deploy.schedule_bench import bench_schedule
        from ..space.step_schedule import StepSchedule

        if host:
            raise RcaiError("--host: a schedule is benched on this machine's targets")
        res = bench_schedule(folder, cfg, StepSchedule.load(schedule) if schedule else None, progress=say)
    elif host:
        from ..deploy.remote_bench import bench_on_host

        res = bench_on_host(model, cfg, host)
    else:
        res = bench_loop(model, cfg, progress=say)
    if json:
        print_json(res.to_dict())
        return
    _print(res)


def _print(res) -> None:
    out = stdout
    out.print(f"[bold]{res.model}[/] on {res.engine_label} — {res.sampler}, {res.steps} steps, batch {res.batch}, image: {res.image}")
    t = Table("measure", "value")
    t.add_row("per step p10 / p50 / p90", f"{res.step_p10_ms:.2f} / {res.step_p50_ms:.2f} / {res.step_p90_ms:.2f} ms ({res.step_count} calls)")
    t.add_row("whole loop", f"{res.loop_ms:.1f} ms: median of {len(res.loop_runs_ms)} loop(s) in {res.loop.get('rounds')} rounds, "
              f"{res.loop_clock} clock; re-measured {res.remeasure_pct:+.1f}% (2nd half of the rounds vs 1st)")
    t.add_row("both clocks", f"wall {res.loop_wall_ms:.1f} ms, process CPU {res.loop_cpu_ms:.1f} ms; load {res.loop.get('load_before')} -> {res.loop.get('load_after')}")
    if res.schedule:
        sc = res.schedule
        t.add_row("schedule", ", ".join(f"steps {g['start']}-{g['stop'] - 1}: {g['subnet']}" for g in sc["segments"]))
    t.add_row("images/s", f"{res.images_per_s:.3f}")
    t.add_row("peak memory", f"{res.peak_mem_bytes / 2**20:.1f} MiB ({res.mem_method})")
    for name, e in res.estimates.items():
        t.add_row(f"{name} estimate", f"{e['loop_ms']:.0f} ms loop ({e['loop_error_pct']:+.1f}%), {e['step_ms']:.2f} ms/step ({e['step_error_pct']:+.1f}%)")
    if res.quality is not None:
        q = res.quality
        t.add_row("quality vs fp32 model", f"gain over bicubic {q['gain_db']:+.3f} dB vs {q['fp32_gain_db']:+.3f} dB (fp32): loss {q['loss_db']:+.3f} dB "
                  f"[{q['loss_lo']:+.3f}, {q['loss_hi']:+.3f}] on {q['crops']} held-out crops")
    if res.loop_quality is not None:
        _loop_quality_rows(t, res.loop_quality)
    if res.psnr_db is not None:
        ok = "" if res.psnr_ok is None else (" ok" if res.psnr_ok else " [red]BELOW 50 dB[/]")
        t.add_row("PSNR vs reference", f"{res.psnr_db:.1f} dB vs {res.psnr_reference}{ok}")
    out.print(t)
    for n in res.notes:
        out.print(f"[yellow]note:[/] {n}")


def _loop_quality_rows(t: Table, q: dict) -> None:
    ideal = "n/a" if q["ideal_psnr"] is None else f"{q['ideal_psnr']:.2f} dB"
    where = f"{q['crops']} {q['split']} crops x {q['seeds']} seeds"
    t.add_row("loop: sample PSNR", f"{q['sample_psnr']:.2f} dB (sd {q['sample_psnr_sd']:.2f} over seeds; {where}); bicubic {q['bicubic_psnr']:.2f} dB, ideal sampler {ideal}")
    t.add_row("loop: sample SSIM", f"{q['sample_ssim']:.4f} (sd {q['sample_ssim_sd']:.4f}); bicubic {q['bicubic_ssim']:.4f}")
    t.add_row("loop: mean of samples", f"{q['mean_psnr']:.2f} dB PSNR")
    t.add_row("loop: consistency", f"{q['consistency_psnr']:.2f} dB (downscaled sample vs LR input); bicubic {q['bicubic_consistency_psnr']:.2f} dB")
