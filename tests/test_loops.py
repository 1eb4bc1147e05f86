"""Issue 21: one whole-loop measurement (both clocks, rounds, the same loop twice agrees), the
sampler's measured per-step term in every table estimate, tables of another preset refused in one
line, and the README's `rcai tables check` line on the shipped files."""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rcai.cost.loops import SAMPLER, measure_model_loops, sampler_steps, sampler_terms
from rcai.cost.model import TableCostModel
from rcai.cost.profile import ProfileConfig, profile_ops
from rcai.targets import TargetSpec
from rcai.cost.rounds import InterleaveConfig
from rcai.cost.subnets import export_with_weights
from rcai.cost.table import CostTable
from rcai.errors import RcaiError
from rcai.space.space import SearchSpace
from rcai.space.subnet import SubnetSpec
from rcai.targets import get_target
from rcai.targets.loops import LoopConfig, measure_loops

ROOT = Path(__file__).resolve().parents[1]
SAME_LOOP_BOUND = 0.10  # two measurements of one loop in the same rounds, process CPU time, on a shared 2-core VM
HALVES_BOUND = 0.20  # the first half of one model's rounds vs the second half


def test_measure_loops_records_both_clocks_and_quotes_the_stated_one():
    def spin():  # on the CPU: both clocks
        t = time.thread_time()
        while time.thread_time() - t < 0.004:
            pass

    res = measure_loops({"spin": spin, "sleep": lambda: time.sleep(0.004)}, LoopConfig(rounds=4, loops=2, warmup=0))
    s, z = res["spin"], res["sleep"]
    assert s.clock == "cpu" and s.statistic == "median" and s.rounds == 4 and len(s.wall_ms) == 4 and all(len(r) == 2 for r in s.wall_ms)
    assert s.loop_ms == pytest.approx(float(np.median(np.ravel(s.cpu_ms))))
    assert s.cpu.value_ms == pytest.approx(4.0, rel=0.5) and s.wall.value_ms >= s.cpu.value_ms * 0.95
    assert z.wall.value_ms >= 3.5 and z.cpu.value_ms < 1.0  # a loop waiting off the CPU: wall only
    assert len(s.load_before) == 3 and np.isfinite(s.remeasure_pct)
    wall = measure_loops({"sleep": lambda: time.sleep(0.002)}, LoopConfig(rounds=2, warmup=0), on_calling_thread=False)["sleep"]
    assert wall.clock == "wall" and wall.loop_ms == wall.wall.value_ms  # off the calling thread: quoted on the wall clock
    with pytest.raises(RcaiError, match="unknown loop clock"):
        LoopConfig(clock="thread")


def test_the_same_loop_measured_twice_agrees_on_a_micro_model(micro, tmp_path):
    path = tmp_path / "net.onnx"
    export_with_weights(SubnetSpec(micro, SearchSpace.of(micro).base_arch()), path, 1)
    for attempt in range(2):  # one re-run: a neighbour on the shared VM can move a 1-s measurement; a real fault fails both
        res = measure_model_loops(get_target("onnxruntime", threads=1), {"a": path, "b": path}, micro, LoopConfig(rounds=10, loops=2), steps=20)
        a, b = res["a"], res["b"]
        assert a.clock == b.clock == "cpu"
        same = abs(b.loop_ms / a.loop_ms - 1) <= SAME_LOOP_BOUND  # interleaved rounds: the load's drift hits both alike
        halves = abs(a.remeasure_pct) <= 100 * HALVES_BOUND  # its own halves are apart in time: drift shows, a looser bound
        if same and halves:
            break
    assert same, (a.loop_ms, b.loop_ms)
    assert halves, a.remeasure_pct
    assert {SAMPLER + "ddim", SAMPLER + "ddpm"} <= set(res)
    terms = sampler_terms(res, micro, 20)
    assert 0 < terms["ddim"] < a.loop_ms / 20  # the sampler alone costs less per step than sampler + network
    assert sampler_steps("ddpm", micro, 20) == micro.T and sampler_steps("ddim", micro, 20) == 20


@pytest.fixture(scope="module")
def loop_table(micro, tmp_path_factory):
    path = tmp_path_factory.mktemp("loops") / "cpu-micro.csv"
    cfg = ProfileConfig(preset=micro.name, target=TargetSpec(threads=1), calibrate=3, interleave=InterleaveConfig(rounds=3, burst=3, net_burst=2, warmup=1),
                        calibrate_loops=LoopConfig(rounds=2), loop_steps=8)
    return profile_ops(cfg, path, progress=False)


def test_the_sampler_term_is_measured_and_in_every_estimate(micro, loop_table):
    meta = loop_table.meta
    assert set(meta["sampler_ms"]) == {"ddim", "ddpm"} and all(v > 0 for v in meta["sampler_ms"].values())
    assert meta["loop"]["clock"] == "cpu" and meta["loop"]["statistic"] == "median" and meta["loop"]["steps"] == 8
    assert loop_table.calibration.target == "loop" and loop_table.calibration.subnets == 3
    arch = SearchSpace.of(micro).base_arch()
    ddim, ddpm = TableCostModel(micro, loop_table, sampler="ddim"), TableCostModel(micro, loop_table, sampler="ddpm")
    e, p = ddim.estimate(arch, 10), ddpm.estimate(arch, 10)
    assert e.sampler_ms == pytest.approx(meta["sampler_ms"]["ddim"]) and p.sampler_ms == pytest.approx(meta["sampler_ms"]["ddpm"])
    assert p.loop_ms - e.loop_ms == pytest.approx(10 * (p.sampler_ms - e.sampler_ms))
    # the term is part of the per-step overhead the search's expected cost and knapsack add (rcai/search/strategies/darts/engine.py, select.py)
    assert ddim.overhead_ms == pytest.approx(loop_table.calibration.overhead_ms + e.sampler_ms)
    bare = TableCostModel(micro, loop_table, calibrated=False)
    assert bare.overhead_ms == pytest.approx(loop_table.overhead_ms + e.sampler_ms)
    from rcai.cost.load import load_cost_model

    assert load_cost_model(loop_table.path, micro, sampler="ddpm").estimate(arch, 10).loop_ms == pytest.approx(p.loop_ms, rel=1e-4)  # the file holds rounded figures


def test_a_table_for_another_preset_is_refused_in_one_line(micro, loop_table, tmp_path):
    from rcai.presets import get_preset

    with pytest.raises(RcaiError) as e:
        TableCostModel(get_preset("tiny"), CostTable.load(loop_table.path))
    assert "\n" not in str(e.value) and "arch_hash" in str(e.value)
    # the CLI: exit 2 and one line on stderr
    dataset = tmp_path / "ds"
    (dataset / "subnets").mkdir(parents=True)
    SubnetSpec(get_preset("tiny"), SearchSpace.of(get_preset("tiny")).base_arch()).save(dataset / "subnets" / "0000.json")
    (dataset / "dataset.csv").write_text("model,latency_ms,subnet\nmodels/0000.onnx,5.0,subnets/0000.json\n")
    done = subprocess.run([sys.executable, "-m", "rcai", "tables", "check", str(loop_table.path), "--latency-data", str(dataset / "dataset.csv")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "arch_hash" in done.stderr


def test_the_readme_tables_check_line_runs_on_the_shipped_files():
    line = next(ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.startswith("rcai tables  check") or ln.startswith("rcai tables check"))
    args = line.split("#")[0].split()[1:]
    done = subprocess.run([sys.executable, "-m", "rcai", *args, "--json"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    # figures, not goals: the dataset holds isolated calls, the table predicts calls inside the loop (benchmarks/results/fidelity.md)
    assert res["table_sum"]["n"] >= 100 and res["table_sum"]["spearman"] > 0.8 and "repeatability" in res


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_the_sampler_loop_on_the_device_equals_the_host_loop(micro, prediction):
    """The sampler's update in torch on the model's device (rcai.diffusion.device_loop) gives the
    numpy host loop's image: same network, same y_T, deterministic DDIM (here the device is this CPU)."""
    import torch

    from rcai.cost.loops import make_loop, prepared_denoiser
    from rcai.diffusion import NoiseSchedule

    torch.manual_seed(0)
    net = SubnetSpec(micro, SearchSpace.of(micro).base_arch()).build().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hr = micro.hr_size
    prepared = get_target("torch", threads=1).prepare(net, {"x": ((1, 6, hr, hr), "float32"), "noise_level": ((1, 1), "float32")})
    lr = np.random.default_rng(1).uniform(-1, 1, (1, 3, hr, hr)).astype(np.float32)
    schedule = NoiseSchedule(micro.schedule)
    args = (lr, schedule, "ddim", 6, 3, 0.0, True, micro.residual, prediction)
    host = make_loop("host", prepared, prepared_denoiser(prepared), *args)()
    device = make_loop("device", prepared, None, *args)()
    assert np.abs(host.image).max() > 0.1 and np.abs(device.image - host.image).max() < 1e-5
    assert list(device.timesteps) == list(host.timesteps)
    assert make_loop("auto", prepared, None, *args).__class__.__name__ == "DeviceLoop"  # torch targets: the device loop by default
    with pytest.raises(RcaiError, match="--loop graph captures the whole loop as one CUDA graph"):
        make_loop("graph", prepared, None, *args)
    with pytest.raises(RcaiError, match="only for torch targets"):
        make_loop("device", None, None, *args)  # an ONNX target's prepared model has no device runner
