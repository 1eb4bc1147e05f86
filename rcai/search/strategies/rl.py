"""REINFORCE (Williams 1992) over a factorised policy: independent softmax logits per slot (nested
slots too; only active slots are drawn and updated), the MNAS controller without its RNN. Options:
`StrategyConfig.rl` (reward form, γ, α, the policy's lr).

Reward forms of the seeds, for accuracy `Acc` and latency `Lat` under budget τ:
  hard    Acc · 1{Lat ≤ τ}
  soft    Acc · (Lat/τ)^γ          (MNAS; γ = -0.07)
  linear  α·Acc + (1−α)·(τ − Lat)/τ (MONAS; the latency term in units of the budget)
The estimators' scores have arbitrary scales and signs (log-determinants, dB), so Acc is the score's
rank among all scores evaluated so far (in [0, 1]; ties half), which the forms were written for.
A sample over the budget is never evaluated (journaled as rejected): its reward is the form's at
Acc = 0 minus the overshoot (Lat/τ − 1), so the policy learns where the budget lies even under the
hard form (whose reward is 0 for every such sample). Baseline: an exponential moving average of the reward (0.9)."""
from __future__ import annotations

import bisect
import math

from ...errors import RcaiError
from ...registry import Registry
from .base import STRATEGIES, SampledStrategy

REWARDS: Registry = Registry("reward form")
REWARDS.add("hard", lambda acc, lat, tau, c: acc * (lat <= tau))
REWARDS.add("soft", lambda acc, lat, tau, c: acc * (lat / tau) ** c.gamma)
REWARDS.add("linear", lambda acc, lat, tau, c: c.alpha * acc + (1 - c.alpha) * (tau - lat) / tau)


@STRATEGIES.register("rl")
class Reinforce(SampledStrategy):
    name = "rl"

    def run(self, problem, session, rng) -> None:
        reward_of = REWARDS.get(self.cfg.rl.reward)
        if problem.budget_ms is None and self.cfg.rl.reward != "hard":
            raise RcaiError(f"reward {self.cfg.rl.reward!r} needs a latency budget (τ)")
        tau = problem.budget_ms or math.inf
        logits = {s.path: {n: 0.0 for n in s.choices} for s in problem.space.all_slots()}
        seen: list[float] = []  # sorted scores so far
        baseline = None
        while True:
            arch = problem.space.pick(lambda s: _draw(logits[s.path], rng))
            if problem.feasible(arch):
                score = session.evaluate(arch)
                bisect.insort(seen, score)
                acc = (bisect.bisect_left(seen, score) + bisect.bisect_right(seen, score) - 1) / 2 / max(len(seen) - 1, 1)
            else:
                session.reject(arch)
                acc = 0.0
            lat = problem.loop_ms(arch)
            r = reward_of(acc, lat, tau, self.cfg.rl) - max(lat / tau - 1, 0.0)
            baseline = r if baseline is None else 0.9 * baseline + 0.1 * r
            adv = r - baseline
            for path, chosen in arch.items():  # d log softmax / d logit = 1{chosen} - p
                probs = _softmax(logits[path])
                for n in logits[path]:
                    logits[path][n] += self.cfg.rl.lr * adv * ((n == chosen) - probs[n])


def _softmax(lg: dict[str, float]) -> dict[str, float]:
    m = max(lg.values())
    e = {n: math.exp(v - m) for n, v in lg.items()}
    z = sum(e.values())
    return {n: v / z for n, v in e.items()}


def _draw(lg: dict[str, float], rng) -> str:
    names = list(lg)
    p = _softmax(lg)
    return rng.choices(names, weights=[p[n] for n in names])[0]
