import json
import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from rcai.cost.profile import ProfileConfig, profile_ops
from rcai.targets import TargetSpec
from rcai.errors import RcaiError
from rcai.model.mixed import list_softmax
from rcai.search.strategies.darts.engine import Bilevel, build_bilevel
from rcai.search.strategies.base import StrategyConfig
from rcai.search.strategies.darts.choose import choose_subnet
from rcai.search.strategies.run import build_problem
from rcai.search.select import alpha_logprobs, best_under_budget
from rcai.targets import MeasureConfig
from rcai.train.evaluate import EvalConfig

from helpers import darts_config, run_darts  # noqa: E402

FAST = MeasureConfig(warmup=1, min_repeats=3, max_repeats=5, chunk=3, max_seconds=0.5)


@pytest.fixture(scope="module")
def micro_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "cpu-micro.csv"
    profile_ops(ProfileConfig(preset="micro", target=TargetSpec(threads=1), measure=FAST), path, progress=False)
    return str(path)


def _cfg(table, **kw):
    base = dict(preset="micro", cost_table=table, steps=6, warmup_steps=0, batch_size=2, finetune_steps=2, steps_per_sample=10,
                ckpt_every=3, log_every=1, eval=EvalConfig(steps=2, max_images=1))
    return darts_config(**{**base, **kw})


def _engine(cfg) -> Bilevel:
    return build_bilevel(cfg, build_problem(cfg))


def _snapshot(params):
    return [p.detach().clone() for p in params]


def _changed(before, params):
    return [not torch.equal(b, p.detach()) for b, p in zip(before, params)]


def test_weight_step_moves_only_weights_and_arch_step_only_alpha(micro_table):
    eng = _engine(_cfg(micro_table))
    w0, a0 = _snapshot(eng.weights), _snapshot(eng.alphas)
    eng.weight_step()
    assert any(_changed(w0, eng.weights)) and not any(_changed(a0, eng.alphas))
    w1, a1 = _snapshot(eng.weights), _snapshot(eng.alphas)
    eng.arch_step()
    assert not any(_changed(w1, eng.weights)) and all(_changed(a1, eng.alphas))


@pytest.mark.parametrize("softmax", list_softmax())
def test_bilevel_steps_run_with_every_softmax_variant(micro_table, softmax):
    """gdas runs one path: a nested slot its sampled parent skips must not keep a freed graph's weights."""
    eng = _engine(_cfg(micro_table, softmax=softmax, latency_budget_ms=1e9))
    recs = [eng.step(step) for step in range(20)]
    assert all(math.isfinite(r["loss_arch"]) and r["mu"] >= 0 for r in recs)


def test_paired_estimator_compares_two_paths_on_the_same_noise(micro_table):
    """The paired (leave-one-out REINFORCE) data term: its alpha-gradient is
    (L_a - L_b)(grad log p(a) - grad log p(b)) / 2 with both losses on the same batch and noise, so two
    identical paths give exactly zero; different paths give a non-zero gradient; seeded = repeatable."""
    eng = _engine(_cfg(micro_table, softmax="paired"))
    for a in eng.alphas:  # every slot certain of its first op: both draws take the same path
        a.data.fill_(-1e4)
        a.data[0] = 0.0
    loss, carrier = eng._data_loss()
    grads = torch.autograd.grad(carrier, eng.alphas, allow_unused=True)
    assert all(g is None or not g.any() for g in grads) and torch.isfinite(loss)
    for a in eng.alphas:
        a.data.zero_()
    for _ in range(3):  # the output conv starts at zero: until it moves, every path predicts the same
        eng.weight_step()
    for a in eng.alphas:
        a.requires_grad_(True)
    seen, stream = [], eng.val_stream.state_dict()
    for seed in (3, 3):
        eng.val_stream.load_state_dict(stream)
        torch.manual_seed(seed)
        _, carrier = eng._data_loss()
        seen.append([g if g is not None else torch.zeros(1) for g in torch.autograd.grad(carrier, eng.alphas, allow_unused=True)])
    assert any(g.abs().sum() > 0 for g in seen[0])
    assert all(torch.equal(x, y) for x, y in zip(*seen))


def test_cost_term_alone_moves_alpha_toward_cheaper_ops(micro_table):
    eng = _engine(_cfg(micro_table, data_weight=0.0, lr_alpha=0.05, lambda_latency=1.0))
    before = eng.expected_loop_cost()[0].item()
    for _ in range(30):
        eng.arch_step()
    with torch.no_grad():
        eng.supernet(torch.zeros(1, 6, 32, 32), torch.ones(1, 1))  # refresh last weights
    after = eng.expected_loop_cost()[0].item()
    assert after < 0.8 * before
    # the cheapest GN-conv candidate ("skip") gained probability in every GN-conv slot
    for m in eng.supernet.mixed_ops():
        if "skip" in m.choices:
            p = torch.softmax(m.alpha.detach(), 0)
            assert p[m.choices.index("skip")] > p[m.choices.index("conv5x5")]


@pytest.mark.parametrize("penalty, rises", [("budget", False), ("target", True)])
def test_target_penalty_pushes_up_to_a_budget_the_search_is_under(micro_table, penalty, rises):
    """Cost term alone, budget 1.5x the starting E[loop]: the hinge ("budget") leaves alpha where it is
    (mu stays 0), the target penalty's mu goes negative and moves alpha toward dearer ops."""
    eng = _engine(_cfg(micro_table, data_weight=0.0, lr_alpha=0.05))
    with torch.no_grad():
        eng.supernet(torch.zeros(1, 6, 32, 32), torch.ones(1, 1))
    before = eng.expected_loop_cost(under_alpha=True)[0].item()
    new = _cfg(micro_table, data_weight=0.0, lr_alpha=0.05, latency_budget_ms=1.5 * before, penalty=penalty, mu_rate=0.2)
    eng.cfg, eng.budget_ms = new.darts, new.latency_budget_ms
    eng.kappa = 1.0
    for _ in range(30):
        eng.arch_step()
    after = eng.expected_loop_cost(under_alpha=True)[0].item()
    assert (eng.mu < 0) == rises
    assert (after > 1.05 * before) == rises


def test_budget_enforced_by_knapsack_selection(micro_table):
    eng = _engine(_cfg(micro_table))
    with torch.no_grad():  # make the argmax the most expensive subnet: conv5x5 / attention everywhere
        for m in eng.supernet.mixed_ops():
            m.alpha.zero_()
            m.alpha[m.choices.index("conv5x5" if "conv5x5" in m.choices else "attention")] = 3.0
    S = eng.steps_per_sample
    argmax_ms = eng.cost.estimate(eng.space.pick(lambda s: "conv5x5" if "conv5x5" in s.choices else "attention"), S).loop_ms
    budget = 0.8 * argmax_ms
    eng.budget_ms = budget
    res = choose_subnet(eng, None)
    assert res.selection == "budget" and res.estimate.loop_ms <= budget
    assert res.budget_ms == budget and 0.85 <= res.budget_use <= 1.0  # lands close under the budget
    assert any("knapsack" in n for n in res.notes)
    with pytest.raises(RcaiError, match="no subnet meets the latency budget"):
        best_under_budget(eng.space, alpha_logprobs(eng.supernet), lambda sp: eng.cost.op_metric(sp, "latency_ms"), eng.cost.overhead_ms, S, 1e-6)


def _stop_at_first_search_checkpoint(monkeypatch):
    from rcai.search.strategies.darts import runner as run_mod

    class Stop(Exception):
        pass

    orig = run_mod.RunDir.save_checkpoint

    def stop(self, state):
        orig(self, state)
        if state.get("phase") == "search" and state.get("step") == 3:
            raise Stop

    monkeypatch.setattr(run_mod.RunDir, "save_checkpoint", stop)
    return Stop, lambda: monkeypatch.setattr(run_mod.RunDir, "save_checkpoint", orig)


def test_resume_after_interruption_equals_uninterrupted_run(micro_table, tmp_path, monkeypatch):
    cfg = _cfg(micro_table)
    full = run_darts(cfg, tmp_path / "full")
    # interrupted: same run, but stop after the first checkpoint (step 3), then resume
    part = _cfg(micro_table)
    Stop, restore = _stop_at_first_search_checkpoint(monkeypatch)
    with pytest.raises(Stop):
        run_darts(part, tmp_path / "resumed")
    restore()
    resumed = run_darts(part, tmp_path / "resumed", resume=True)
    assert resumed["choices"] == full["choices"]
    a = torch.load(tmp_path / "full" / "supernet.pt")
    b = torch.load(tmp_path / "resumed" / "supernet.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    logs = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs] == sorted({r["step"] for r in logs})  # no duplicate steps
    for name in ("config.json", "subnet.json", "subnet.pt", "metrics.json", "plots/search.png", "log.csv"):
        assert (tmp_path / "resumed" / name).exists()


def test_darts_trains_on_the_train_device_and_resumes_under_another_precision(micro_table, tmp_path, monkeypatch):
    """Issue 31: the bilevel search runs in the training precision; its checkpoint (CPU tensors) resumes
    under another one (started fp32, finished bf16), while any other change of config is still refused."""
    Stop, restore = _stop_at_first_search_checkpoint(monkeypatch)
    with pytest.raises(Stop):
        run_darts(_cfg(micro_table, train_precision="fp32"), tmp_path / "run")
    restore()
    with pytest.raises(RcaiError, match="different config"):
        run_darts(_cfg(micro_table, train_precision="bf16", softmax="gumbel"), tmp_path / "run", resume=True)
    m = run_darts(_cfg(micro_table, train_precision="bf16"), tmp_path / "run", resume=True)
    assert m["precision"] == "bf16" and m["train_device"] == "cpu" and math.isfinite(m["quality"]["gain_db"])
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert all(t.device.type == "cpu" for t in state["engine"]["supernet"].values())
    eng = _engine(_cfg(micro_table, train_precision="bf16"))
    a0 = _snapshot(eng.alphas)
    for step in range(3):
        rec = eng.step(step)
    assert all(_changed(a0, eng.alphas)) and math.isfinite(rec["loss_arch"])  # bf16 forward, fp32 alpha gradients


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here (benchmarks/gpu/run.sh runs this on the GPU machine)")
def test_darts_searches_on_the_gpu_and_resumes_on_the_cpu(micro_table, tmp_path, monkeypatch):
    Stop, restore = _stop_at_first_search_checkpoint(monkeypatch)
    with pytest.raises(Stop):
        run_darts(_cfg(micro_table, train_device="cuda"), tmp_path / "run")
    restore()
    eng = _engine(_cfg(micro_table, train_device="cuda"))
    assert all(p.device.type == "cuda" for p in eng.supernet.parameters())
    m = run_darts(_cfg(micro_table, train_device="cpu"), tmp_path / "run", resume=True)
    assert m["train_device"] == "cpu" and math.isfinite(m["quality"]["gain_db"])


def _ddp_worker(rank, world, port, table, out_dir, softmax):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    import torch.distributed as dist

    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        eng = _engine(_cfg(table, softmax=softmax, steps=8))
        for step in range(8):
            eng.step(step, sync_every=1000)  # no re-broadcast: identity must come from averaged grads
        torch.save([a.detach() for a in eng.alphas], os.path.join(out_dir, f"alpha{rank}.pt"))
        torch.save([w.detach() for w in eng.weights], os.path.join(out_dir, f"weights{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("softmax", ["gumbel", "gdas"])  # gdas: each rank's single path leaves other params without grads
def test_two_process_ddp_keeps_alpha_identical(micro_table, tmp_path, softmax):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, micro_table, str(tmp_path), softmax), nprocs=2, join=True)
    a0, a1 = torch.load(tmp_path / "alpha0.pt"), torch.load(tmp_path / "alpha1.pt")
    assert any(not torch.equal(x, torch.zeros_like(x)) for x in a0)  # alpha did move
    for x, y in zip(a0, a1):
        assert torch.equal(x, y)
    for x, y in zip(torch.load(tmp_path / "weights0.pt"), torch.load(tmp_path / "weights1.pt")):
        assert torch.equal(x, y)


def _strategy_worker(rank, world, port, table, out_dir):
    """One rank of `torchrun -m rcai search --strategy darts`: run_strategy joins the group itself."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    summary = run_darts(_cfg(table, steps=4, finetune_steps=1), out_dir)
    with open(os.path.join(os.path.dirname(out_dir), f"rank{rank}.json"), "w") as f:
        json.dump(summary, f)


def test_darts_under_torchrun_joins_the_group_and_rank_0_alone_writes(micro_table, tmp_path):
    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_strategy_worker, args=(2, port, micro_table, str(tmp_path / "run")), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r1 == {} and r0["strategy"] == "darts" and r0["choices"] == json.loads((tmp_path / "run" / "result.json").read_text())["choices"]
    assert not dist.is_initialized()  # the group was the run's own, and left


def test_a_single_process_strategy_refuses_torchrun(micro_table, tmp_path, monkeypatch):
    from rcai.search.strategies import StrategyConfig
    from rcai.search.strategies.run import run_strategy

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RcaiError, match="runs in one process"):
        run_strategy(StrategyConfig(strategy="random", preset="micro", cost_table=micro_table, proxy="params", steps_per_sample=10), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_default_search_on_tiny_does_not_pick_the_cheapest_subnet(tiny, tmp_path):
    """The default search (single path, cost term scaled to the data term, exact knapsack) on tiny with
    a budget of base / 1.6, shortened to 60 steps (30 of warm-up) to fit the suite: the subnet is not
    the cheapest one and lands within 15% under the budget."""
    from pathlib import Path

    from rcai.cost.model import TableCostModel
    from rcai.cost.table import CostTable

    table_path = Path(__file__).resolve().parents[1] / "latency_tables" / "cpu-tiny.csv"
    table = TableCostModel(tiny, CostTable.load(table_path))
    S = StrategyConfig.steps_per_sample
    budget = table.estimate(table.space.base_arch(), S).loop_ms / 1.6
    cfg = darts_config(preset="tiny", cost_table=str(table_path), latency_budget_ms=budget, steps=60, warmup_steps=30, finetune_steps=1,
                       log_every=10, eval=EvalConfig(steps=1, max_images=1))
    m = run_darts(cfg, tmp_path / "s")
    cheapest, _ = table.space.extreme_arch(lambda sp: table.op_metric(sp, "latency_ms"), largest=False)
    assert m["choices"] != cheapest
    assert 0.85 <= m["search"]["budget_use"] <= 1.0 and not m["search"]["far_under_budget"]
