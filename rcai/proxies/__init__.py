"""Quality estimators by name (arch -> score, higher is better): zero-cost proxies at a seeded init
short training from scratch, weights inherited from a trained supernet, and an additive model fitted
on subnets trained from scratch (quality-model). `make_estimator("naswot", preset)`; `PROXIES.names()`."""
from . import additive, counts, fisher, grad_norm, gradsign, grasp, inherited, jacob_cov, naswot, short_train, snip, synflow, vote, zen  # noqa: F401  (register)
from .base import PROXIES, Estimator, ProxyConfig, make_estimator

__all__ = ["PROXIES", "Estimator", "ProxyConfig", "make_estimator"]
