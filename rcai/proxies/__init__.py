"""Quality estimators by name (arch -> score, higher is better): zero-cost proxies at a seeded init
short training from scratch, and weights inherited from a trained supernet. `make_estimator("naswot", preset)`; `PROXIES.names()`."""
from . import counts, fisher, grad_norm, gradsign, grasp, inherited, jacob_cov, naswot, short_train, snip, synflow, vote, zen  # noqa: F401  (register)
from .base import PROXIES, Estimator, ProxyConfig, make_estimator

__all__ = ["PROXIES", "Estimator", "ProxyConfig", "make_estimator"]
