"""The one-shot supernet (rcai/oneshot, rcai/model/oneshot.py, --strategy oneshot): extraction is exact
in both weight-sharing modes, training resumes after SIGKILL to the uninterrupted result, inherited
evaluation equals the extracted subnet's, the search under a table and a budget, export and bench of
its pick, and every refusal (one line, exit 2, nothing written). Real runs on the micro preset."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import run_cli
from rcai.cost.profile import ProfileConfig, profile_ops
from rcai.targets import TargetSpec
from rcai.model.oneshot import SHARING, set_path
from rcai.oneshot.config import SupernetConfig
from rcai.oneshot.inherited import collect, crops, fit_beside, inherited_quality, spread_archs
from rcai.oneshot.net import Supernet, build_supernet
from rcai.oneshot.predictor import SlotEffects
from rcai.oneshot.train import train_supernet
from rcai.space.space import SearchSpace
from rcai.targets import MeasureConfig
from rcai.train.quality import gain
from rcai.train.setup import schedule_of

FAST = MeasureConfig(warmup=1, min_repeats=3, max_repeats=5, chunk=3, max_seconds=0.5)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "cpu-micro.csv"
    profile_ops(ProfileConfig(preset="micro", target=TargetSpec(threads=1), measure=FAST), path, progress=False)
    return str(path)


def _cfg(table, **kw) -> SupernetConfig:
    return SupernetConfig(**{**dict(preset="micro", cost_table=table, steps=6, batch_size=2, eval_at=(3, 6), ckpt_every=2, device="cpu"), **kw})


@pytest.fixture(scope="module")
def trained(table, tmp_path_factory):
    """A micro supernet (shared weights) trained 6 steps, its predictor fitted on 16 subnets."""
    out = tmp_path_factory.mktemp("sn") / "run"
    torch.set_num_threads(1)
    train_supernet(_cfg(table), out, progress=False)
    fitted = fit_beside(out / "supernet.pt", 16, device="cpu")
    assert fitted["n"] == 16 and (out / "predictor.json").exists()
    return out


def _perturbed(micro, sharing: str, seed: int = 0):
    torch.manual_seed(seed)
    net = build_supernet(micro, sharing)
    with torch.no_grad():
        for p in net.parameters():  # the head starts at zero: move every weight so outputs differ
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


@pytest.mark.parametrize("sharing", SHARING)
def test_an_extracted_subnet_computes_the_supernets_path(micro, sharing):
    net = _perturbed(micro, sharing)
    sn = Supernet(net, sharing)
    space = SearchSpace.of(micro)
    x, level = torch.randn(2, 6, micro.hr_size, micro.hr_size), torch.rand(2, 1)
    rng = random.Random(0)
    outs = []
    for _ in range(4):
        arch = space.random_arch(rng)
        set_path(net, arch)
        with torch.no_grad():
            ref = net(x, level)
            sub, spec = sn.subnet(arch)
            assert torch.equal(sub(x, level), ref)
        assert set(sub.state_dict()) == set(spec.build().state_dict())  # a plain subnet's parameters, no more, no fewer
        outs.append(ref)
    assert not torch.equal(outs[0], outs[1])  # different paths compute different things


def test_shared_ops_nest_in_one_kernel(micro):
    net = _perturbed(micro, "shared")
    sn = Supernet(net, "shared")
    space = SearchSpace.of(micro)
    slot = next(s for s in space.all_slots() if "conv5x5" in s.choices).path
    base = space.base_arch()
    w = {}
    for op in ("conv5x5", "conv3x3", "narrow3x3"):
        sub, _ = sn.subnet({**base, slot: op})
        w[op] = {k.split(f"{slot}.ops.{op}.", 1)[1]: v for k, v in sub.state_dict().items() if k.startswith(f"{slot}.ops.{op}.")}
    k5, k3 = w["conv5x5"]["2.weight"], w["conv3x3"]["2.weight"]
    assert torch.equal(k3, k5[:, :, 1:4, 1:4])  # conv3x3 = the centre of conv5x5
    mid = w["narrow3x3"]["2.weight"].shape[0]
    assert torch.equal(w["narrow3x3"]["2.weight"], k3[:mid]) and torch.equal(w["narrow3x3"]["2.bias"], w["conv3x3"]["2.bias"][:mid])
    assert torch.equal(w["conv5x5"]["0.weight"], w["narrow3x3"]["0.weight"])  # one GroupNorm for the slot
    independent = Supernet(_perturbed(micro, "independent"), "independent")
    a, _ = independent.subnet({**base, slot: "conv5x5"})
    b, _ = independent.subnet({**base, slot: "conv3x3"})
    assert not torch.equal(b.state_dict()[f"{slot}.ops.conv3x3.2.weight"], a.state_dict()[f"{slot}.ops.conv5x5.2.weight"][:, :, 1:4, 1:4])


def test_inherited_quality_is_the_extracted_subnets_quality(trained, micro):
    sn = Supernet.load(trained / "supernet.pt", micro)
    arch = SearchSpace.of(micro).random_arch(random.Random(3))
    ev = crops(sn, "eval")
    sub, _ = sn.subnet(arch)
    assert inherited_quality(sn, arch, ev)["gain_db"] == gain(sub, ev, schedule_of(micro))["gain_db"]
    code = subprocess.run([sys.executable, "-m", "rcai", "supernet", "eval", "--supernet", str(trained / "supernet.pt"), "--subnet",
                           str(_spec_file(micro, arch, trained.parent)), "--json"], cwd=ROOT, capture_output=True, text=True)
    assert code.returncode == 0, code.stderr
    assert json.loads(code.stdout)["gain_db"] == inherited_quality(sn, arch, ev)["gain_db"]


def _spec_file(preset, arch, folder: Path) -> Path:
    from rcai.space.subnet import SubnetSpec

    return SubnetSpec(preset, arch).save(folder / "subnet.json")


def test_training_logs_its_paths_and_saves_the_ema(trained):
    log = [json.loads(x) for x in (trained / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "largest" in r] == [3, 6]  # inherited quality of largest, base, smallest at eval_at
    losses = [r for r in log if "losses" in r]
    assert losses and all(len(r["losses"]) == 4 for r in losses)  # 4 paths a step
    info = Supernet.load(trained / "supernet.pt").info
    assert info["steps"] == 6 and info["cpu_s"] > 0 and info["largest"] != info["smallest"]


def test_supernet_training_resumes_after_sigkill_to_the_uninterrupted_result(table, tmp_path):
    args = [sys.executable, "-m", "rcai", "supernet", "train", "--preset", "micro", "--cost-table", table, "--steps", "40", "--batch-size", "2",
            "--predictor-subnets", "0", "--train-device", "cpu", "--threads", "1", "--json"]
    ref = tmp_path / "ref"
    assert subprocess.run(args + ["--out", str(ref)], cwd=ROOT, capture_output=True).returncode == 0
    cut = tmp_path / "cut"
    proc = subprocess.Popen(args + ["--out", str(cut)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not (cut / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (cut / "checkpoint.pt").exists() and not (cut / "supernet.pt").exists()  # killed after its first checkpoint (step 25 of 40), before the end
    done = subprocess.run(args + ["--out", str(cut), "--resume"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a, b = torch.load(ref / "supernet.pt", weights_only=True), torch.load(cut / "supernet.pt", weights_only=True)
    assert a["state"].keys() == b["state"].keys() and all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
    def log(run):
        return [{k: v for k, v in json.loads(x).items() if k != "step_s"} for x in (run / "log.jsonl").read_text().splitlines()]

    assert log(cut) == log(ref)  # the same lines, none twice


def test_each_sampling_trains_the_paths_it_names(table, micro):
    from rcai.oneshot.train import sandwich_ends, step_paths

    space = SearchSpace.of(micro)
    largest, smallest = sandwich_ends(_cfg(table))
    sandwich = step_paths(space, largest, smallest, 4, 0, 7, "sandwich")
    assert sandwich[:2] == [largest, smallest] and len(sandwich) == 4
    uniform = step_paths(space, largest, smallest, 4, 0, 7, "uniform")
    assert len(uniform) == 4 and uniform == step_paths(space, largest, smallest, 4, 0, 7, "uniform")  # drawn from (seed, step)
    fair = step_paths(space, largest, smallest, 5, 0, 7, "fair")
    for slot in space.slots:  # top-level slots: every path has them; each of the 5 choices once
        assert sorted(a[slot.path] for a in fair) == sorted(slot.choices) or len(slot.choices) != 5
    with pytest.raises(Exception, match="sandwich"):
        _cfg(table, sampling="uniform", distill=0.5)


def test_predictor_recovers_per_slot_effects(micro):
    space = SearchSpace.of(micro)
    rng = random.Random(0)
    truth = {s.path: {c: (0.0 if i == 0 else rng.uniform(-0.3, 0.3)) for i, c in enumerate(s.choices)} for s in space.all_slots()}
    archs = spread_archs(space, 120, seed=1)
    model = SlotEffects.fit(space, [(a, 1.0 + sum(truth[s][c] for s, c in a.items())) for a in archs], ridge=1e-6)
    for a in spread_archs(space, 10, seed=2):
        assert model(a) == pytest.approx(1.0 + sum(truth[s][c] for s, c in a.items()), abs=1e-3)
    assert model.loo_spearman > 0.99


def test_spread_draws_cover_the_latency_range(micro):
    archs = spread_archs(SearchSpace.of(micro), 60, seed=0)
    skips = [sum(c == "skip" for c in a.values()) / len(a) for a in archs]
    assert len({json.dumps(sorted(a.items())) for a in archs}) == 60 and min(skips) < 0.1 and max(skips) > 0.6


def test_collect_resumes_its_evaluations(trained, micro, tmp_path):
    import shutil

    shutil.copy(trained / "supernet.pt", tmp_path / "supernet.pt")
    sn = Supernet.load(tmp_path / "supernet.pt", micro)
    first = collect(sn, tmp_path, 4, seed=5)
    lines = (tmp_path / "inherited.jsonl").read_text().splitlines()
    (tmp_path / "inherited.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:9])  # a kill mid-line
    again = collect(sn, tmp_path, 4, seed=5)
    assert [r["gain_db"] for r in again] == [r["gain_db"] for r in first]


def test_search_export_and_bench_of_the_pick(trained, table, micro, tmp_path, monkeypatch, capsys):
    from rcai.cost.load import load_cost_model

    cost = load_cost_model(table, micro)
    space = SearchSpace.of(micro)
    cheap, _ = space.extreme_arch(lambda sp: cost.op_metric(sp, "latency_ms"), largest=False)
    lo, hi = cost.estimate(cheap, 10).loop_ms, cost.estimate(space.base_arch(), 10).loop_ms
    budget = (lo + hi) / 2
    out = tmp_path / "pick"
    code, stdout, err = run_cli(monkeypatch, capsys, "search", "--strategy", "oneshot", "--preset", "micro", "--supernet", str(trained / "supernet.pt"),
                                "--cost-table", table, "--latency-budget-ms", str(budget), "--sample-steps", "10", "--candidates", "3",
                                "--out", str(out), "--json")
    assert code is None or code == 0, err
    r = json.loads(stdout)
    assert r["strategy"] == "oneshot" and r["table"]["loop_ms"] <= budget and r["evaluations"] == 3
    sn = Supernet.load(trained / "supernet.pt", micro)
    sub, _ = sn.subnet(r["choices"])
    saved = torch.load(out / "subnet.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in sub.state_dict().items())  # the pick's weights come from the supernet
    onnx = tmp_path / "pick.onnx"
    code, _, err = run_cli(monkeypatch, capsys, "export", str(onnx), "--run", str(out))
    assert code in (None, 0), err
    code, stdout, err = run_cli(monkeypatch, capsys, "bench", str(onnx), "--sample-steps", "4", "--loops", "1", "--rounds", "1", "--threads", "1",
                                "--cost-table", table, "--json")
    assert code in (None, 0), err
    res = json.loads(stdout)
    assert res["loop_ms"] > 0 and res["estimates"]  # the measured loop beside the table's estimate


def test_the_pick_fine_tunes_from_its_inherited_weights(trained, table, micro, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ft"
    code, stdout, err = run_cli(monkeypatch, capsys, "search", "--strategy", "oneshot", "--preset", "micro", "--supernet", str(trained / "supernet.pt"),
                                "--cost-table", table, "--latency-budget-ms", "1e9", "--sample-steps", "10", "--candidates", "1",
                                "--finetune-steps", "2", "--train-device", "cpu", "--out", str(out), "--json")
    assert code in (None, 0), err
    inherited, tuned = torch.load(out / "inherited.pt", weights_only=True), torch.load(out / "subnet.pt", weights_only=True)
    assert inherited.keys() == tuned.keys() and any(not torch.equal(inherited[k], tuned[k]) for k in inherited)
    assert json.loads(stdout)["finetune"]["train_steps"] == 2


def _refusal(monkeypatch, capsys, out: Path, *args):
    code, _, err = run_cli(monkeypatch, capsys, *args, "--out", str(out))
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert not out.exists()
    return lines[0]


def test_refusals_write_nothing(trained, table, micro, tiny, tmp_path, monkeypatch, capsys):
    sn = str(trained / "supernet.pt")
    search = ["search", "--strategy", "oneshot", "--sample-steps", "10", "--cost-table", table]
    # a supernet of another preset
    other = tmp_path / "tiny" / "supernet.pt"
    other.parent.mkdir()
    Supernet(build_supernet(tiny, "shared"), "shared").save(other)
    assert "not of 'micro'" in _refusal(monkeypatch, capsys, tmp_path / "o1", *search, "--preset", "micro", "--supernet", str(other), "--latency-budget-ms", "1e9")
    # a corrupt supernet file: truncated, another torch file, not a torch file
    data = Path(sn).read_bytes()
    for i, blob in enumerate((data[: len(data) // 2], None, b"not a supernet")):
        bad = tmp_path / f"bad{i}.pt"
        if blob is None:
            torch.save({"weights": torch.zeros(2)}, bad)
        else:
            bad.write_bytes(blob)
        (tmp_path / "predictor.json").write_text((trained / "predictor.json").read_text())
        _refusal(monkeypatch, capsys, tmp_path / f"o2{i}", *search, "--preset", "micro", "--supernet", str(bad), "--latency-budget-ms", "1e9")
    # a cost table of another preset
    tiny_table = str(ROOT / "latency_tables" / "cpu-tiny.csv")
    _refusal(monkeypatch, capsys, tmp_path / "o3", "search", "--strategy", "oneshot", "--sample-steps", "10", "--cost-table", tiny_table,
             "--preset", "micro", "--supernet", sn, "--latency-budget-ms", "1e9")
    # a budget below the cheapest subnet's loop
    assert "below the cheapest" in _refusal(monkeypatch, capsys, tmp_path / "o4", *search, "--preset", "micro", "--supernet", sn, "--latency-budget-ms", "0.001")
    # no supernet, no predictor beside it, an option oneshot does not read
    _refusal(monkeypatch, capsys, tmp_path / "o5", *search, "--preset", "micro", "--latency-budget-ms", "1e9")
    lone = tmp_path / "lone" / "supernet.pt"
    lone.parent.mkdir()
    lone.write_bytes(data)
    assert "predictor" in _refusal(monkeypatch, capsys, tmp_path / "o6", *search, "--preset", "micro", "--supernet", str(lone), "--latency-budget-ms", "1e9")
    _refusal(monkeypatch, capsys, tmp_path / "o7", *search, "--preset", "micro", "--supernet", sn, "--latency-budget-ms", "1e9", "--rung", "3")
    # supernet train: another preset's table, a bad sharing, a bad distillation weight, an image folder without images
    train = ["supernet", "train", "--preset", "micro", "--steps", "2", "--batch-size", "2", "--train-device", "cpu"]
    _refusal(monkeypatch, capsys, tmp_path / "t1", *train, "--cost-table", tiny_table)
    _refusal(monkeypatch, capsys, tmp_path / "t2", *train, "--cost-table", table, "--sharing", "partial")
    _refusal(monkeypatch, capsys, tmp_path / "t3", *train, "--cost-table", table, "--distill", "1.5")
    empty = tmp_path / "empty"
    empty.mkdir()
    _refusal(monkeypatch, capsys, tmp_path / "t4", *train, "--cost-table", table, "--image-dir", str(empty))
