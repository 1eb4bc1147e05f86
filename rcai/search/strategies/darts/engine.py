"""The report's bilevel search, step-alternating (first-order DARTS): a model engine trains the
network weights on the train split, an architecture engine trains only alpha on the validation
split with loss = the preset's diffusion loss + latency penalty (+ FLOPs term). The temperature follows eq. 8 per step.

Everything runs on the training device (`--train-device`, `--train-precision`: rcai/train/device.py):
the supernet, both optimizers, the batches (drawn on the CPU, the same everywhere) and, in bf16, the
forward passes under autocast; checkpoints hold CPU tensors, so a search resumes on another device.

Data-parallel with torch.distributed (gloo on CPUs, NCCL with one GPU per rank, cuda:LOCAL_RANK):
gradients of both engines are averaged across ranks by all-reduce, so every rank applies the same
update and alpha stays identical; rank 0 broadcasts the initial state and, every `sync_every` steps,
re-broadcasts alpha as a guard against floating-point divergence (ranks drifting apart).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ....cost.expected import expected_cost
from ....cost.model import OpCostModel
from ....diffusion import NoiseSchedule, preset_loss
from ....space.extract import argmax_arch
from ....model.mixed import TanhTemperature, get_softmax
from ....model.unet import UNet
from ....space.space import SearchSpace
from ....train.batches import BatchStream
from ....train.device import TrainDevice, resolve_precision
from ....train.distributed import average_grads, broadcast_, rank_device, world
from ....train.rundir import seed_everything
from ....train.setup import schedule_of, splits_of
from ...config import DartsOptions
from ...penalty import DUAL, SIGNED_MU, get_penalty
from ..base import Problem, StrategyConfig


def _requires_grad(params: list[torch.nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


@dataclass
class Bilevel:
    """State of one search: the supernet, both optimizers, both data streams."""

    cfg: DartsOptions  # StrategyConfig.darts
    supernet: UNet
    cost: OpCostModel
    schedule: NoiseSchedule
    train_stream: BatchStream
    val_stream: BatchStream
    base_loop_ms: float
    base_flops: float
    budget_ms: float | None  # Problem.budget_ms
    steps_per_sample: int
    dev: TrainDevice = field(default_factory=lambda: TrainDevice(torch.device("cpu"), "fp32"))

    def __post_init__(self) -> None:
        self.supernet.to(self.dev.device)
        self.forward = self.dev.forward(self.supernet)  # the network in the training precision, fp32 out
        self.space = SearchSpace.of(self.supernet.preset)
        self.weights = self.supernet.weight_parameters()
        self.alphas = self.supernet.arch_parameters()
        self.mixed = self.supernet.mixed_ops()
        self.opt_w = torch.optim.Adam(self.weights, lr=self.cfg.lr_weights)
        self.opt_a = torch.optim.Adam(self.alphas, lr=self.cfg.lr_alpha)
        self.temperature = TanhTemperature(self.cfg.tau_max, self.cfg.tau_min, width=self.cfg.steps)
        self.penalty = get_penalty(self.penalty_name)
        self.supernet.set_softmax(self.cfg.softmax)
        self.score_function = getattr(get_softmax(self.cfg.softmax), "score_function", False)
        # Scales that make the two terms of the architecture loss commensurate (see arch_step).
        self.data_ref = 0.0  # running mean of the data loss over the warm-up, then frozen
        self.mu = 0.0  # budget multiplier (dual variable), adapted every alpha step
        self.kappa = 0.0  # gradient scale of the cost term, measured at the first alpha step
        broadcast_(list(self.supernet.state_dict().values()))

    @property
    def penalty_name(self) -> str:
        return self.cfg.penalty_for(self.budget_ms)

    # -- the two engines ---------------------------------------------------------------------
    def batch(self, stream: BatchStream) -> list[torch.Tensor]:
        """The stream's next (lr_up, hr), drawn on the CPU, on the training device."""
        return [x.to(self.dev.device, non_blocking=True) for x in stream.next()]

    def weight_step(self) -> float:
        _requires_grad(self.alphas, False)
        _requires_grad(self.weights, True)
        loss = preset_loss(self.forward, self.schedule, self.supernet.preset, *self.batch(self.train_stream))
        self.opt_w.zero_grad(set_to_none=True)
        loss.backward()
        average_grads(self.weights)
        self.opt_w.step()
        return loss.item()

    def _track_data_ref(self, step: int, loss: float) -> None:
        """Mean weight-step loss over the second half of the warm-up: the data term's own scale."""
        start = self.cfg.warmup_steps // 2
        if start <= step < self.cfg.warmup_steps:
            n = step - start
            self.data_ref = (self.data_ref * n + loss) / (n + 1)

    def expected_loop_cost(self, under_alpha: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """E[latency of the whole loop] (ms) and E[FLOPs per step], from the last forward's weights
        (or under softmax(alpha), see expected_cost)."""
        e = expected_cost(self.supernet, self.cost.op_metric, ("latency_ms", "flops"), under_alpha)
        loop = (self.cost.overhead_ms + e["latency_ms"]) * self.steps_per_sample
        return loop.float(), e["flops"].float()

    def arch_step(self) -> dict[str, float]:
        """One alpha step on  data / data_ref + penalty(E[loop]).

        data_ref (the data loss at the end of the warm-up) makes the data term ~1, as the latency
        term is (E[loop] relative to the base or the budget). With a budget, E[loop] is taken under
        softmax(alpha) and the penalty is a hinge weighted by kappa * mu: kappa is the ratio of the two
        terms' alpha-gradients at the first alpha step (so mu = 1 pulls as hard as the data), and mu
        is a dual variable that starts at 0, grows while E[loop] is over the budget and shrinks while it
        is under (dual ascent, capped at mu_max). The cost then
        pulls only as hard as it takes to hold the budget, and the data decides which ops keep it:
        at the equilibrium each slot trades quality against milliseconds at one price. (A constant
        pull instead collapses every slot to its cheapest op long before the weights have learnt
        which ops matter.) The exact knapsack at the end turns that ranking into a subnet. With the
        "target" penalty mu may go negative: below the budget the cost term then pays for latency, so
        the budget is spent where the data says it helps most instead of being left unused."""
        _requires_grad(self.weights, False)
        _requires_grad(self.alphas, True)
        for m in self.mixed:  # single path: a nested slot the sampled path skips must not keep an old graph's weights
            m.last_weights = None
        data_loss, carrier = self._data_loss()
        data_term = self.cfg.data_weight * carrier / (self.data_ref if self.data_ref > 0 else 1.0)
        budget = self.budget_ms
        if budget and self.penalty_name in DUAL:
            lat, flops = self.expected_loop_cost(under_alpha=True)
            if self.kappa == 0.0:
                self.kappa = self._gradient_ratio(data_term, lat / budget)
            floor = -self.cfg.mu_max if self.penalty_name in SIGNED_MU else 0.0
            self.mu = min(max(self.mu + self.cfg.mu_rate * (lat.item() - budget) / budget, floor), self.cfg.mu_max)
            lam = self.cfg.lambda_latency * self.kappa * self.mu
        else:
            lat, flops = self.expected_loop_cost()
            lam = self.cfg.lambda_latency
        loss = self.penalty(data_term, lat, self.base_loop_ms, budget, lam)
        if self.cfg.lambda_flops:
            loss = loss + self.cfg.lambda_flops * flops / self.base_flops
        self.opt_a.zero_grad(set_to_none=True)
        loss.backward()
        average_grads(self.alphas)
        self.opt_a.step()
        _requires_grad(self.weights, True)
        return {"loss_data": data_loss.item(), "loss_arch": loss.item(), "expected_loop_ms": lat.item(), "expected_flops": flops.item(), "mu": self.mu, "kappa": self.kappa}

    def _data_loss(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The validation loss and the term whose alpha-gradient carries it. Relaxed and straight-through
        weights: the loss itself. A score-function sampler ("paired"): two paths drawn from softmax(alpha)
        run on the same batch, noise levels and noise, and the surrogate
        loss + (L_a - L_b)(log p(a) - log p(b)) / 2 has the leave-one-out REINFORCE gradient, unbiased for
        the expected loss; pairing cancels the batch-to-batch noise that dwarfs op differences."""
        batch = self.batch(self.val_stream)
        if not self.score_function:
            loss = preset_loss(self.forward, self.schedule, self.supernet.preset, *batch)
            return loss, loss
        seed = int(torch.randint(0, 2**62, (1,)))
        losses, logps = [], []
        for _ in range(2):
            for m in self.mixed:
                m.last_weights = None
            with torch.no_grad():
                losses.append(preset_loss(self.forward, self.schedule, self.supernet.preset, *batch, generator=self.dev.generator().manual_seed(seed)))
            logps.append(sum(torch.log_softmax(m.alpha, 0)[m.last_choice] for m in self.mixed if m.last_weights is not None))
        loss = (losses[0] + losses[1]) / 2
        return loss, loss + (losses[0] - losses[1]) * (logps[0] - logps[1]) / 2

    def _gradient_ratio(self, data_term: torch.Tensor, rel_lat: torch.Tensor) -> float:
        """|d data / d alpha| / |d (E[loop]/budget) / d alpha| at the first alpha step: the scale that
        makes the cost term's pull equal to the data term's at mu = 1."""
        gd = torch.autograd.grad(data_term, self.alphas, retain_graph=True, allow_unused=True)
        gc = torch.autograd.grad(rel_lat, self.alphas, retain_graph=True, allow_unused=True)
        norm = lambda gs: math.sqrt(sum(float((g.double() ** 2).sum()) for g in gs if g is not None))  # noqa: E731
        return norm(gd) / max(norm(gc), 1e-12)

    def step(self, step: int, sync_every: int = 25) -> dict[str, Any]:
        tau = self.temperature(step)
        self.supernet.set_temperature(tau)
        rec: dict[str, Any] = {"step": step + 1, "tau": tau, "loss_weights": self.weight_step()}
        self._track_data_ref(step, rec["loss_weights"])
        if step >= self.cfg.warmup_steps:
            rec.update(self.arch_step())
        if (step + 1) % sync_every == 0:
            broadcast_([a.data for a in self.alphas])
        return rec

    # -- what the logs show ------------------------------------------------------------------
    def argmax_costs(self) -> dict[str, Any]:
        """The current argmax subnet's table latency (whole loop) and FLOPs (report Fig. 5.4)."""
        arch = argmax_arch(self.supernet, self.space)
        c = self.cost.estimate(arch, self.steps_per_sample)
        return {"subnet_loop_ms": c.loop_ms, "subnet_flops": c.flops, "alpha_entropy": self.alpha_entropy()}

    def alpha_entropy(self) -> float:
        """Mean entropy (nats) of softmax(alpha) over slots: log(k) at start, -> 0 as choices firm up."""
        ents = [float(-(torch.softmax(a.detach(), 0) * torch.log_softmax(a.detach(), 0)).sum()) for a in self.alphas]
        return sum(ents) / max(len(ents), 1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "supernet": self.supernet.state_dict(),
            "opt_w": self.opt_w.state_dict(),
            "opt_a": self.opt_a.state_dict(),
            "train_stream": self.train_stream.state_dict(),
            "val_stream": self.val_stream.state_dict(),
            "scales": {"data_ref": self.data_ref, "mu": self.mu, "kappa": self.kappa},
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.supernet.load_state_dict(s["supernet"])
        self.opt_w.load_state_dict(s["opt_w"])
        self.opt_a.load_state_dict(s["opt_a"])
        self.train_stream.load_state_dict(s["train_stream"])
        self.val_stream.load_state_dict(s["val_stream"])
        self.data_ref, self.mu, self.kappa = (float(s["scales"][k]) for k in ("data_ref", "mu", "kappa"))


def build_bilevel(cfg: StrategyConfig, problem: Problem) -> Bilevel:
    """The engine of a search of `problem` (its space's preset, per-op cost table, budget and sampling
    steps), with the config's seed, data folder and own options (`cfg.darts`)."""
    rank, _ = world()
    preset, o, table, S = problem.space.preset, cfg.darts, problem.cost, problem.steps
    seed_everything(cfg.seed)  # identical init on every rank (and broadcast from rank 0 anyway)
    supernet = UNet(preset, softmax=o.softmax)
    splits = splits_of(preset, cfg.proxy_config.data_dir, cfg.seed, o.batch_size)
    val = splits.val
    val.random = val.augment = True  # the architecture engine sees random crops of the val images
    base = table.estimate(table.space.base_arch(), S)
    device = rank_device(o.train_device)
    dev = TrainDevice(device, resolve_precision(o.train_precision, device))
    torch.manual_seed(cfg.seed + 1000 * rank)  # ranks differ in data and Gumbel noise only
    return Bilevel(
        o, supernet, table, schedule_of(preset),
        BatchStream(splits.train, o.batch_size, cfg.seed + 1000 * rank),
        BatchStream(val, o.batch_size, cfg.seed + 1 + 1000 * rank),
        base_loop_ms=base.loop_ms, base_flops=base.flops, budget_ms=problem.budget_ms, steps_per_sample=S, dev=dev,
    )
