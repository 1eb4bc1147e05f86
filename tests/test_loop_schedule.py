"""Issue 40's infrastructure: the loop-quality metric, step-aware schedules (schedule.json, their cost
= the sum of their steps), `rcai export --schedule` and `rcai bench` of the scheduled loop, and every
refusal (one line, exit 2, nothing written). Real runs on the micro preset: a micro supernet and a
trained-subnet run folder as the weights, ONNX Runtime sessions, a micro cost table profiled here."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import run_cli

from rcai.diffusion import NoiseSchedule, TorchDenoiser, sample
from rcai.errors import RcaiError
from rcai.space.space import SearchSpace
from rcai.space.step_schedule import Segment, StepSchedule
from rcai.space.subnet import SubnetSpec

STEPS = 4


def _cheap(space: SearchSpace) -> dict[str, str]:
    return space.pick(lambda s: "dwsep3x3" if "dwsep3x3" in s.choices else next(iter(s.choices)))


def _schedule(subnets: dict, segments: list[tuple[int, int, str]], steps: int = STEPS) -> dict:
    return {"format": "rcai-schedule/1", "preset": "micro", "steps": steps, "subnets": subnets,
            "segments": [{"start": a, "stop": b, "subnet": n} for a, b, n in segments]}


@pytest.fixture(scope="module")
def files(micro, tmp_path_factory):
    """A micro supernet file (perturbed init), a run folder of a trained cheap subnet, and a schedule
    using both: the base subnet (off the supernet) at step 0, the cheap one (the run's) at steps 1-3."""
    from rcai.oneshot.net import Supernet, build_supernet

    root = tmp_path_factory.mktemp("sched")
    space = SearchSpace.of(micro)
    torch.manual_seed(0)
    net = build_supernet(micro, "shared")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    Supernet(net, "shared").save(root / "supernet.pt")
    cheap = SubnetSpec(micro, _cheap(space))
    model = cheap.build()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    (root / "runs" / "small").mkdir(parents=True)
    cheap.save(root / "runs" / "small" / "subnet.json")
    torch.save(model.state_dict(), root / "runs" / "small" / "subnet.pt")
    sched = _schedule({"big": {"choices": space.base_arch()}, "small": {"run": "runs/small"}}, [(0, 1, "big"), (1, STEPS, "small")])
    (root / "schedule.json").write_text(json.dumps(sched))
    return root


def test_the_loop_calls_each_step_its_own_denoiser(micro):
    schedule = NoiseSchedule(micro.schedule)
    calls: list[str] = []

    def den(name):
        return lambda x6, level: calls.append(name) or np.zeros((x6.shape[0], 3, *x6.shape[2:]), np.float32)

    lr_up = np.zeros((1, 3, micro.hr_size, micro.hr_size), np.float32)
    sample([den("a"), den("b"), den("b")], lr_up, schedule, sampler="ddim", steps=3)
    assert calls == ["a", "b", "b"]
    with pytest.raises(RcaiError, match="2 per-step denoisers for a loop of 3 steps"):
        sample([den("a")] * 2, lr_up, schedule, sampler="ddim", steps=3)


def test_schedule_file_and_its_checks(micro, files):
    s = StepSchedule.load(files / "schedule.json")
    assert s.step_names() == ["big", "small", "small", "small"] and s.step_counts() == {"big": 1, "small": 3}
    assert s.subnets["small"].hash == SubnetSpec.load(files / "runs" / "small" / "subnet.json").hash
    again = StepSchedule.from_dict(json.loads(json.dumps(s.to_dict())), base=files)
    assert again.step_names() == s.step_names() and {n: x.hash for n, x in again.subnets.items()} == {n: x.hash for n, x in s.subnets.items()}
    s.require_steps(STEPS)
    with pytest.raises(RcaiError, match="built for a loop of 4 steps, not 5"):
        s.require_steps(5)
    base = {"big": {"choices": SearchSpace.of(micro).base_arch()}}
    bad = {"a gap at step 1": [(0, 1, "big"), (2, 4, "big")], "an overlap at step 1": [(0, 2, "big"), (1, 4, "big")],
           "they end at step 3": [(0, 3, "big")], "names subnet 'nope'": [(0, 4, "nope")], "an empty segment": [(0, 0, "big"), (0, 4, "big")]}
    for msg, segs in bad.items():
        with pytest.raises(RcaiError, match=msg):
            StepSchedule.from_dict(_schedule(base, segs))


def test_schedule_estimate_is_the_sum_of_its_steps(micro, files, micro_table):
    from rcai.cost.load import load_cost_model
    from rcai.cost.schedule import schedule_cost

    model = load_cost_model(micro_table, micro, threads=1)
    s = StepSchedule.load(files / "schedule.json")
    cost = schedule_cost(model, s)
    per_step = [model.estimate(s.subnets[n].choices).latency_ms for n in s.step_names()]
    assert cost.step_ms == pytest.approx(per_step) and cost.loop_ms == pytest.approx(sum(per_step))
    big, small = (model.estimate(s.subnets[n].choices, 1).latency_ms for n in ("big", "small"))
    assert cost.loop_ms == pytest.approx(big + 3 * small) and big > small
    single = StepSchedule(micro, STEPS, {"big": s.subnets["big"]}, (Segment(0, STEPS, "big"),))
    assert schedule_cost(model, single).loop_ms == pytest.approx(model.estimate(s.subnets["big"].choices, STEPS).loop_ms)


def test_loop_quality_on_micro(micro):
    from rcai.train.loop_quality import IDEAL_GAP_DB, LoopQualityConfig, ideal_psnr, loop_quality

    model = SubnetSpec(micro, SearchSpace.of(micro).base_arch()).build().eval()  # zero head: its posterior mean is bicubic
    cfg = LoopQualityConfig(seeds=2, crops=2, steps=2)
    ideal = ideal_psnr(model, micro, cfg)
    q = loop_quality(TorchDenoiser(model), micro, cfg, ideal=ideal)
    assert ideal == pytest.approx(q["bicubic_psnr"] - IDEAL_GAP_DB) and IDEAL_GAP_DB == pytest.approx(3.0103, abs=1e-4)
    assert len(q["per_seed"]["psnr"]) == 2 and q["sample_psnr"] == pytest.approx(np.mean(q["per_seed"]["psnr"]))
    assert q["sample_psnr_sd"] > 0 and 0 < q["sample_ssim"] < 1 and np.isfinite(q["mean_psnr"]) and np.isfinite(q["consistency_psnr"])
    assert q["mean_psnr"] > q["sample_psnr"]  # averaging the seeds' samples removes part of their noise
    assert q["sample_vs_ideal_db"] == pytest.approx(q["sample_psnr"] - ideal) and q["crops"] == 2 and q["steps"] == 2
    assert q["bicubic_consistency_psnr"] > q["consistency_psnr"]


def test_export_and_bench_a_two_subnet_schedule(monkeypatch, capsys, micro, files, micro_table, tmp_path):
    from rcai.cost.load import load_cost_model
    from rcai.cost.schedule import schedule_cost

    out = tmp_path / "deployed"
    code, stdout, err = run_cli(monkeypatch, capsys, "export", str(out), "--schedule", str(files / "schedule.json"),
                                "--supernet", str(files / "supernet.pt"), "--json")
    assert code in (0, None), err
    rep = json.loads(stdout)
    assert sorted(p.name for p in out.iterdir()) == ["big.onnx", "big.onnx.json", "big.pt", "schedule.json", "small.onnx", "small.onnx.json", "small.pt"]
    assert rep["step_counts"] == {"big": 1, "small": 3} and all(r["max_abs_diff"] <= 1e-4 for r in rep["subnets"].values())
    assert "supernet" in rep["weights"] and "small: run" in rep["weights"]
    code, stdout, err = run_cli(monkeypatch, capsys, "bench", str(out), "--threads", "1", "--image", "random", "--loops", "1", "--rounds", "2",
                                "--cost-table", str(micro_table), "--quality", "--quality-seeds", "2", "--quality-crops", "2", "--json")
    assert code in (0, None), err
    res = json.loads(stdout)
    assert res["steps"] == STEPS and res["step_count"] == STEPS * 2 and res["schedule"]["step_counts"] == {"big": 1, "small": 3}
    assert res["psnr_ok"] is True and "torch" in res["psnr_reference"]
    est = res["estimates"]["table"]
    want = schedule_cost(load_cost_model(micro_table, micro, threads=1), StepSchedule.load(files / "schedule.json")).loop_ms
    assert est["loop_ms"] == pytest.approx(want) and est["loop_error_pct"] == pytest.approx(100 * (est["loop_ms"] - res["loop_ms"]) / res["loop_ms"])
    q = res["loop_quality"]
    assert q["seeds"] == 2 and q["crops"] == 2 and q["steps"] == STEPS and q["ideal_psnr"] is not None
    # another schedule over the same exported subnets (found by their hash), and the human output
    other = files / "other.json"
    other.write_text(json.dumps(_schedule({"x": {"choices": SearchSpace.of(micro).base_arch()}}, [(0, 2, "x")], steps=2)))
    code, stdout, err = run_cli(monkeypatch, capsys, "bench", str(out), "--schedule", str(other), "--threads", "1", "--image", "random",
                                "--loops", "1", "--rounds", "1", "--no-psnr")
    assert code in (0, None), err
    assert "2 steps" in stdout and "steps 0-1: x" in stdout


def test_refusals_are_one_line_exit_2_nothing_written(monkeypatch, capsys, micro, files, tmp_path):
    space = SearchSpace.of(micro)
    base, cheap = space.base_arch(), _cheap(space)

    def refused(*args: str, match: str) -> None:
        before = sorted(p.name for p in tmp_path.rglob("*"))
        code, stdout, err = run_cli(monkeypatch, capsys, *args)
        assert code == 2 and err.strip().count("\n") == 0 and match in err, err
        assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written

    def write(name: str, d: dict) -> str:
        (tmp_path / name).write_text(json.dumps(d))
        return str(tmp_path / name)

    out = str(tmp_path / "out")
    sup = ("--supernet", str(files / "supernet.pt"))
    two = {"big": {"choices": base}, "small": {"choices": cheap}}
    gap = write("gap.json", _schedule(two, [(0, 1, "big"), (2, STEPS, "small")]))
    refused("export", out, "--schedule", gap, *sup, match="segments do not cover the loop: a gap at step 1")
    short = write("short.json", _schedule(two, [(0, 1, "big"), (1, 3, "small")]))
    refused("export", out, "--schedule", short, *sup, match="they end at step 3, the loop has 4 steps")
    unknown = write("unknown.json", _schedule(two, [(0, 1, "big"), (1, STEPS, "tiny")]))
    refused("export", out, "--schedule", unknown, *sup, match="names subnet 'tiny', not one of its subnets")
    good = write("good.json", _schedule(two, [(0, 1, "big"), (1, STEPS, "small")]))
    refused("export", out, "--schedule", good, match="have no weights: give --supernet FILE")
    # a deployment with only the base subnet, then schedules it cannot run
    single = write("single.json", _schedule({"big": {"choices": base}}, [(0, STEPS, "big")]))
    code, _, err = run_cli(monkeypatch, capsys, "export", out, "--schedule", single, *sup, "--no-verify")
    assert code in (0, None), err
    bench = ("bench", out, "--threads", "1", "--image", "random", "--rounds", "1", "--no-psnr")
    refused(*bench, "--schedule", good, match="schedule names subnet 'small'")
    refused(*bench, "--sample-steps", "5", match="built for a loop of 4 steps, not 5")
    refused(*bench, "--schedule", gap, match="segments do not cover the loop")
    refused(*bench, "--loop", "device", match="runs its sampler on the host")
