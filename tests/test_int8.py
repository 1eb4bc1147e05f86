"""INT8 (ONNX Runtime static quantization): the export stays within its stated tolerance of fp32 and
records how it was made, the loader refuses a table of the other precision in one line, an INT8 loop
runs through the same bench code path, and ops are quantized for the table as in a whole network.
Micro preset, short loops."""
from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
import torch

from helpers import run_cli
from rcai.cost.load import load_cost_model
from rcai.cost.table import CostTable
from rcai.deploy import BenchConfig, DeploySidecar, bench_loop, build_model, export_subnet_onnx
from rcai.deploy.export import INT8_TOLERANCE
from rcai.deploy.quantize import CalibrationConfig, held_out_feeds, loop_calibration_feeds
from rcai.errors import RcaiError
from rcai.space.space import SearchSpace
from rcai.space.subnet import SubnetSpec
from rcai.targets import get_target
from rcai.targets.quantize import QUANT_OPS, QuantConfig, onnx_precision, quantize_for_timing

FAST = dict(sampler="ddim", steps=5, threads=1, image="random", loops=1, warmup=1)


@pytest.fixture(scope="module")
def spec(micro):
    return SubnetSpec(micro, SearchSpace.of(micro).base_arch())


@pytest.fixture(scope="module")
def exported(spec, tmp_path_factory):
    d = tmp_path_factory.mktemp("int8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random init
        fp32 = export_subnet_onnx(spec, None, d / "fp32.onnx")
        int8 = export_subnet_onnx(spec, None, d / "int8.onnx", precision="int8", calibration=CalibrationConfig(inputs=16))
    return fp32, int8


def test_int8_export_within_tolerance_of_fp32(exported, spec):
    fp32, int8 = exported
    assert fp32.precision == "fp32" and int8.precision == "int8"
    assert int8.int8_rel_error is not None and int8.int8_rel_error <= INT8_TOLERANCE
    # the same check, done here independently: the quantized file vs the torch fp32 module on held-out loop inputs
    module = build_model(spec, None)
    feeds = held_out_feeds(module, spec.preset)
    prepared = get_target("onnxruntime", threads=1).prepare(int8.onnx_path, {k: (v.shape, v.dtype) for k, v in feeds[0].items()})
    got = np.concatenate([prepared.run(f)[0] for f in feeds])
    with torch.inference_mode():
        want = np.concatenate([module(torch.from_numpy(f["x"]), torch.from_numpy(f["noise_level"])).numpy() for f in feeds])
    rel = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    assert rel == pytest.approx(int8.int8_rel_error, rel=1e-3) and rel <= INT8_TOLERANCE
    assert 0 < rel  # it is quantized: not bit-equal to fp32
    ops = {n.op_type for n in onnx.load(int8.onnx_path).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert onnx_precision(int8.onnx_path) == "int8" and onnx_precision(fp32.onnx_path) is None


def test_int8_sidecar_records_precision_calibration_and_settings(exported):
    _, int8 = exported
    side = DeploySidecar.for_onnx(int8.onnx_path)
    assert side.precision == "int8"
    st, cal = side.quantization["settings"], side.quantization["calibration"]
    assert st["format"] == "qdq" and st["op_types"] == ["Conv"] and st["per_channel"] is True
    assert st["tool"] == "onnxruntime.quantization.quantize_static" and st["quantized_nodes"] > 0
    assert any("/stem/" in n for n in st["fp32_nodes_of_quantized_types"]) and any("/head/" in n for n in st["fp32_nodes_of_quantized_types"])
    assert cal["inputs"] == 16 and cal["split"] == "train" and len(cal["noise_levels"]) > 1
    assert side.export_check["int8_tolerance"] == INT8_TOLERANCE
    # an int8 sidecar without its settings is refused
    d = side.to_dict()
    d["quantization"] = {}
    with pytest.raises(RcaiError, match="no quantization settings"):
        DeploySidecar.from_dict(d)


def test_calibration_inputs_follow_the_loop(spec):
    module = build_model(spec, None)
    feeds, desc = loop_calibration_feeds(module, spec.preset, CalibrationConfig(inputs=12, levels=4, steps=10))
    assert len(feeds) == 12 and all(f["x"].shape == (1, 6, 32, 32) for f in feeds)
    levels = sorted({float(f["noise_level"][0, 0]) for f in feeds})
    from rcai.diffusion import NoiseSchedule

    sched = NoiseSchedule(spec.preset.schedule)
    assert len(levels) == 4 and levels[0] == pytest.approx(sched.alpha_bar(sched.T) ** 0.5, rel=1e-5)  # the first step: pure noise
    assert levels[-1] > 0.99  # ... to the last, nearly clean
    with pytest.raises(RcaiError, match="held-out"):
        CalibrationConfig(split="eval")


def _table(path, micro, precision):
    meta = {"precision": precision, "batch": 1, "preset": micro.name, "arch_hash": micro.arch_hash}
    return CostTable.create(path, meta)


@pytest.mark.parametrize("table_precision,target", [("fp32", "int8"), ("int8", "fp32")])
def test_loader_refuses_the_other_precision_in_one_line(micro, tmp_path, table_precision, target):
    _table(tmp_path / "t.csv", micro, table_precision)
    with pytest.raises(RcaiError) as e:
        load_cost_model(tmp_path / "t.csv", micro, precision=target)
    msg = str(e.value)
    assert "\n" not in msg and f"precision {table_precision}" in msg and f"target is {target}" in msg
    assert f"rcai profile --precision {target}" in msg


def test_cli_bench_refuses_an_fp32_table_for_an_int8_model(exported, micro, tmp_path, monkeypatch, capsys):
    _table(tmp_path / "fp32.csv", micro, "fp32")
    code, out, err = run_cli(monkeypatch, capsys, "bench", exported[1].onnx_path, "--cost-table", str(tmp_path / "fp32.csv"), "--threads", "1",
                             "--sample-steps", "3", "--no-psnr", "--no-quality")
    assert code == 2 and err.strip().count("\n") == 0 and "precision fp32" in err and "int8" in err


def test_int8_loop_runs_through_the_bench_code_path(exported):
    fp32, int8 = exported
    cfg = BenchConfig(**FAST, psnr=True, quality=True, quality_seeds=2, quality_crops=2)
    res = bench_loop(int8.onnx_path, cfg)
    assert res.loop_quality["seeds"] == 2 and res.loop_quality["crops"] == 2 and res.loop_quality["ideal_psnr"] is not None  # --quality: the loop's too
    assert res.engine == "onnx" and res.precision == "int8" and "int8" in res.engine_label
    assert res.target["precision"] == "int8" and res.loop_ms > 0 and res.step_count >= 5
    assert res.psnr_db is not None and np.isfinite(res.psnr_db) and res.psnr_ok is None  # vs the torch fp32 loop
    q = res.quality
    assert q is not None and q["crops"] == 64 and q["loss_lo"] <= q["loss_db"] <= q["loss_hi"]
    assert abs(q["loss_db"]) < 0.5
    ref = bench_loop(fp32.onnx_path, BenchConfig(**FAST, psnr=False))
    assert ref.precision == "fp32" and ref.quality is None and ref.output.shape == res.output.shape


def test_ops_are_quantized_for_the_table_as_in_the_network(micro, tmp_path):
    from rcai.cost.profile import export_op

    specs = {s.op: s for s in SearchSpace.of(micro).all_specs()}
    conv = export_op(specs["conv3x3"], 1, tmp_path)
    q = quantize_for_timing(conv)
    assert q != conv and onnx_precision(q) == "int8"
    assert {n.op_type for n in onnx.load(str(q)).graph.node} & set(QUANT_OPS)
    film = export_op(specs["film"], 1, tmp_path)
    assert quantize_for_timing(film) == film  # no Conv: fp32 in an INT8 network too
    assert QuantConfig().keeps_fp32("stem") and QuantConfig().keeps_fp32("head") and not QuantConfig().keeps_fp32("conv3x3")
    assert get_target("onnxruntime", threads=1).prepare(q).info().precision == "int8"


def test_profile_refuses_int8_where_it_cannot_quantize(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "profile", "--preset", "micro", "--precision", "int8", "--archs", "3", "--skip-ops",
                           "--out", str(tmp_path / "t.csv"))
    assert code == 2 and "op table only" in err
    code, _, err = run_cli(monkeypatch, capsys, "profile", "--preset", "micro", "--precision", "int4", "--out", str(tmp_path / "t.csv"))
    assert code == 2 and "unknown precision" in err
    with pytest.raises(RcaiError, match="unknown"):
        QuantConfig(activations="int4")
    assert json.loads(json.dumps(QuantConfig().to_dict()))["exclude"] == ["/stem/", "/head/"]
