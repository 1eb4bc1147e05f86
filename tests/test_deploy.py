"""rcai export / rcai bench: export round-trip and tolerance, sidecar round-trip, ONNX vs torch loop
equivalence, bench result fields and estimates, one-line errors. Real exports and ORT sessions on
the micro preset with short loops."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from rcai.deploy import (
    BenchConfig,
    DeployedModel,
    DeploySidecar,
    bench_loop,
    export_subnet_onnx,
    lr_input,
    sidecar_path,
)
from rcai.diffusion import TorchDenoiser, sample
from rcai.errors import RcaiError
from rcai.metrics import psnr
from rcai.space.space import SearchSpace
from rcai.space.subnet import SubnetSpec
from rcai.targets import resolve_device
from rcai.targets.registry import DEVICES
from rcai.train.setup import schedule_of

FAST = dict(sampler="ddim", steps=5, threads=1, image="random", loops=1, rounds=2, warmup=1)


@pytest.fixture(scope="module")
def spec(micro):
    space = SearchSpace(micro)
    cheap = space.pick(lambda s: "dwsep3x3" if "dwsep3x3" in s.choices else ("gnconv" if "gnconv" in s.choices else next(iter(s.choices))))
    return SubnetSpec(micro, cheap)


@pytest.fixture(scope="module")
def trained(spec, tmp_path_factory):
    """A subnet with non-default weights saved like a search run (subnet.json + subnet.pt)."""
    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(123)
    model = spec.build()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    spec.save(run / "subnet.json")
    torch.save(model.state_dict(), run / "subnet.pt")
    return run, model.eval()


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    run, model = trained
    out = tmp_path_factory.mktemp("dep") / "subnet.onnx"
    state = torch.load(run / "subnet.pt", weights_only=True)
    rep = export_subnet_onnx(SubnetSpec.load(run / "subnet.json"), state, out, weights_path=run / "subnet.pt")
    return out, rep, model


def test_export_round_trip_and_tolerance(exported, micro):
    out, rep, model = exported
    m = onnx.load(str(out))
    onnx.checker.check_model(m, full_check=True)
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in m.graph.input] == ["x", "noise_level"] and [o.name for o in m.graph.output] == ["eps"]
    assert not m.graph.input[0].type.tensor_type.shape.dim[0].HasField("dim_value")  # dynamic batch
    assert rep.max_abs_diff is not None and rep.max_abs_diff <= 1e-4 and rep.precision == "fp32"
    # a batch of 3 (exported with 1, verified with 2) through a plain session matches torch
    x = torch.randn(3, 6, micro.hr_size, micro.hr_size, generator=torch.Generator().manual_seed(5))
    lvl = torch.rand(3, 1, generator=torch.Generator().manual_seed(6))
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy(), "noise_level": lvl.numpy()})[0]
    with torch.no_grad():
        want = model(x, lvl).numpy()
    assert np.abs(got - want).max() <= 1e-4


def test_export_fp16_keeps_fp32_io(spec, tmp_path):
    with pytest.warns(UserWarning, match="random init"):
        rep = export_subnet_onnx(spec, None, tmp_path / "h.onnx", fp16=True)
    assert rep.precision == "fp16" and "convert_float_to_float16" in rep.fp16_converter
    assert rep.max_abs_diff <= 1e-4 and 0 < rep.fp16_max_abs_diff < 0.1
    m = onnx.load(str(tmp_path / "h.onnx"))
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in list(m.graph.input) + list(m.graph.output))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)
    assert DeploySidecar.for_onnx(tmp_path / "h.onnx").precision == "fp16"
    res = bench_loop(tmp_path / "h.onnx", BenchConfig(**FAST))
    assert res.precision == "fp16" and res.psnr_ok is None and res.psnr_db > 30  # reported, not gated


def test_sidecar_round_trip_and_tamper(exported, spec):
    out, rep, _ = exported
    path = sidecar_path(out)
    assert path.name == "subnet.onnx.json"
    raw = json.loads(path.read_text())
    side = DeploySidecar.load(path)
    assert json.loads(json.dumps(side.to_dict())) == raw
    assert side.subnet_hash == spec.hash == raw["subnet"]["hash"] and side.preset == spec.preset
    assert side.schedule.T == spec.preset.T and raw["schedule"]["betas_sha256"]
    assert side.weights.source == "file" and side.export_check["max_abs_diff"] == rep.max_abs_diff
    np.testing.assert_array_equal(side.noise_schedule().betas, schedule_of(spec.preset).betas)
    for key, bad, msg in (("schedule", {**raw["schedule"], "betas_sha256": "0" * 64}, "other betas"),
                          ("subnet", {**raw["subnet"], "hash": "deadbeef0000"}, "subnet hash")):
        with pytest.raises(RcaiError, match=msg):
            DeploySidecar.from_dict({**raw, key: bad}, "tampered.json")


def test_loop_rebuilt_from_sidecar_without_model_code(exported):
    out, _, _ = exported
    code = (
        "import sys, numpy as np\n"
        "from rcai.deploy.runtime import DeployedModel\n"
        f"dm = DeployedModel.load({str(out)!r}, threads=1)\n"
        "r = dm.sample(np.zeros(dm.lr_shape(), np.float32), 'ddim', 3)\n"
        "assert r.image.shape == dm.lr_shape() and np.isfinite(r.image).all()\n"
        "print(sorted(m for m in sys.modules if m.startswith('rcai.model')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("sampler,steps", [("ddim", 5), ("ddpm", None)])
def test_onnx_loop_equals_torch_loop(exported, micro, sampler, steps):
    out, _, model = exported
    dm = DeployedModel.load(out, threads=1, batch=2)
    lr_up, _ = lr_input("random", micro.lr_size, micro.hr_size, batch=2, seed=3)
    a = dm.sample(lr_up, sampler, steps, seed=7)
    b = sample(TorchDenoiser(model), lr_up, schedule_of(micro), sampler=sampler, steps=steps, seed=7, clip_x0=True, residual=micro.residual, prediction=micro.prediction)
    assert len(a.timesteps) == (steps or micro.T)
    assert psnr(a.image, b.image) >= 50.0
    c = dm.sample(lr_up, sampler, steps, seed=8)  # the seed matters: not a constant output
    assert psnr(a.image, c.image) < 40.0


def test_bench_result_fields(exported, micro_table):
    out, _, _ = exported
    with pytest.raises(RcaiError, match="measured at batch 1, the estimates are for batch 2"):
        bench_loop(out, BenchConfig(**{**FAST, "batch": 2}, table=str(micro_table)))
    res = bench_loop(out, BenchConfig(**{**FAST, "batch": 2}))
    assert res.batch == 2 and res.step_count == 5 * 2 and res.output.shape == (2, 3, 32, 32)
    assert res.images_per_s == pytest.approx(2 / (res.loop_ms / 1e3))
    res = bench_loop(out, BenchConfig(**FAST, table=str(micro_table)))
    assert res.engine == "onnx" and res.target["backend"] == "onnxruntime" and res.target["threads"] == 1
    assert res.steps == 5 and res.batch == 1 and res.step_count == 5 * 2 and len(res.loop_runs_ms) == 2
    assert 0 < res.step_p10_ms <= res.step_p50_ms <= res.step_p90_ms
    assert res.images_per_s == pytest.approx(1 / (res.loop_ms / 1e3))
    assert res.peak_mem_bytes >= 0 and res.peak_rss_bytes > 0 and "RSS" in res.mem_method
    assert res.psnr_ok is True and res.psnr_db >= 50 and "torch" in res.psnr_reference
    est = res.estimates["table"]
    assert est["loop_ms"] == pytest.approx(est["step_ms"] * 5) and est["step_ms"] > 0 and est["steps"] == 5
    assert est["loop_error_pct"] == pytest.approx(100 * (est["loop_ms"] - res.loop_ms) / res.loop_ms)
    d = res.to_dict()
    json.dumps(d)
    assert "output" not in d and d["estimates"]["table"]["source"] == "table"


def test_bench_on_the_torch_device_and_defaults(exported, micro):
    out, _, _ = exported
    res = bench_loop(out, BenchConfig(**{**FAST, "device": "torch", "sampler": "ddpm", "steps": None, "loops": 1}))
    assert res.engine == "torch" and res.steps == micro.T  # ddpm default: the sidecar's T
    assert res.psnr_ok is True and "onnxruntime" in res.psnr_reference


def test_bench_errors(exported, tmp_path, micro):
    out, _, _ = exported
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model\n")
    with pytest.raises(RcaiError, match="not an ONNX model"):
        bench_loop(bad, BenchConfig(**FAST))
    # a model whose inputs do not match its sidecar (here: another preset's resolution)
    other = tmp_path / "other.onnx"
    torch.onnx.export(torch.nn.Conv2d(6, 3, 1), (torch.zeros(1, 6, 8, 8),), str(other), input_names=["x"], dynamo=False)
    sidecar_path(other).write_text(sidecar_path(out).read_text())
    with pytest.raises(RcaiError, match="do not match the sidecar"):
        bench_loop(other, BenchConfig(**FAST))
    # no sidecar: --preset and --steps required, then the preset's schedule is used
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(out.read_bytes())
    with pytest.raises(RcaiError, match="sidecar bare.onnx.json not found"):
        bench_loop(bare, BenchConfig(**FAST))
    with pytest.raises(RcaiError, match="--sample-steps is required"):
        bench_loop(bare, BenchConfig(**{**FAST, "steps": None}, preset="tiny"))
    with pytest.raises(RcaiError, match="do not match preset 'tiny'"):
        bench_loop(bare, BenchConfig(**FAST, preset="tiny"))  # tiny is 64x64, the model 32x32
    from PIL import Image

    img = tmp_path / "lr.png"
    Image.fromarray(np.zeros((micro.lr_size + 1, micro.lr_size, 3), np.uint8)).save(img)
    with pytest.raises(RcaiError, match=r"lr.png: image is 16x17, the model needs 16x16"):
        bench_loop(out, BenchConfig(**{**FAST, "image": str(img)}))
    with pytest.raises(RcaiError, match="predictor file not found"):
        bench_loop(out, BenchConfig(**FAST, predictor=str(tmp_path / "none.pt")))


def test_bench_without_sidecar_uses_preset_schedule(tmp_path):
    from rcai.presets import get_preset

    tiny = get_preset("tiny")
    path = tmp_path / "t.onnx"
    with pytest.warns(UserWarning):
        export_subnet_onnx(SubnetSpec(tiny, SearchSpace(tiny).base_arch()), None, path, verify=False)
    sidecar_path(path).unlink()
    res = bench_loop(path, BenchConfig(**{**FAST, "loops": 1, "steps": 2}, preset="tiny"))
    assert not res.has_sidecar and res.subnet_hash is None and res.psnr_db is None
    assert any("no PSNR check" in n for n in res.notes)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from rcai.cli.main import main; main()", *args], capture_output=True, text=True, timeout=120)


def test_cli_export_and_bench_json(trained, tmp_path):
    run, _ = trained
    out = tmp_path / "cli.onnx"
    done = _cli("export", str(out), "--run", str(run), "--json")
    assert done.returncode == 0, done.stderr
    rep = json.loads(done.stdout)
    assert rep["max_abs_diff"] <= 1e-4 and Path(rep["sidecar_path"]).is_file()
    done = _cli("bench", str(out), "--sampler", "ddim", "--sample-steps", "3", "--threads", "1", "--image", "random", "--loops", "1", "--rounds", "1", "--json")
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert res["steps"] == 3 and res["psnr_ok"] is True and res["target"]["threads"] == 1


def test_a_table_from_another_machine_warns_in_one_line(exported, micro, micro_table, tmp_path):
    from rcai.cost.load import load_cost_model
    from rcai.cost.table import meta_path

    said = []
    load_cost_model(micro_table, micro, device="cpu", threads=1, warn=said.append)  # profiled here, same threads
    load_cost_model(micro_table, micro, warn=said.append)  # no target of its own (search): the table's
    assert said == []
    load_cost_model(micro_table, micro, device="cpu", threads=2, warn=said.append)
    assert len(said) == 1 and "threads 1 != 2" in said[0] and "--threads 2 --out PATH" in said[0]
    out, _, _ = exported
    foreign = tmp_path / "foreign.csv"  # the same rows, measured "elsewhere" with another library
    foreign.write_text(micro_table.read_text())
    meta = json.loads(meta_path(micro_table).read_text())
    meta_path(foreign).write_text(json.dumps({**meta, "host": "elsewhere", "backend_version": "0.0"}))
    done = _cli("bench", str(out), "--sample-steps", "2", "--threads", "1", "--image", "random", "--loops", "1", "--rounds", "1", "--no-psnr", "--json",
                "--cost-table", str(foreign))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith(f"warning: {foreign} was profiled on another target")
    assert "host 'elsewhere'" in done.stderr and "backend_version '0.0'" in done.stderr
    assert "re-profile here: rcai profile --device cpu --preset micro --threads 1" in done.stderr
    assert json.loads(done.stdout)["estimates"]["table"]["loop_ms"] > 0  # still used


def test_cli_error_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\x00\x01garbage")
    done = _cli("bench", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "not an ONNX model" in done.stderr


def test_estimate_errors_over_subnets(micro, micro_table, tmp_path):
    from rcai.deploy.accuracy import estimate_errors, study_subnets

    subnets = study_subnets(micro, n_random=1, seed=0)
    assert list(subnets) == ["base", "min-flops", "max-flops", "random-0"]
    picked = {k: subnets[k] for k in ("min-flops", "max-flops")}
    cfg = BenchConfig(**{**FAST, "steps": 3}, table=str(micro_table), psnr=False)
    rows, summary = estimate_errors(picked, cfg, tmp_path, rounds=1)
    assert [r["subnet"] for r in rows] == ["min-flops", "max-flops"]
    assert rows[0]["flops"] < rows[1]["flops"]
    for r in rows:
        assert r["measured_loop_ms"] > 0 and r["steps"] == 3
        assert r["table_error_pct"] == pytest.approx(100 * (r["table_loop_ms"] - r["measured_loop_ms"]) / r["measured_loop_ms"])
    assert summary["table"]["max_abs_error_pct"] == pytest.approx(max(abs(r["table_error_pct"]) for r in rows))
    assert "predictor" not in summary
    with pytest.raises(RcaiError, match="table and/or a predictor"):
        estimate_errors(picked, BenchConfig(**FAST), tmp_path)


def hardware_absent(device: str) -> str | None:
    """Why this machine cannot run `device` at all (no GPU, no Jetson host), or None. The only reason
    the device contract skips: anything else that goes wrong is a failure."""
    import importlib.util
    import os

    if device in ("gpu", "torch-cuda") and not torch.cuda.is_available() and importlib.util.find_spec("tensorrt") is None:
        return "no CUDA GPU on this machine"
    if device == "jetson" and not (os.environ.get("RCAI_JETSON_HOST") or os.environ.get("RCAI_REMOTE_HOST")):
        return "no Jetson host ($RCAI_JETSON_HOST unset)"
    return None


def device_contract(out, device: str, build=None) -> None:
    """The engine contract for one --device: built from the deployed file and its sidecar (threads:
    1 where the target has threads, by its own declaration), it runs the bench loop and its image
    equals ONNX Runtime's on this CPU (they differ in the denoiser alone). Raises on any failure."""
    from rcai.deploy import build_engine
    from rcai.deploy.bench import loop_fn
    from rcai.targets.spec import TargetSpec

    build = build or build_engine
    side = DeploySidecar.for_onnx(out)
    cfg = BenchConfig(**{**FAST, "steps": 3})
    spec = TargetSpec(device=device).with_threads(1)
    engine = build(out, side, spec)
    reference = build_engine(out, side, TargetSpec(device="cpu", threads=1))
    assert engine.kind == ("onnx" if spec.takes_onnx else "torch") and engine.label and engine.info["backend"] and isinstance(engine.on_calling_thread, bool)
    a, b = loop_fn(engine, side, cfg)(), loop_fn(reference, side, cfg)()
    assert a.image.shape == b.image.shape and psnr(a.image, b.image) >= 50.0


@pytest.mark.parametrize("device", sorted(DEVICES))
def test_every_device_runs_the_same_loop(exported, device):
    """The device contract for every --device; skipped only where the hardware is absent (it used to
    turn any RcaiError, RuntimeError or AssertionError into a skip, which hid a threads setting
    torch-cuda does not take and fp16 failing on the real UNet)."""
    why = hardware_absent(device)
    if why:
        pytest.skip(f"--device {device}: {why}")
    device_contract(exported[0], device)


def test_the_device_contract_fails_on_a_crash(exported):
    """An injected crash in a target fails the contract (no skip)."""
    from rcai.deploy import build_engine

    def crash(x6, level):
        raise RuntimeError("kernel crashed")

    def broken(*args, **kwargs):
        engine = build_engine(*args, **kwargs)
        engine.denoiser = crash  # the host loop's network call
        engine.prepared.device_runner = lambda capturable=False: crash  # the device loop's
        return engine

    with pytest.raises(RuntimeError, match="kernel crashed"):
        device_contract(exported[0], "torch", build=broken)

    def wrong(*args, **kwargs):
        engine = build_engine(*args, **kwargs)
        inner = engine.denoiser
        engine.denoiser = lambda x6, level: inner(x6, level) + 0.5  # runs, but the image is wrong
        return engine

    with pytest.raises(AssertionError):
        device_contract(exported[0], "cpu", build=wrong)
