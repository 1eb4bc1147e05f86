"""Targets: registry, device map, real ONNX Runtime / torch runs, measurement loop, remote worker."""
from __future__ import annotations

import importlib.util
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from rcai.errors import RcaiError
from rcai.targets import (
    MeasureConfig, Prepared, TargetInfo, TimingStats, get_target, interleaved_rounds, list_targets,
    TargetSpec, measure_call_overhead, measure_loop, prepare_probe, resolve_device, specs_from_onnx,
)
from rcai.targets.measure import repeatability
from rcai.targets.onnxruntime import OnnxRuntimeTarget
from rcai.targets.remote import RemoteTarget

SHAPE = (2, 3, 16, 16)
SPECS = {"x": (SHAPE, "float32")}
FAST = MeasureConfig(warmup=2, min_repeats=10, max_repeats=60, chunk=10, input_pool=3, max_seconds=5.0)


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


def export(model: nn.Module, path, dynamic_batch: bool) -> None:
    axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (torch.randn(*SHAPE),), str(path), input_names=["x"], output_names=["y"],
                          opset_version=17, dynamic_axes=axes, dynamo=False)


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture(scope="module")
def onnx_files(net, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    export(net, d / "dyn.onnx", dynamic_batch=True)
    export(net, d / "static.onnx", dynamic_batch=False)
    return d / "dyn.onnx", d / "static.onnx"


@pytest.fixture(params=["onnxruntime", "torch"])
def prepared(request, net, onnx_files) -> Prepared:
    """Every locally runnable target, prepared on the same tiny network."""
    target = get_target(request.param, threads=1)
    return target.prepare(net if request.param == "torch" else onnx_files[0], SPECS)


# --- registry and device map ---------------------------------------------------------------

def test_registry_lists_every_target():
    assert {"onnxruntime", "torch", "tensorrt", "remote"} <= set(list_targets())


def test_unknown_target_and_setting_are_user_errors():
    with pytest.raises(RcaiError, match="known: .*onnxruntime"):
        get_target("tflite")
    with pytest.raises(RcaiError, match="unknown setting.*bogus"):
        get_target("onnxruntime", bogus=1)


def test_resolve_device_cpu_is_onnxruntime_with_settings():
    target = resolve_device(TargetSpec(device="cpu", threads=1))
    assert isinstance(target, OnnxRuntimeTarget) and target.info().threads == 1


def test_unknown_device_lists_known_ones():
    with pytest.raises(RcaiError, match="cpu, gpu, jetson, torch"):
        resolve_device(TargetSpec(device="tpu"))


def test_jetson_needs_a_host_and_maps_to_remote_tensorrt(monkeypatch):
    monkeypatch.delenv("RCAI_JETSON_HOST", raising=False)
    with pytest.raises(RcaiError, match="RCAI_JETSON_HOST"):
        resolve_device(TargetSpec(device="jetson"))
    monkeypatch.setenv("RCAI_JETSON_HOST", "orin.local")
    target = resolve_device(TargetSpec(device="jetson"), user="nvidia", fp16=True)  # constructing does not connect
    assert isinstance(target, RemoteTarget)
    assert target.inner == "tensorrt" and target.inner_settings == {"fp16": True}
    assert target.transport.describe() == "nvidia@orin.local"


# --- running -------------------------------------------------------------------------------

def test_onnxruntime_output_equals_torch(net, onnx_files):
    x = np.random.default_rng(1).standard_normal(SHAPE, dtype=np.float32)
    expected = net(torch.from_numpy(x)).detach().numpy()
    for level in ("all", "disable"):
        p = get_target("onnxruntime", threads=1, graph_optimization_level=level).prepare(onnx_files[0], SPECS)
        out = p.run({"x": x})
        assert len(out) == 1 and np.allclose(out[0], expected, atol=1e-5)
        again = p.run({"x": -x})  # buffers are reused inside; returned arrays must not be
        assert np.allclose(out[0], expected, atol=1e-5) and not np.allclose(again[0], out[0])
    out = get_target("torch", threads=1).prepare(net, SPECS).run({"x": x})
    assert np.allclose(out[0], expected, atol=1e-6)


def test_bad_inputs_are_user_errors(net, onnx_files):
    p = get_target("onnxruntime", threads=1).prepare(onnx_files[0], SPECS)
    with pytest.raises(RcaiError, match="shape"):
        p.run({"x": np.ones((1, 3, 16, 16), np.float32)})
    with pytest.raises(RcaiError, match="do not match"):
        p.run({"y": np.ones(SHAPE, np.float32)})
    with pytest.raises(RcaiError, match="not an ONNX file"):
        get_target("torch").prepare(onnx_files[0], SPECS)
    with pytest.raises(RcaiError, match="file not found"):
        get_target("onnxruntime").prepare(onnx_files[0].parent / "missing.onnx", SPECS)
    with pytest.raises(RcaiError, match="graph_optimization_level"):
        get_target("onnxruntime", graph_optimization_level="max")


def test_input_specs_from_onnx(onnx_files):
    dyn, static = onnx_files
    assert {k: (s, d.name) for k, (s, d) in specs_from_onnx(static).items()} == {"x": (SHAPE, "float32")}
    with pytest.raises(RcaiError, match="dynamic dimension"):
        specs_from_onnx(dyn)
    assert get_target("onnxruntime", threads=1).prepare(static).input_specs == specs_from_onnx(static)


def test_measure_gives_sane_stats(prepared):
    s = prepared.measure(FAST)
    assert FAST.min_repeats <= s.count <= FAST.max_repeats
    assert 0 < s.p10_ms <= s.median_ms <= s.p90_ms and s.mean_ms > 0 and s.cv >= 0
    assert TimingStats.from_dict(s.to_dict()) == s


def test_measure_cycles_a_pool_of_nonzero_distinct_inputs(prepared):
    seen = []
    stage = prepared.stage

    def spy(feeds):
        seen.append({k: v.copy() for k, v in feeds.items()})
        return stage(feeds)

    prepared.stage = spy  # the pool is staged once, before any timed call
    prepared.measure(FAST, seed=3)
    assert len(seen) == FAST.input_pool
    assert all(np.any(f["x"] != 0) and f["x"].dtype == np.float32 for f in seen)
    assert not np.array_equal(seen[0]["x"], seen[1]["x"])


def test_threads_setting_is_honoured(net, onnx_files):
    p = get_target("onnxruntime", threads=1).prepare(onnx_files[0], SPECS)
    info = p.info()
    assert isinstance(info, TargetInfo) and info.threads == 1 and info.precision == "fp32"
    assert info.backend == "onnxruntime" and info.device == "cpu" and info.device_model
    before = torch.get_num_threads()
    tp = get_target("torch", threads=1).prepare(net, SPECS)
    assert tp.info().threads == 1 and tp.info().backend == "torch"
    tp.measure(FAST)
    assert torch.get_num_threads() == before  # restored after measuring


# --- remote (local transport: the real worker in a subprocess) ------------------------------

def test_remote_local_transport_runs_the_worker(onnx_files, tmp_path):
    remote = get_target("remote", transport="local", remote_dir=str(tmp_path / "host"),
                        target="onnxruntime", target_settings={"threads": 1})
    p = remote.prepare(onnx_files[0], SPECS)
    s = p.measure(FAST)
    assert FAST.min_repeats <= s.count <= FAST.max_repeats and s.p10_ms <= s.median_ms <= s.p90_ms
    info = p.info()
    assert info.backend == "onnxruntime" and info.threads == 1 and remote.info().threads == 1
    x = np.random.default_rng(2).standard_normal(SHAPE, dtype=np.float32)
    local = get_target("onnxruntime", threads=1).prepare(onnx_files[0], SPECS).run({"x": x})
    assert np.allclose(p.run({"x": x})[0], local[0])
    many = remote.measure_many([(onnx_files[0], SPECS), (onnx_files[1], None)], FAST)
    assert len(many) == 2 and all(m.count >= FAST.min_repeats for m in many)
    left = sorted(f.name.split("-")[0] for f in (tmp_path / "host").iterdir())
    assert left == ["model", "model"]  # requests, feeds and outputs cleaned up; models kept


def test_remote_worker_errors_come_back_as_one_line(onnx_files, tmp_path):
    remote = get_target("remote", transport="local", remote_dir=str(tmp_path),
                        target="onnxruntime", target_settings={"bogus": 1})
    with pytest.raises(RcaiError, match=r"local:.*unknown setting.*bogus"):
        remote.prepare(onnx_files[0], SPECS).measure(FAST)
    with pytest.raises(RcaiError, match="unknown target"):
        get_target("remote", transport="local", target="tflite")


# --- TensorRT ------------------------------------------------------------------------------

@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_missing_is_a_one_line_error():
    with pytest.raises(RcaiError) as e:
        get_target("tensorrt", fp16=True)
    assert str(e.value) == "TensorRT is not installed: pip install 'rcai[tensorrt]' on a machine with an NVIDIA GPU"


# --- measurement loop ----------------------------------------------------------------------

def const_timer(ms):
    return lambda fn, arg: (fn(arg), ms)[1]


def test_loop_stops_when_the_median_settles_or_at_the_caps():
    cfg = MeasureConfig(warmup=0, min_repeats=15, max_repeats=100, chunk=10, rel_tol=0.01)
    calls = []
    s = measure_loop(calls.append, ["a", "b", "c"], cfg, timer=const_timer(2.0))
    assert s.count == 20 and s.median_ms == 2.0 and s.cv == 0.0  # settled after the 2nd chunk
    assert calls[:4] == ["a", "b", "c", "a"]  # inputs cycled
    values = iter(float(v) for v in range(1, 1000))  # ever-growing: never settles
    s = measure_loop(lambda _: None, [0], cfg, timer=lambda fn, a: next(values))
    assert s.count == 100
    s = measure_loop(lambda _: None, [0], MeasureConfig(warmup=1, max_seconds=2.5), timer=const_timer(1000.0))
    assert s.count == 3  # time cap after 3 s of timed calls (warm-up not counted)


def test_measure_config_round_trip_and_validation():
    cfg = MeasureConfig(warmup=1, rel_tol=0.05)
    assert MeasureConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(RcaiError, match="min_repeats"):
        MeasureConfig(min_repeats=50, max_repeats=10)
    with pytest.raises(RcaiError, match="unknown MeasureConfig"):
        MeasureConfig.from_dict({"repeats": 3})


def test_repeatability_definition():
    assert repeatability([1.0, 1.0, 2.0, 2.0]) == pytest.approx(1.0 / 1.5)
    assert repeatability([1.0, 5.0, 2.0]) == pytest.approx(1.0 / 2.0)  # middle round left out
    assert math.isnan(repeatability([1.0]))


def test_interleaved_rounds_returns_every_candidate(prepared):
    order = []
    fns = {"prepared": prepared, "sleepless": lambda: order.append("s"), "self_timed": lambda: 0.5}
    res = interleaved_rounds(fns, rounds=3, per_round=MeasureConfig(warmup=0, min_repeats=5, max_repeats=10, chunk=5))
    assert set(res) == set(fns)
    for r in res.values():
        assert len(r["per_round_medians"]) == 3 and r["median_ms"] > 0 and r["repeatability"] >= 0
    assert res["self_timed"]["median_ms"] == 0.5 and res["self_timed"]["repeatability"] == 0.0


# --- call overhead -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["onnxruntime", "torch"])
def test_overhead_model_measures_the_call_overhead(name, tmp_path):
    target = get_target(name, threads=1)
    p = prepare_probe(target, tmp_path, {"x": ((1, 4), "float32")})
    x = np.arange(1, 5, dtype=np.float32).reshape(1, 4)
    assert np.array_equal(p.run({"x": x})[0], 2 * x)
    s = measure_call_overhead(target, FAST)
    assert s.count >= FAST.min_repeats and s.median_ms > 0


# --- one way to prepare a torch module on any target ---------------------------------------

def test_prepare_module_gives_the_same_outputs_on_onnx_and_torch_targets(tmp_path):
    torch.manual_seed(0)
    net, x = TinyNet().eval(), torch.randn(*SHAPE)
    with torch.no_grad():
        want = net(x).numpy()
    path = tmp_path / "net.onnx"
    for name in ("onnxruntime", "torch"):
        p = get_target(name, threads=1).prepare_module(net, [x], ["x"], path)
        assert np.allclose(p.run({"x": x.numpy()})[0], want, atol=1e-5), name
    assert path.is_file()  # the ONNX target's export; the torch target ran the module itself


def test_prepare_module_reuses_an_export_only_when_asked(tmp_path):
    torch.manual_seed(0)
    path, x = tmp_path / "net.onnx", torch.randn(*SHAPE)
    target = get_target("onnxruntime", threads=1)
    target.prepare_module(TinyNet().eval(), [x], ["x"], path)
    first = target.prepare_module(TinyNet().eval(), [x], ["x"], path, reuse=True).run({"x": x.numpy()})[0]
    fresh = target.prepare_module(TinyNet().eval(), [x], ["x"], path).run({"x": x.numpy()})[0]
    assert not np.allclose(first, fresh)  # reused: the first net's weights; not reused: the third's


def test_capabilities_not_names_decide_clock_precision_and_locality():
    from rcai.targets.measure import resolve_clock

    ort1, ort2, torch1 = get_target("onnxruntime", threads=1), get_target("onnxruntime", threads=2), get_target("torch", threads=1)
    assert ort1.computes_on_calling_thread() and torch1.computes_on_calling_thread() and not ort2.computes_on_calling_thread()
    assert resolve_clock("auto", ort1) == "thread_cpu" and resolve_clock("auto", torch1) == "thread_cpu" and resolve_clock("auto", ort2) == "wall"
    with pytest.raises(RcaiError, match="one thread"):
        resolve_clock("thread_cpu", ort2)
    assert ort1.int8 and not torch1.int8 and ort1.local and torch1.local
    from rcai.targets.remote import RemoteTarget

    assert not RemoteTarget.local and not RemoteTarget.int8
