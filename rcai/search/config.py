"""The search strategies' option groups (`StrategyConfig.darts`, `.halving`, `.evolution`, `.area`, `.rl`, `.oneshot`), saved in
config.json of every search run folder, and the flat keys of earlier releases they replace."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..config import JsonConfig, require_counts
from ..errors import RcaiError
from ..train.evaluate import EvalConfig
from ..train.lr import check_lr_schedule
from ..train.protocol import TrainProtocol


@dataclass(frozen=True)
class DartsOptions(JsonConfig):
    """What only the bilevel (DARTS-style) strategy reads: `StrategyConfig.darts`. Like every strategy
    (rcai/search/strategies/darts/) it searches the Problem built from the shared fields (preset, cost
    table, budget, sampling steps) and reads the seed and data folder from the StrategyConfig."""

    predictor: str | None = None  # GNN predictor: ranks candidates and checks the budget
    softmax: str = "gdas"  # gdas (single path: a supernet step costs a subnet step) | simple | temperature | gumbel
    penalty: str = "auto"  # auto: "budget" with a budget, else "expected" (the report's form)
    lambda_latency: float = 1.0  # on E[loop latency] / base loop latency, or / budget (dimensionless)
    mu_rate: float = 0.05  # budget penalty: its multiplier mu += mu_rate * (E[loop] - budget) / budget per alpha step
    mu_max: float = 2.0  # ... up to this many times the data term's pull (the knapsack enforces the budget exactly)
    lambda_flops: float = 0.0  # on E[FLOPs] / base FLOPs
    data_weight: float = 1.0  # weight of the val loss in the architecture loss (0: cost alone, an ablation)
    steps: int = 450  # bilevel iterations (one weight step, then, after the warm-up, one alpha step each)
    warmup_steps: int = 150  # weight-only steps before alpha moves: the weights learn which ops matter first
    lr_weights: float = 2e-3  # report: 3e-6 at its scale (minutes of CPU here, days of DGX there)
    lr_alpha: float = 3e-2  # report: 3e-5 at its scale; Adam moves alpha ~lr per step, so it must be large enough that
    # E[loop] can reach the budget within the search (3e-3: alpha barely moved, mu saturated and the cost decided)
    tau_max: float = 20.0  # eq. 8
    tau_min: float = 0.08
    batch_size: int = 8
    finetune_steps: int = 200
    finetune_lr_schedule: str = "cosine"  # the fine-tune's lr (lr_weights) schedule; the search's own lr is constant
    ckpt_every: int = 50
    log_every: int = 5
    eval: EvalConfig = field(default_factory=EvalConfig)
    train_device: str = "auto"  # where the supernet, its fine-tune and the evaluation run (rcai/train/device.py)
    train_precision: str = "auto"

    def __post_init__(self) -> None:
        from ..train.device import check_precision, check_train_device

        for name, least in (("steps", 1), ("finetune_steps", 0), ("warmup_steps", 0), ("batch_size", 1), ("ckpt_every", 1), ("log_every", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or v < least:
                raise RcaiError(f"{name} must be a whole number >= {least}, got {v!r}")
        check_lr_schedule(self.finetune_lr_schedule)
        check_train_device(self.train_device)
        check_precision(self.train_precision)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str | None = None):
        return super().from_dict({**d, "eval": EvalConfig.from_dict(d.get("eval", {}), "eval")}, where)

    def penalty_for(self, budget_ms: float | None) -> str:
        """The penalty's name: "auto" is "budget" with a budget, else "expected"."""
        if self.penalty != "auto":
            return self.penalty
        return "budget" if budget_ms else "expected"


@dataclass(frozen=True)
class HalvingOptions(JsonConfig):
    """What only the multi-fidelity strategy reads: `StrategyConfig.halving` (rcai/search/strategies/halving.py).
    Its subnets are trained from scratch with `protocol` and compared at `rungs` steps of it."""

    protocol: TrainProtocol = field(default_factory=TrainProtocol)
    # at 800 steps the ranking of 12 subnets predicts the 1600-step ranking at Spearman 0.81, at 400 at 0.45 (benchmarks/results/signal.md)
    rungs: tuple[int, ...] = (800, 1600)
    eta: int = 2  # keep the best 1/eta at each rung
    initial: int = 8  # candidates of a bracket at its first rung
    brackets: int = 2
    train_seed: int = 0
    fill_tol: float = 0.08  # candidates drawn with a loop in [1 - 2 fill_tol, 1] x the budget
    surrogate_pool: int = 64  # near-budget subnets the surrogate ranks
    jobs: int = 2  # trainings at once
    executor: str = "local"  # local | ray (rcai/search/executors.py)
    ray_address: str | None = None  # ray: None starts a local cluster; "auto" or HOST:PORT joins one
    work_dir: str | None = None  # trainings' folder when the run has no journal
    train_device: str = "auto"  # where the trainings run (rcai/train/device.py)
    train_precision: str = "auto"

    def __post_init__(self) -> None:
        from ..train.device import check_precision, check_train_device

        require_counts({k: getattr(self, k) for k in ("eta", "initial", "brackets", "jobs", "surrogate_pool")})
        check_train_device(self.train_device)
        check_precision(self.train_precision)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str | None = None):
        return super().from_dict({**d, "protocol": TrainProtocol.from_dict(d.get("protocol", {}), "protocol")}, where)


@dataclass(frozen=True)
class BOOptions(JsonConfig):
    """What only the surrogate-driven strategy reads: `StrategyConfig.bo` (rcai/search/strategies/bo.py).
    Its trainings, rungs, promotion rate (eta), training seed, near-budget window and executor are
    halving's (`StrategyConfig.halving`): the two differ only in how candidates are proposed and promoted."""

    trainings: float = 12.0  # training budget, in full trainings of the protocol (the rungs' steps all count)
    initial: int = 4  # candidates of a round at the first rung (then the best 1/eta by the surrogate go on)
    pool: int = 128  # near-budget subnets the acquisition scores each round (plus the surrogate's knapsack optimum and neighbours of the best)
    effect_sd: float = 0.1  # prior sd of an op's effect (dB) without a quality model
    interaction_sd: float = 0.01  # prior sd of a pairwise interaction (dB per unit of count_i x count_j / slots)
    noise_sd: float = 0.05  # one training's noise at the last rung (dB): one subnet's seed sd is 0.052 dB (benchmarks/results/signal.md)
    rung_noise: float = 2.0  # an earlier rung's figure counts as this many times noisier evidence of the last rung's
    warm_start: bool = True  # use the quality model (proxy_config.quality_model) as the prior where the file exists

    def __post_init__(self) -> None:
        require_counts({"initial": self.initial, "pool": self.pool})
        for name in ("trainings", "effect_sd", "interaction_sd", "noise_sd", "rung_noise"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
                raise RcaiError(f"bo.{name} must be a positive finite number, got {v!r}")


@dataclass(frozen=True)
class EvolutionOptions(JsonConfig):
    """What regularized evolution reads, and AREA after its seeding: `StrategyConfig.evolution`."""

    population: int = 16  # population size (aging: the oldest leaves)
    sample_size: int = 4  # tournament size
    crossover: float = 0.0  # probability that a child is a crossover of the two best of its tournament

    def __post_init__(self) -> None:
        require_counts({"population": self.population, "sample_size": self.sample_size})
        if self.sample_size > self.population:
            raise RcaiError(f"sample_size {self.sample_size} exceeds the population {self.population}")
        if not 0.0 <= self.crossover <= 1.0:
            raise RcaiError(f"crossover must be a probability in [0, 1], got {self.crossover!r}")


@dataclass(frozen=True)
class AreaOptions(JsonConfig):
    """AREA's seeding: `pool` random subnets scored by `proxy`; the best `evolution.population` seed it."""

    pool: int = 64
    proxy: str = "naswot"

    def __post_init__(self) -> None:
        require_counts({"pool": self.pool})


@dataclass(frozen=True)
class RLOptions(JsonConfig):
    """The REINFORCE controller's reward and step (rcai/search/strategies/rl.py): `StrategyConfig.rl`."""

    reward: str = "soft"  # hard | soft | linear
    gamma: float = -0.07  # soft: exponent of (Lat/τ)
    alpha: float = 0.5  # linear: weight of the accuracy term
    lr: float = 0.2  # policy learning rate


@dataclass(frozen=True)
class OneShotOptions(JsonConfig):
    """What the search over a one-shot supernet reads: `StrategyConfig.oneshot` (rcai/search/strategies/oneshot.py).
    The predictor beside the supernet file proposes; the best `candidates` by it within the budget are
    judged with inherited weights on the validation crops; the best of them is the pick."""

    supernet: str | None = None  # supernet.pt of `rcai supernet train` (its predictor.json beside it)
    candidates: int = 12  # subnets judged with inherited weights (about a second each on tiny)
    finetune_steps: int = 0  # steps of the pick's fine-tune from its inherited weights (the `cpu` protocol's batch, lr, EMA)
    train_device: str = "auto"  # where the fine-tune and the evaluations run (rcai/train/device.py)
    train_precision: str = "auto"

    def __post_init__(self) -> None:
        from ..train.device import check_precision, check_train_device

        require_counts({"candidates": self.candidates})
        if isinstance(self.finetune_steps, bool) or not isinstance(self.finetune_steps, int) or self.finetune_steps < 0:
            raise RcaiError(f"--finetune-steps must be a whole number >= 0, got {self.finetune_steps!r}")
        check_train_device(self.train_device)
        check_precision(self.train_precision)


# Flat keys of earlier releases' stored configs -> (option group, key) today (StrategyConfig.migrate): the
# strategies' options were flat StrategyConfig fields, and a DARTS run stored its engine's flat config
# (SearchConfig: DartsOptions' fields beside the shared ones, `data_dir` for the proxies' data folder).
FLAT_KEYS: dict[str, tuple[str, str]] = {
    **{f.name: ("darts", f.name) for f in fields(DartsOptions)},
    "data_dir": ("proxy_config", "data_dir"),
    **{k: ("halving", k) for k in ("protocol", "rungs", "eta", "initial", "brackets", "train_seed", "fill_tol", "surrogate_pool", "jobs",
                                    "executor", "ray_address", "work_dir")},
    **{k: ("evolution", k) for k in ("population", "sample_size", "crossover")},
    "area_pool": ("area", "pool"), "area_proxy": ("area", "proxy"),
    "reward": ("rl", "reward"), "gamma": ("rl", "gamma"), "alpha": ("rl", "alpha"), "rl_lr": ("rl", "lr"),
}
