"""`rcai bench`: the whole sampling loop of a deployed denoiser on a target, timed per step and per
loop, with peak memory, the cost table's / predictor's estimates beside the measurement and the
PSNR against the image of the same loop run the other way from the same noise (the deployed ONNX
file vs the torch subnet it was exported from).

The loop is measured the one way every loop is (rcai.targets.loops.measure_loops: rounds, both
clocks, the load beside); `measure_engines` is that measurement for ready engines, which the
pipeline's comparison (compare.py) and the benchmarks use too."""
from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from ..diffusion import list_samplers, make_sampler, sample
from ..config import JsonConfig, require_counts
from ..errors import RcaiError
from ..metrics import psnr
from ..presets import get_preset
from ..targets import TargetSpec
from ..threads import require_threads, torch_threads
from ..cost.loops import LOOP_KINDS, loop_kind
from ..targets.loops import LoopConfig, LoopMeasurement, measure_loops
from ..targets.measure import summarize
from .engines import Engine, build_engine, reference_device
from .estimates import estimate_vs_measured, load_estimators
from .images import lr_input
from ..memory import PeakRss
from .quality import deployed_loop_quality
from .runtime import default_steps, read_deployment
from .sidecar import sidecar_path

if TYPE_CHECKING:
    from ..cost.model import CostModel
    from ..train.loop_quality import LoopQualityConfig

PSNR_MIN_FP32 = 50.0  # dB, ONNX loop vs torch loop at fp32


@dataclass(frozen=True)
class BenchConfig(JsonConfig):
    device: str = "cpu"
    threads: int | None = None
    sampler: str = "ddim"  # the default of `rcai sample` too
    steps: int | None = None  # None: T for ddpm, 50 for ddim (required without a sidecar)
    batch: int = 1
    image: str | None = None  # LR image path, "random", or None (built-in photo crop)
    seed: int = 0
    eta: float = 0.0
    clip_x0: bool = True
    loops: int = 1  # timed whole loops per round
    loop: str = "auto"  # where the sampler runs: auto | host | device | graph (rcai.cost.loops.loop_kind)
    precision: str | None = None  # torch targets: fp32 | fp16 | bf16 (None: the target's default)
    rounds: int = 6  # rounds of the loop measurement (rcai.targets.loops)
    clock: str = "auto"  # the clock the loop figure is quoted on: auto | wall | cpu (rcai.targets.loops)
    warmup: int = 5  # untimed denoiser calls before them
    preset: str | None = None  # only when the sidecar is missing
    weights: str | None = None  # torch weights for the reference (default: what the sidecar names)
    table: str | None = None
    predictor: str | None = None
    psnr: bool = True  # also run the other way (ONNX file / torch subnet) once and compare images
    quality: bool | None = None  # the primary metric vs the fp32 torch model (rcai/deploy/quality.py); None: for int8 models. True: also the loop quality
    quality_seeds: int = 4  # loop quality (rcai/train/loop_quality.py): samples per crop
    quality_crops: int = 16  # ... held-out crops
    force: bool = False  # use a cost table measured at another batch or precision

    @cached_property
    def target(self) -> TargetSpec:
        """The target of device, threads, precision and batch, parsed once (the stored and sent config keeps the flat fields)."""
        return TargetSpec(device=self.device, threads=self.threads, precision=self.precision, batch=self.batch)


@dataclass
class BenchResult:
    model: str
    engine: str  # onnx: the deployed file | torch: the subnet it was exported from (the target of --device decides)
    engine_label: str
    target: dict[str, Any]
    precision: str
    sampler: str
    steps: int
    batch: int
    seed: int
    image: str
    has_sidecar: bool
    subnet_hash: str | None
    step_p10_ms: float
    step_p50_ms: float
    step_p90_ms: float
    step_mean_ms: float
    step_count: int
    loop_ms: float  # the loop figure to quote (loop_clock; denoiser + sampler updates + noise draws + copies)
    loop_runs_ms: list[float]  # every timed loop on that clock
    images_per_s: float
    peak_mem_bytes: int  # increase of the process's peak RSS while loading + running the loop
    peak_rss_bytes: int
    mem_method: str
    estimates: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> estimate_vs_measured row
    psnr_db: float | None = None  # this engine's image vs the reference engine's, same noise
    psnr_reference: str = ""
    psnr_ok: bool | None = None  # fp32 only: psnr_db >= 50
    quality: dict[str, Any] | None = None  # int8: gain over bicubic of this model and of the fp32 torch model, and the loss
    loop_quality: dict[str, Any] | None = None  # --quality: the sampled loop's output on held-out crops (rcai/train/loop_quality.py)
    schedule: dict[str, Any] | None = None  # a step-aware schedule's folder, files and segments (rcai/deploy/schedule_bench.py)
    notes: list[str] = field(default_factory=list)
    loop_clock: str = "wall"
    loop_wall_ms: float = 0.0  # the same statistic on the wall clock
    loop_cpu_ms: float = 0.0  # ... and on this process's CPU time
    remeasure_pct: float = 0.0  # second half of the rounds vs the first, on loop_clock
    loop: dict[str, Any] = field(default_factory=dict)  # the whole LoopMeasurement (every loop, both clocks, load)
    output: np.ndarray | None = field(default=None, repr=False)  # the last loop's image [B,3,H,W]

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "output"}
        return d


def _run_loop(engine: Engine, lr_up: np.ndarray, schedule, cfg: BenchConfig, steps: int, preset, on_step: Callable | None = None):
    return sample(engine.denoiser, lr_up, schedule, sampler=cfg.sampler, steps=steps, seed=cfg.seed, eta=cfg.eta, clip_x0=cfg.clip_x0, step_callback=on_step,
                  residual=preset.residual, prediction=preset.prediction)


def loop_fn(engine: Engine, side, cfg: BenchConfig, on_step: Callable | None = None) -> Callable[[], Any]:
    """A no-argument callable running one whole sampling loop of `engine` (deployed with `side`) as
    `cfg` says (cfg.loop: the sampler on the host, on the model's device, or the whole loop as one
    CUDA graph, captured here); it returns the SampleResult. on_step: host loops only."""
    from ..cost.loops import make_loop

    schedule = side.noise_schedule()
    steps = default_steps(cfg.sampler, schedule.T) if cfg.steps is None else cfg.steps
    lr_up, _ = lr_input(cfg.image, side.preset.lr_size, side.preset.hr_size, cfg.batch, cfg.seed)
    return make_loop(cfg.loop, engine.prepared, engine.denoiser, lr_up, schedule, cfg.sampler, steps, cfg.seed, cfg.eta, cfg.clip_x0,
                     side.preset.residual, side.preset.prediction, on_step)


def on_calling_thread(engines: Mapping[str, Engine]) -> bool:
    """Whether every engine computes on this thread (CPU, one thread): then a loop is quoted in CPU time."""
    return all(e.on_calling_thread for e in engines.values())


def measure_engines(engines: Mapping[str, tuple[Engine, Any]], cfg: BenchConfig, loops: LoopConfig,
                    on_step: Mapping[str, Callable] | None = None) -> dict[str, LoopMeasurement]:
    """The whole loops of ready engines (name -> (engine, its sidecar)) measured together."""
    on_step = on_step or {}
    fns = {name: loop_fn(eng, side, cfg, on_step.get(name)) for name, (eng, side) in engines.items()}
    timers = {name: eng.timer for name, (eng, _) in engines.items() if eng.timer is not None}
    return measure_loops(fns, loops, on_calling_thread({n: e for n, (e, _) in engines.items()}), timers)


def loop_row(m: LoopMeasurement, engine: str = "") -> dict[str, Any]:
    """One candidate of a comparison as a dict (what compare_loops returns, the pipeline and the benchmarks read)."""
    per_round = [statistics.median(r) for r in (m.cpu_ms if m.clock == "cpu" else m.wall_ms)]
    return {"median_ms": m.loop_ms, "repeatability": abs(m.remeasure_pct) / 100.0, "per_round_medians": per_round, "clock": m.clock,
            "wall_ms": m.wall.value_ms, "cpu_ms": m.cpu.value_ms, "remeasure_pct": m.remeasure_pct, "engine": engine, "loop": m.to_dict()}


def check_config(cfg: BenchConfig) -> None:
    if cfg.sampler not in list_samplers():
        raise RcaiError(f"--sampler: unknown {cfg.sampler!r}; known: {', '.join(list_samplers())}")
    if cfg.batch < 1 or cfg.loops < 1 or cfg.rounds < 1 or cfg.warmup < 0:
        raise RcaiError("need --batch >= 1, --loops >= 1, --rounds >= 1 and warmup >= 0")
    require_threads(cfg.threads)
    require_counts({"quality-seeds": cfg.quality_seeds, "quality-crops": cfg.quality_crops}, "--")
    if cfg.loop not in LOOP_KINDS:
        raise RcaiError(f"--loop: unknown {cfg.loop!r}; known: {', '.join(LOOP_KINDS)}")


# The static estimate (live tensors of the graph) misses ONNX Runtime's per-node workspaces and its
# arena: measured peaks were 1.7x it (tiny) to 7.4x (micro). Within this factor of the memory
# available, the measured peak decides.
STATIC_MARGIN = 16
MEASURE_BATCH = 8


def bytes_per_image(onnx_path: Path, batch: int, hr_size: int) -> int:
    """Memory of the loop per image of the batch: the graph's live tensors and the loop's own arrays,
    and where `batch` of them comes near the memory available, ONNX Runtime's measured peak per image."""
    from ..memory import available_bytes
    from .onnxfile import load_onnx, peak_activation_bytes

    static = peak_activation_bytes(load_onnx(onnx_path)) + 16 * 4 * hr_size**2  # + the loop's own arrays
    have = available_bytes()
    if have is None or batch * static * STATIC_MARGIN < have:
        return static
    return max(static, measured_bytes_per_image(onnx_path) + 16 * 4 * hr_size**2)


def measured_bytes_per_image(onnx_path: Path, batch: int = MEASURE_BATCH) -> int:
    """Peak resident memory of one ONNX Runtime call at `batch` (a session of its own, arena off:
    what the call's tensors and workspaces hold), per image; the session's fixed cost spread over the
    few images errs on the safe side."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.enable_cpu_mem_arena = 1, False
    with PeakRss() as m:
        session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        feeds = {i.name: np.zeros([d if isinstance(d, int) else batch for d in i.shape], np.float16 if "float16" in i.type else np.float32)
                 for i in session.get_inputs()}
        session.run(None, feeds)
        del session
    return m.delta_bytes // batch


def bench_loop(onnx_path: str | Path, cfg: BenchConfig = BenchConfig(), progress: Callable[[str], None] | None = None,
               cost_models: dict[str, CostModel] | None = None) -> BenchResult:
    """Measure the whole sampling loop of the deployed model `onnx_path` as `cfg` says. The
    estimates come from cfg.table / cfg.predictor, or from `cost_models` already loaded."""
    check_config(cfg)
    say = progress or (lambda msg: None)
    onnx_path = Path(onnx_path)
    if cfg.preset and cfg.steps is None and not sidecar_path(onnx_path).is_file():
        raise RcaiError(f"{onnx_path}: without a sidecar --sample-steps is required (with --preset)")
    side, has_sidecar = read_deployment(onnx_path, get_preset(cfg.preset) if cfg.preset else None)
    if cfg.device in ("cpu", "torch"):  # the loop runs in this machine's memory: refuse a batch that cannot fit
        from ..memory import require_memory

        per_image = bytes_per_image(onnx_path, cfg.batch, side.preset.hr_size)
        require_memory(cfg.batch * per_image, f"--batch {cfg.batch}", f"about {per_image / 2**20:.2f} MiB an image; use a smaller --batch")
    schedule = side.noise_schedule()
    steps = default_steps(cfg.sampler, schedule.T) if cfg.steps is None else cfg.steps
    preset = side.preset
    lr_up, image_desc = lr_input(cfg.image, preset.lr_size, preset.hr_size, cfg.batch, cfg.seed)
    notes: list[str] = []
    if cost_models is None:
        cost_models = load_estimators({"table": cfg.table, "predictor": cfg.predictor}, side, cfg.target, force=cfg.force,
                                      sampler=cfg.sampler)

    step_ms: list[float] = []
    import onnxruntime  # noqa: F401  loaded before the memory window: library pages are not the model's memory

    with torch_threads(cfg.threads), PeakRss() as mem:
        say(f"preparing --device {cfg.device}")
        engine = build_engine(onnx_path, side, cfg.target, cfg.weights)
        warm(engine, lr_up, cfg)
        say(f"{cfg.rounds} rounds x {cfg.loops} loop(s) of {steps} steps")
        lcfg = LoopConfig(rounds=cfg.rounds, loops=cfg.loops, clock=cfg.clock)
        m = measure_engines({"model": (engine, side)}, cfg, lcfg, on_step={"model": lambda i, t, s: step_ms.append(s * 1e3)})["model"]
        del step_ms[: steps * lcfg.warmup]  # the untimed warm-up loop's steps
        kind = loop_kind(cfg.loop, engine.prepared)
        if kind != "host" and make_sampler(cfg.sampler, schedule, steps, cfg.eta, cfg.clip_x0).stochastic:
            notes.append(f"loop {kind} draws its noise on the device: the image (PSNR) is this engine's host loop's, same network")
            result = _run_loop(engine, lr_up, schedule, cfg, steps, preset)
        else:
            result = loop_fn(engine, side, cfg)()  # one more loop, untimed: the image
        if not step_ms:  # a loop on the device is not timed per step: the network's calls on the target's own timer
            from ..targets import MeasureConfig

            stats = engine.prepared.measure(MeasureConfig(warmup=3, min_repeats=steps, max_repeats=4 * steps, max_seconds=5.0))
            notes.append(f"loop {kind}: the step figures are the network's calls timed alone "
                         f"({stats.count} calls), the loop figure is the whole loop")
    stats = summarize(step_ms) if step_ms else stats
    res = result_of(m, stats, mem, cfg, steps, notes, model=str(onnx_path), engine=engine.kind, engine_label=engine.label, target=engine.info,
                    precision=side.precision if engine.kind == "onnx" else engine.info["precision"], image=image_desc, has_sidecar=has_sidecar,
                    subnet_hash=side.subnet_hash if side.choices else None, output=result.image)
    if cfg.psnr:
        _compare(res, engine, cfg, onnx_path, side, lr_up, schedule, steps, say)
    if (side.precision == "int8" if cfg.quality is None else cfg.quality) and engine.kind == "onnx":
        from .quality import quality_vs_reference

        say("quality vs the fp32 model (held-out crops)")
        res.quality, note = quality_vs_reference(onnx_path, side, cfg.weights, cfg.threads)
        if note:
            notes.append(note)
    if cfg.quality:
        say("loop quality (held-out crops)")
        res.loop_quality = deployed_loop_quality([onnx_path] * steps, preset, loop_quality_config(cfg, steps), cfg.threads)
    paths = {"table": cfg.table, "predictor": cfg.predictor}
    for name, model in cost_models.items():
        res.estimates[name] = estimate_vs_measured(model, side.choices, steps, m.loop_ms, stats.median_ms, str(paths.get(name) or ""))
    return res


def warm(engine: Engine, lr_up: np.ndarray, cfg: BenchConfig) -> None:
    """cfg.warmup untimed denoiser calls before the measurement."""
    x6 = np.concatenate([lr_up, np.random.default_rng(cfg.seed).standard_normal(lr_up.shape, dtype=np.float32)], 1)
    level = np.full((cfg.batch, 1), 0.5, np.float32)
    for _ in range(cfg.warmup):
        engine.denoiser(x6, level)


def result_of(m: LoopMeasurement, stats: Any, mem: PeakRss, cfg: BenchConfig, steps: int, notes: list[str], **fields: Any) -> BenchResult:
    """The BenchResult of a measured loop (per-step statistics, the loop on its clock, memory); `fields`: the rest."""
    runs = [t for r in (m.cpu_ms if m.clock == "cpu" else m.wall_ms) for t in r]
    if m.cpu_share < 0.9 and m.clock == "cpu":
        notes.append(f"the loop got {m.cpu_share:.0%} of a core (wall {m.wall.value_ms:.1f} ms, load {m.load_after}): "
                     "the machine is oversubscribed; the CPU-time figure is the loop's own cost")
    return BenchResult(
        sampler=cfg.sampler, steps=steps, batch=cfg.batch, seed=cfg.seed,
        step_p10_ms=stats.p10_ms, step_p50_ms=stats.median_ms, step_p90_ms=stats.p90_ms, step_mean_ms=stats.mean_ms,
        step_count=stats.count, loop_ms=m.loop_ms, loop_runs_ms=runs, images_per_s=cfg.batch / (m.loop_ms / 1e3),
        peak_mem_bytes=mem.delta_bytes, peak_rss_bytes=mem.peak_bytes, mem_method=mem.method, notes=notes,
        loop_clock=m.clock, loop_wall_ms=m.wall.value_ms, loop_cpu_ms=m.cpu.value_ms, remeasure_pct=m.remeasure_pct, loop=m.to_dict(), **fields,
    )


def loop_quality_config(cfg: BenchConfig, steps: int) -> "LoopQualityConfig":
    """The loop quality of the loop this bench runs (its sampler, steps, eta, clipping, seed)."""
    from ..train.loop_quality import LoopQualityConfig

    return LoopQualityConfig(seeds=cfg.quality_seeds, crops=cfg.quality_crops, sampler=cfg.sampler, steps=steps, eta=cfg.eta,
                             clip_x0=cfg.clip_x0, seed=cfg.seed)


def psnr_vs_reference(onnx_path: str | Path, cfg: BenchConfig) -> dict[str, Any]:
    """One untimed loop on the target of cfg.device and one run the other way (engines.reference_device),
    same noise: {"psnr_db", "reference", "ok", "note"} (psnr_db None where there is no reference)."""
    onnx_path = Path(onnx_path)
    side, _ = read_deployment(onnx_path, None)
    steps = default_steps(cfg.sampler, side.schedule.T) if cfg.steps is None else cfg.steps
    lr_up, _ = lr_input(cfg.image, side.preset.lr_size, side.preset.hr_size, cfg.batch, cfg.seed)
    with torch_threads(cfg.threads):
        engine = build_engine(onnx_path, side, cfg.target, cfg.weights)
        image = _run_loop(engine, lr_up, side.noise_schedule(), cfg, steps, side.preset).image
    res = BenchResult(model=str(onnx_path), engine=engine.kind, engine_label=engine.label, target=engine.info, precision=side.precision,
                      sampler=cfg.sampler, steps=steps, batch=cfg.batch, seed=cfg.seed, image="", has_sidecar=True, subnet_hash=None,
                      step_p10_ms=0, step_p50_ms=0, step_p90_ms=0, step_mean_ms=0, step_count=0, loop_ms=0, loop_runs_ms=[], images_per_s=0,
                      peak_mem_bytes=0, peak_rss_bytes=0, mem_method="", output=image)
    _compare(res, engine, cfg, onnx_path, side, lr_up, side.noise_schedule(), steps, lambda m: None)
    return {"psnr_db": res.psnr_db, "reference": res.psnr_reference, "ok": res.psnr_ok, "note": "; ".join(res.notes)}


def _compare(res: BenchResult, engine: Engine, cfg: BenchConfig, onnx_path: Path, side, lr_up, schedule, steps: int, say) -> None:
    """PSNR of this engine's image vs the loop run the other way on this CPU (engines.reference_device)."""
    other = reference_device(engine)
    try:
        ref = build_engine(onnx_path, side, TargetSpec(device=other, threads=cfg.threads, batch=cfg.batch), cfg.weights)
    except RcaiError as e:
        res.notes.append(f"no PSNR check: {e}")
        return
    say(f"reference loop ({ref.label})")
    with torch_threads(cfg.threads):
        ref_image = _run_loop(ref, lr_up, schedule, cfg, steps, side.preset).image
    record_psnr(res, ref_image, ref.label, side.precision)


def record_psnr(res: BenchResult, ref_image: np.ndarray, label: str, precision: str) -> None:
    """res's image vs the reference loop's: the PSNR, and for an fp32 model whether it reaches PSNR_MIN_FP32."""
    res.psnr_db = psnr(res.output, ref_image)
    res.psnr_reference = label
    if precision == "fp32":
        res.psnr_ok = bool(res.psnr_db >= PSNR_MIN_FP32)
        if not res.psnr_ok:
            res.notes.append(f"PSNR vs {label} is {res.psnr_db:.1f} dB < {PSNR_MIN_FP32:.0f} dB")
