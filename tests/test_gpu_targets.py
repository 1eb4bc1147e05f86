"""GPU targets: torch-cuda (eager and CUDA-graph replay, fp32/fp16/bf16, CUDA-event timing), the
`--device gpu` choice, TensorRT. The GPU tests run where a CUDA GPU is and skip with the reason
elsewhere; the device-independent parts (choice of backend, errors, the profiler's torch-module
path) run everywhere."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from rcai.errors import RcaiError
from rcai.targets import MeasureConfig, TargetSpec, get_target, resolve_device
from rcai.targets.registry import DEVICES

HAS_CUDA = torch.cuda.is_available()
HAS_TRT = importlib.util.find_spec("tensorrt") is not None
needs_gpu = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU on this machine (torch.cuda.is_available() is False)")
needs_trt = pytest.mark.skipif(not (HAS_CUDA and HAS_TRT), reason="TensorRT not installed (not installable on this "
                               "project's GPU machine: no package registry there); the tensorrt target stays unverified")
FAST = MeasureConfig(warmup=2, min_repeats=5, max_repeats=20, chunk=5, max_seconds=1.0)


class Net(torch.nn.Module):
    """A small denoiser-shaped net: (x6, noise_level) -> eps."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(6, 16, 3, padding=1)
        self.b = torch.nn.Conv2d(16, 3, 3, padding=1)
        self.emb = torch.nn.Linear(1, 16)

    def forward(self, x6, level):
        h = torch.nn.functional.silu(self.a(x6) + self.emb(level)[:, :, None, None])
        return self.b(h)


SPECS = {"x6": ((1, 6, 16, 16), "float32"), "noise_level": ((1, 1), "float32")}


def _feeds(seed):
    rng = np.random.default_rng(seed)
    return {"x6": rng.standard_normal((1, 6, 16, 16), dtype=np.float32), "noise_level": rng.random((1, 1), dtype=np.float32)}


# --- everywhere -------------------------------------------------------------------------------

@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here: --device gpu picks it")
def test_device_gpu_without_tensorrt_is_torch_cuda_with_graphs():
    assert DEVICES["gpu"]({}, None) == ("torch-cuda", {"graphs": True})
    assert DEVICES["gpu"]({"precision": "fp16"}, None) == ("torch-cuda", {"graphs": True, "precision": "fp16"})
    name, settings = DEVICES["gpu"]({}, "pi@10.0.0.5")  # on a host: it gets ONNX files, so TensorRT there
    assert name == "remote" and settings["target"] == "tensorrt"


@pytest.mark.skipif(HAS_CUDA, reason="a GPU is present")
def test_torch_cuda_without_a_gpu_is_a_one_line_error():
    with pytest.raises(RcaiError, match="no CUDA GPU here"):
        get_target("torch-cuda")
    with pytest.raises(RcaiError, match="no CUDA GPU here"):
        resolve_device(TargetSpec(device="gpu")) if not HAS_TRT else get_target("torch-cuda")


def test_torch_cuda_bad_settings_fail_before_touching_a_gpu():
    with pytest.raises(RcaiError, match="unknown precision 'int4'"):
        get_target("torch-cuda", precision="int4")
    with pytest.raises(RcaiError, match="only ONNX targets"):
        get_target("remote", transport="local", target="torch-cuda")


def test_profiler_hands_torch_targets_the_module(micro, tmp_path):
    """The op profiler's path for targets that take an nn.Module (torch, torch-cuda), on the CPU."""
    from rcai.cost.profile import measure_overhead, profile_op
    from rcai.space.space import SearchSpace

    target = get_target("torch", threads=1)
    spec = SearchSpace.of(micro).all_specs()[0]
    row = profile_op(spec, target, 1, FAST, tmp_path)
    assert row["key"] == spec.key and row["count"] >= FAST.min_repeats and row["median_ms"] > 0
    assert measure_overhead(target, FAST) > 0
    assert not list(tmp_path.glob("*.onnx"))  # nothing exported for a torch target


def test_profile_torch_device_table_and_archs(tmp_path):
    """`rcai profile --device torch`: ops and whole subnets through the module path, on the CPU."""
    from rcai.cost.archs import ArchDatasetConfig, profile_archs
    from rcai.cost.profile import ProfileConfig, profile_ops

    cfg = ProfileConfig(preset="micro", target=TargetSpec(device="torch", threads=1), measure=FAST)
    table = profile_ops(cfg, tmp_path / "torch-micro.csv", progress=False)
    assert table.meta["backend"] == "torch" and table.meta["threads"] == 1 and len(table.rows) > 0
    ds = profile_archs(cfg, ArchDatasetConfig(archs=2, rounds=1), tmp_path / "archs", progress=False)
    import csv

    rows = list(csv.DictReader((ds / "dataset.csv" if ds.is_dir() else ds).open()))
    assert len(rows) == 2 and all(float(r["latency_ms"]) > 0 for r in rows)
    with pytest.raises(RcaiError, match="--device torch runs torch modules on this machine"):
        resolve_device(TargetSpec(device="torch", host="pi@10.0.0.5"))


@pytest.mark.skipif(HAS_CUDA, reason="a GPU is present")
def test_bench_on_torch_cuda_without_a_gpu_is_one_line(tmp_path):
    from rcai.deploy.bench import BenchConfig, bench_loop
    from rcai.deploy.export import export_subnet_onnx
    from rcai.presets import get_preset
    from rcai.space.space import SearchSpace
    from rcai.space.subnet import SubnetSpec

    micro = get_preset("micro")
    model = SubnetSpec(micro, SearchSpace.of(micro).base_arch()).build()
    path = tmp_path / "m.onnx"
    torch.save(model.state_dict(), tmp_path / "m.pt")
    export_subnet_onnx(SubnetSpec(micro, SearchSpace.of(micro).base_arch()), model.state_dict(), path, weights_path=tmp_path / "m.pt", verify=False)
    with pytest.raises(RcaiError, match="no CUDA GPU here"):
        bench_loop(path, BenchConfig(device="torch-cuda", sampler="ddim", steps=2, loops=1, psnr=False))


def test_a_setting_the_target_does_not_take_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """`rcai profile check --device gpu` stopped on the CLI's threads default ("unknown setting
    threads"): the check's threads default is now 1 only where the target has threads, and a given
    --threads on a target without them is one line, exit 2, before anything is profiled."""
    from helpers import run_cli

    from rcai.cost.check import FidelityConfig
    from rcai.targets.spec import TargetSpec

    assert FidelityConfig(target=TargetSpec(device="torch-cuda")).target.threads is None  # no GPU needed to parse it
    assert FidelityConfig(target=TargetSpec(device="cpu")).target.threads == 1 and FidelityConfig(target=TargetSpec(device="torch")).target.threads == 1
    assert not TargetSpec(device="torch").takes_onnx and TargetSpec(device="cpu").takes_onnx
    with pytest.raises(RcaiError, match=r"--device torch-cuda \(torch-cuda\) takes no --threads"):
        FidelityConfig(target=TargetSpec(device="torch-cuda", threads=1))
    with pytest.raises(RcaiError, match="takes no --precision"):
        TargetSpec(device="cpu", precision="bf16")
    code, _, err = run_cli(monkeypatch, capsys, "profile", "check", "--device", "torch-cuda", "--threads", "2", "--preset", "micro",
                           "--out", str(tmp_path / "chk"))
    assert code == 2 and "takes no --threads" in err and "Traceback" not in err and not (tmp_path / "chk").exists()


def test_profile_check_and_calibration_on_the_torch_target(tmp_path):
    """`rcai profile check --device torch` ended with "the torch target takes an nn.Module, not an
    ONNX file" (the loops were handed ONNX paths) and `--calibrate` was dropped for torch targets:
    the table is now calibrated on whole torch loops and checked against them."""
    from rcai.cost.check import FidelityConfig, fidelity_check

    cfg = FidelityConfig(preset="micro", target=TargetSpec(device="torch"), subnets=2, calibrate=2, rounds=2, steps=2)
    res = fidelity_check(cfg, "auto", tmp_path, progress=False)
    assert res["calibration"] and res["sampler_ms_per_step"]["ddim"] > 0
    assert res["loops"] == 4 and res["table"]["n"] == 4 and np.isfinite(res["table"]["median_abs_err"])
    assert "same_rounds" in res and res["base_twice"]["first_ms"] > 0
    assert not list(tmp_path.rglob("*.onnx"))  # torch targets get modules, never files


def _random_unet(preset):
    from rcai.space.space import SearchSpace
    from rcai.space.subnet import SubnetSpec

    torch.manual_seed(0)
    net = SubnetSpec(preset, SearchSpace.of(preset).base_arch()).build().eval()
    with torch.no_grad():  # a trained-looking net: the zero-initialised head would make every output 0
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def _unet_call(micro):
    """The real micro UNet (perturbed weights), its input specs, one random call and its fp32 output on the torch target."""
    net = _random_unet(micro)
    h = micro.hr_size
    specs = {"x": ((1, 6, h, h), "float32"), "noise_level": ((1, 1), "float32")}
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((1, 6, h, h), dtype=np.float32), "noise_level": np.full((1, 1), 0.7, np.float32)}
    return net, specs, feeds, get_target("torch", threads=1).prepare(net, specs).run(feeds)[0]


@pytest.mark.parametrize("precision,tol", [("bf16", 0.1), ("fp16", 0.02)])
def test_half_precisions_run_the_real_unet_on_the_torch_target(micro, precision, tol):
    """fp16/bf16 failed on the real UNet ("mat1 and mat2 must have the same dtype"): its noise
    embedding made float32 sinusoids. Now it runs, on this CPU, and stays near fp32."""
    net, specs, feeds, ref = _unet_call(micro)
    prepared = get_target("torch", threads=1, precision=precision).prepare(net, specs)
    out = prepared.run(feeds)[0]
    assert prepared.info().precision == precision and out.dtype == np.float32
    assert np.abs(ref).max() > 0.1 and np.abs(out - ref).max() / np.abs(ref).max() < tol
    assert next(net.parameters()).dtype == torch.float32  # the caller's module is left as it was


def test_deepspeed_absent_leaves_torch_counts_with_a_note():
    """The FLOPs cross-check imported deepspeed unconditionally: where it is missing (the GPU
    machine) nothing could be profiled. Now a note, and torch's count fills the column."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['deepspeed'] = None\n"
            "from rcai.cost.flops import op_count_columns\nfrom rcai.presets import get_preset\nfrom rcai.space.space import SearchSpace\n"
            "spec = SearchSpace.of(get_preset('micro')).all_specs()[0]\nc = op_count_columns(spec, 1)\n"
            "print(c['flops'] == c['flops_torch'], c['flops_mismatch'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "-1"] and "deepspeed is not importable" in done.stderr


def test_the_launch_bound_cost_model_runs_on_the_torch_target(tmp_path):
    """The GPU cost model's code path on this CPU (--device torch, micro): kernels per op counted
    (aten ops at the dispatcher here; CUDA kernels in the profiler trace on a GPU), the table fitted
    launch-bound to whole loops and used by every estimate; `auto` picks it on CUDA targets only."""
    from rcai.cost.check import FidelityConfig, fidelity_check
    from rcai.cost.model import TableCostModel
    from rcai.cost.profile import ProfileConfig, cost_model_of
    from rcai.cost.table import CostTable
    from rcai.presets import get_preset

    cfg = FidelityConfig(preset="micro", target=TargetSpec(device="torch"), subnets=2, calibrate=3, rounds=2, steps=2, cost_model="launch")
    res = fidelity_check(cfg, "auto", tmp_path, progress=False)
    assert res["cost_model"] == "launch" and res["calibration"]["kernel_ms"] >= 0 and "same_rounds_kinds" in res
    table = CostTable.load(tmp_path / "table.csv")
    assert table.meta["kernel_counter"] == "aten-dispatch" and min(table.meta["kernels"].values()) >= 0
    model = TableCostModel(get_preset("micro"), table)
    arch = model.space.base_arch()
    cal = table.calibration
    by_hand = cal.overhead_ms + model.sampler_ms + sum(cal.scale * table.latency(s) + cal.kernel_ms * table.meta["kernels"][s.key]
                                                        for s in model.space.arch_specs(arch))
    assert model.estimate(arch).latency_ms == pytest.approx(by_hand)
    assert cost_model_of(ProfileConfig(preset="micro", target=TargetSpec(device="torch")), get_target("torch")) == "kinds"


# --- on a GPU ---------------------------------------------------------------------------------

@needs_gpu
@pytest.mark.parametrize("graphs", [False, True])
@pytest.mark.parametrize("precision,atol", [("fp32", 1e-4), ("fp16", 2e-2), ("bf16", 1e-1)])
def test_torch_cuda_matches_cpu(graphs, precision, atol):
    torch.manual_seed(0)
    net = Net().eval()
    p = get_target("torch-cuda", graphs=graphs, precision=precision).prepare(net, SPECS)
    assert next(net.parameters()).device.type == "cpu"  # the caller's module stays put
    outs = []
    for seed in (1, 2):  # a second call with other inputs: the static buffers are really refilled
        f = _feeds(seed)
        with torch.no_grad():
            ref = net(torch.from_numpy(f["x6"]), torch.from_numpy(f["noise_level"])).numpy()
        out = p.run(f)[0]
        assert out.dtype == np.float32 and np.allclose(out, ref, atol=atol), np.abs(out - ref).max()
        outs.append(out)
    assert not np.allclose(outs[0], outs[1])
    assert (p.graph is not None) == graphs
    info = p.info()
    assert info.device.startswith("cuda") and info.precision == precision
    assert info.backend == ("torch-cuda-graphs" if graphs else "torch-cuda-eager")


@needs_gpu
def test_torch_cuda_measures_with_events():
    p = get_target("torch-cuda", graphs=True).prepare(Net().eval(), SPECS)
    s = p.measure(FAST)
    assert FAST.min_repeats <= s.count <= FAST.max_repeats and 0 < s.p10_ms <= s.median_ms <= s.p90_ms < 1000


@needs_gpu
def test_cuda_graph_replays_one_graph_for_the_whole_loop(micro):
    from rcai.deploy.runtime import PreparedDenoiser
    from rcai.diffusion import TorchDenoiser, sample
    from rcai.train.setup import schedule_of
    from rcai.space.space import SearchSpace
    from rcai.space.subnet import SubnetSpec

    torch.manual_seed(0)
    model = SubnetSpec(micro, SearchSpace.of(micro).base_arch()).build().eval()
    lr_up = np.random.default_rng(0).uniform(-1, 1, (1, 3, micro.hr_size, micro.hr_size)).astype(np.float32)
    schedule = schedule_of(micro)
    h = micro.hr_size
    prepared = resolve_device(TargetSpec(device="torch-cuda")).prepare(model, {"x": ((1, 6, h, h), "float32"), "noise_level": ((1, 1), "float32")})
    den, calls = PreparedDenoiser(prepared), []
    captured = prepared.graph
    a = sample(lambda x6, level: calls.append(1) or den(x6, level), lr_up, schedule, sampler="ddim", steps=10, seed=0).image
    b = sample(TorchDenoiser(model, "cuda"), lr_up, schedule, sampler="ddim", steps=10, seed=0).image
    assert len(calls) == 10 and prepared.graph is captured  # captured once, replayed every step
    assert np.abs(a - b).max() < 1e-3


@needs_gpu
@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here: --device gpu picks it")
def test_profile_micro_on_gpu_records_the_backend(tmp_path):
    from rcai.cost.profile import ProfileConfig, profile_ops

    table = profile_ops(ProfileConfig(preset="micro", target=TargetSpec(device="gpu"), measure=FAST), tmp_path / "gpu.csv", progress=False)
    assert table.meta["backend"] == "torch-cuda-graphs" and table.meta["target_settings"]["graphs"] is True
    assert len(table.rows) > 0 and all(r["median_ms"] > 0 for r in table.rows.values())


@needs_trt
def test_tensorrt_runs_an_onnx_file_like_onnxruntime(tmp_path):
    path = tmp_path / "net.onnx"
    torch.onnx.export(Net().eval(), tuple(torch.from_numpy(v) for v in _feeds(0).values()), str(path),
                      input_names=list(SPECS), dynamo=False)
    f = _feeds(3)
    ref = get_target("onnxruntime", threads=1).prepare(path).run(f)[0]
    out = get_target("tensorrt").prepare(path).run(f)[0]
    assert np.allclose(out, ref, atol=1e-3)


@needs_gpu
def test_bench_whole_loop_on_one_cuda_graph(tmp_path):
    from rcai.deploy.bench import BenchConfig, bench_loop
    from rcai.deploy.export import export_subnet_onnx
    from rcai.presets import get_preset
    from rcai.space.space import SearchSpace
    from rcai.space.subnet import SubnetSpec

    micro = get_preset("micro")
    spec = SubnetSpec(micro, SearchSpace.of(micro).base_arch())
    model = spec.build()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    export_subnet_onnx(spec, model.state_dict(), tmp_path / "m.onnx", weights_path=tmp_path / "m.pt", verify=False)
    res = bench_loop(tmp_path / "m.onnx", BenchConfig(device="torch-cuda", sampler="ddim", steps=10, loops=2, psnr=True))
    assert res.step_count >= 10 and res.target["backend"] == "torch-cuda-graphs"
    assert any("loop device" in n for n in res.notes)  # the sampler on the GPU: steps timed as the network's calls alone
    assert res.psnr_db is not None and res.psnr_db > 40  # vs the ONNX Runtime loop on the CPU, same noise


@needs_gpu
def test_the_loop_on_the_gpu_and_as_one_graph_equal_the_host_loop(micro):
    """The sampler on the GPU (per-step graph replays) and the whole loop as one CUDA graph give the
    host loop's image (deterministic DDIM, same network, same y_T)."""
    from rcai.cost.loops import make_loop, prepared_denoiser
    from rcai.diffusion import NoiseSchedule

    net = _random_unet(micro)
    h = micro.hr_size
    prepared = get_target("torch-cuda").prepare(net, {"x": ((1, 6, h, h), "float32"), "noise_level": ((1, 1), "float32")})
    lr = np.random.default_rng(1).uniform(-1, 1, (1, 3, h, h)).astype(np.float32)
    args = (lr, NoiseSchedule(micro.schedule), "ddim", 8, 3, 0.0, True, micro.residual, micro.prediction)
    host = make_loop("host", prepared, prepared_denoiser(prepared), *args)().image
    device = make_loop("device", prepared, None, *args)().image
    graph = make_loop("graph", prepared, None, *args)
    a, b = graph().image, graph().image
    assert np.abs(host).max() > 0.1
    assert np.abs(device - host).max() < 1e-3 and np.abs(a - host).max() < 1e-3 and np.array_equal(a, b)


@needs_gpu
@pytest.mark.parametrize("precision,tol", [("fp16", 0.02), ("bf16", 0.1)])
def test_half_precisions_run_the_real_unet_on_cuda(micro, precision, tol):
    net, specs, feeds, ref = _unet_call(micro)
    out = get_target("torch-cuda", precision=precision).prepare(net, specs).run(feeds)[0]
    assert np.abs(out - ref).max() / np.abs(ref).max() < tol


@needs_gpu
def test_cuda_kernels_are_counted_from_the_profiler_trace(micro):
    from rcai.cost.kernels import op_kernels
    from rcai.space.space import SearchSpace

    specs = [s for s in SearchSpace.of(micro).all_specs() if s.op in ("conv3x3", "skip")]
    kernels, counter = op_kernels(specs, 1, "cuda")
    assert counter == "cuda-profiler"
    assert all(kernels[s.key] >= 1 for s in specs if s.op == "conv3x3")


@needs_gpu
@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here: --device gpu picks it")
def test_profile_check_on_the_gpu_fits_the_launch_bound_model(tmp_path):
    from rcai.cost.check import FidelityConfig, fidelity_check

    res = fidelity_check(FidelityConfig(preset="micro", target=TargetSpec(device="gpu"), subnets=2, calibrate=2, rounds=2, steps=3), "auto", tmp_path)
    assert res["cost_model"] == "launch" and res["calibration"]["kernel_ms"] >= 0 and res["loops"] == 4
    assert np.isfinite(res["table"]["median_abs_err"]) and "same_rounds_kinds" in res

