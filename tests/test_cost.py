import math

import pytest
import torch

from rcai.cost.counters import op_counts
from rcai.cost.expected import expected_cost
from rcai.cost.load import LOADERS
from rcai.cost.model import CounterCostModel, TableCostModel
from rcai.cost.table import CostTable, meta_path, spec_columns
from rcai.errors import RcaiError
from rcai.space.extract import extract_subnet
from rcai.model.unet import UNet
from rcai.space.space import SearchSpace


def _meta(preset, **kw):
    return {"preset": preset.name, "preset_hash": preset.hash, "arch_hash": preset.arch_hash, "batch": 1, "precision": "fp32", "backend": "test",
            "device": "cpu", "threads": 1, "overhead_ms": 0.01, **kw}


def write_table(path, preset, latency=lambda spec: 0.05 + op_counts(spec)["flops"] / 1e9):
    """A cost table with latencies from a formula (format tests; real profiling is in test_profile)."""
    table = CostTable.create(path, _meta(preset))
    for spec in SearchSpace(preset).all_specs():
        c = op_counts(spec)
        ms = latency(spec)
        table.append({**spec_columns(spec), "median_ms": ms, "p10_ms": ms * 0.9, "p90_ms": ms * 1.1, "cv": 0.05,
                      "count": 20, "flops": c["flops"], "flops_torch": c["flops"], "flops_mismatch": 0,
                      "params": c["params"], "bytes": c["bytes"], "peak_act_bytes": c["peak_act_bytes"]})
    return table


def test_table_round_trip(tmp_path, micro):
    table = write_table(tmp_path / "t.csv", micro)
    loaded = CostTable.load(tmp_path / "t.csv")
    assert loaded.meta == table.meta
    assert set(loaded.rows) == {s.key for s in SearchSpace(micro).all_specs()}
    key = next(iter(table.rows))
    assert loaded.rows[key]["median_ms"] == pytest.approx(table.rows[key]["median_ms"], rel=1e-5)


def test_table_ignores_partial_last_line(tmp_path, micro):
    write_table(tmp_path / "t.csv", micro)
    n = len(CostTable.load(tmp_path / "t.csv").rows)
    with open(tmp_path / "t.csv", "a") as f:
        f.write("conv3x3-c8x8-h32w32-g4,conv3x3,8,8")  # killed mid-write
    assert len(CostTable.load(tmp_path / "t.csv").rows) == n


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda text: text.replace("median_ms", "med"), "wrong columns"),
        (lambda text: text.replace("\n", "\n1,2\n", 2).replace("\n1,2\n", "\n", 1), "expected"),
        (lambda text: "\n".join([text.splitlines()[0], text.splitlines()[1].replace(",20,", ",nan,", 1)] + text.splitlines()[2:]) + "\n", "count is nan"),
        (lambda text: "\n".join([text.splitlines()[0], text.splitlines()[1].replace(",20,", ",abc,", 1)] + text.splitlines()[2:]) + "\n", "not a number"),
    ],
    ids=["columns", "truncated-row", "nan", "text"],
)
def test_bad_tables_give_one_line_errors(tmp_path, micro, corrupt, message):
    write_table(tmp_path / "t.csv", micro)
    path = tmp_path / "t.csv"
    path.write_text(corrupt(path.read_text()))
    with pytest.raises(RcaiError, match=message) as e:
        CostTable.load(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_missing_ops_and_foreign_tables_are_refused(tmp_path, micro, tiny):
    table = write_table(tmp_path / "t.csv", micro)
    lines = (tmp_path / "t.csv").read_text().splitlines()
    dropped = lines[3].split(",")[0]
    (tmp_path / "t.csv").write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    with pytest.raises(RcaiError, match=f"1 ops missing from the table: {dropped}"):
        TableCostModel(micro, CostTable.load(tmp_path / "t.csv"))
    with pytest.raises(RcaiError, match="--force"):
        TableCostModel(tiny, table)
    with pytest.raises(RcaiError, match="not found"):
        CostTable.load(tmp_path / "none.csv")
    meta_path(tmp_path / "t.csv").unlink()
    with pytest.raises(RcaiError, match="sidecar"):
        CostTable.load(tmp_path / "t.csv")


def test_expected_cost_gradient_matches_finite_difference_and_reaches_only_alpha(tmp_path, micro):
    torch.manual_seed(0)
    model = TableCostModel(micro, write_table(tmp_path / "t.csv", micro))
    net = UNet(micro).double()  # float64 so the finite difference is exact enough
    for a in net.arch_parameters():
        a.data.normal_()
    lat = expected_cost(net, model.op_metric, ["latency_ms"])["latency_ms"]
    lat.backward()
    assert all(p.grad is None for p in net.weight_parameters())
    alpha = net.arch_parameters()[-1]
    eps = 1e-5
    for i in range(alpha.numel()):
        with torch.no_grad():
            alpha[i] += eps
            up = expected_cost(net, model.op_metric, ["latency_ms"])["latency_ms"].item()
            alpha[i] -= 2 * eps
            down = expected_cost(net, model.op_metric, ["latency_ms"])["latency_ms"].item()
            alpha[i] += eps
        assert alpha.grad[i].item() == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-12)


def test_expected_cost_of_one_hot_supernet_equals_subnet_lookup(tmp_path, micro):
    model = TableCostModel(micro, write_table(tmp_path / "t.csv", micro))
    net = UNet(micro)
    arch = SearchSpace(micro).base_arch()
    for m in net.mixed_ops():
        with torch.no_grad():
            m.alpha.fill_(-math.inf)
            m.alpha[m.choices.index(arch.get(m.path, m.choices[0]))] = 0
    e = expected_cost(net, model.op_metric, model.metrics)
    cost = model.estimate(arch)
    assert e["latency_ms"].item() + model.overhead_ms == pytest.approx(cost.latency_ms)
    assert e["flops"].item() == pytest.approx(cost.flops)
    sub, _ = extract_subnet(net)
    assert expected_cost(sub, model.op_metric, ["flops"])["flops"].item() == pytest.approx(cost.flops)
    assert cost.flops == pytest.approx(CounterCostModel(micro).estimate(arch).flops)
    assert model.estimate(arch, steps=50).loop_ms == pytest.approx(50 * cost.latency_ms)


def test_a_preset_is_read_in_three_parts_and_its_hashes_stay():
    """network / schedule / recipe partition the flat record (name and description aside); the
    stored hashes that subnet.json files, tables and predictors carry are those of earlier releases."""
    import dataclasses

    from rcai.presets import PARTS, Preset, get_preset

    fields = dataclasses.fields

    owned = [f.name for part in PARTS.values() for f in fields(part)]
    assert sorted(owned) == sorted(f.name for f in fields(Preset) if f.name not in ("name", "description"))
    tiny = get_preset("tiny")
    assert tiny.network.hr_size == 64 and tiny.schedule.T == 1000 and tiny.recipe.prediction == "v" and tiny.recipe.dropout == 0.0
    assert Preset.from_dict(tiny.to_dict()) == tiny
    assert (tiny.hash, tiny.arch_hash, tiny.network.hash) == ("f4dd9532df7c", "c0c2967b4532", "c0c2967b4532")
    assert (get_preset("micro").hash, get_preset("micro").arch_hash) == ("c4be80cdc1e6", "c01bdee49a0e")
    with pytest.raises(RcaiError, match="preset 'tiny': schedule: T must be"):
        dataclasses.replace(tiny, T=0)


def test_table_serves_presets_with_the_same_network_only(tmp_path, micro):
    import dataclasses

    table = write_table(tmp_path / "t.csv", micro)
    recipe = dataclasses.replace(micro, T=500, residual=0.0, dropout=0.2)  # same network, other recipe
    assert recipe.hash != micro.hash and recipe.arch_hash == micro.arch_hash
    TableCostModel(recipe, table)
    wider = dataclasses.replace(micro, base_channels=16)
    with pytest.raises(RcaiError, match="arch_hash"):
        TableCostModel(wider, table)


# where each registered cost model of the tiny preset comes from (a new loader must add its source here)
COST_SOURCES = {"table": "latency_tables/cpu-tiny.csv", "predictor": "predictors/cpu-tiny.pt", "counters": "counters"}


@pytest.mark.parametrize("kind", LOADERS.names())
def test_every_cost_model_estimates_whole_loops(kind, tiny):
    """The cost-model contract, for every registered loader: loaded by name or path through
    load_cost_model, it estimates a loop as steps x a per-step cost, repeatably, with the FLOPs of
    the analytic counters, and puts the cheapest subnet below the base wherever it reports latency."""
    from pathlib import Path

    from rcai.cost.load import load_cost_model
    from rcai.cost.model import CounterCostModel

    assert kind in COST_SOURCES, f"add a source for the cost model {kind!r} to COST_SOURCES"
    root = Path(__file__).resolve().parents[1]
    src = COST_SOURCES[kind] if kind == "counters" else str(root / COST_SOURCES[kind])
    model = load_cost_model(src, tiny, warn=lambda message: None)
    base, counters = model.space.base_arch(), CounterCostModel(tiny)
    cheapest, _ = counters.space.extreme_arch(lambda sp: counters.op_metric(sp, "flops"), largest=False)
    one, fifty = model.estimate(base, 1), model.estimate(base, 50)
    assert fifty.loop_ms == pytest.approx(50 * one.loop_ms) and fifty.steps == 50
    assert model.estimate(base, 50) == fifty  # deterministic
    assert fifty.flops == pytest.approx(counters.estimate(base, 50).flops, rel=0.02)
    if kind != "counters":
        assert 0 < model.estimate(cheapest, 50).loop_ms < fifty.loop_ms < float("inf")


def test_the_launch_bound_fit_recovers_a_per_kernel_floor():
    """A launch-bound step (GPU, batch 1): measured = overhead + floor x kernels + scale x table sum.
    The fit recovers the floor that an additive table less a per-call overhead misses, and its
    estimate stays a sum over ops (scale x latency + floor x kernels)."""
    import numpy as np

    from rcai.cost.calibration import fit_launch

    rng = np.random.default_rng(0)
    kernels = rng.integers(90, 160, 10).astype(float)
    table = 0.02 + 0.0004 * kernels + rng.uniform(0, 0.03, 10)  # isolated calls: small, loosely tied to the kernels
    measured = 0.05 + 0.003 * kernels + 1.0 * table
    cal = fit_launch(table, kernels, measured)
    assert cal.model == "launch" and cal.kernel_ms == pytest.approx(0.003, rel=0.05) and cal.fit["max_err"] < 0.01
    assert cal.op_ms("conv3x3", 0.01, 3) == pytest.approx(cal.scale * 0.01 + cal.kernel_ms * 3)
    with pytest.raises(RcaiError, match="positive"):
        fit_launch([1.0], [1.0], [0.0])
