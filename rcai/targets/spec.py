"""One target specification, parsed once (device, host, threads, precision, graphs, batch).

    spec = TargetSpec(device="gpu", threads=1)      # -> RcaiError before any work: torch-cuda takes no threads
    spec = TargetSpec(device="torch", precision="bf16")
    spec.takes_onnx                                   # the target's capability: ONNX file or torch module
    target = resolve_device(spec)                     # the one way from a spec to a Target

The spec is parsed once where the target is named (a CLI command, a run's config) and passed down whole.

Each target declares the settings it takes (its __init__ arguments; a remote target: its inner
target's); a setting given for a target that does not take it is refused in one line here, before
any model is built or measured. `with_threads(n)` is how a stage sets a default thread count
(the CPU check's 1) only where the target has threads at all.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Any

from ..config import JsonConfig
from ..errors import RcaiError
from ..threads import require_threads
from .base import Target
from .registry import DEVICES, get_target, target_class

SETTINGS = ("threads", "precision", "graphs")  # the spec's fields that are target settings (None: not given)


@dataclass(frozen=True)
class TargetSpec(JsonConfig):
    device: str = "cpu"  # a --device name (registry.DEVICES)
    host: str | None = None  # [user@]addr[:port]: measured there over ssh
    threads: int | None = None
    precision: str | None = None  # fp32 | fp16 | bf16 for targets that take it (torch, torch-cuda)
    graphs: bool | None = None  # torch-cuda: CUDA graphs (default on)
    batch: int = 1

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise RcaiError(f"unknown device {self.device!r}; known: {', '.join(sorted(DEVICES))}")
        require_threads(self.threads)
        if self.batch < 1:
            raise RcaiError(f"--batch must be >= 1, got {self.batch}")
        given = [k for k in self.settings() if k not in self.accepts()]
        if given:
            name, _ = self.resolved()
            raise RcaiError(f"--device {self.device} ({name}) takes no --{', --'.join(given)}; "
                            f"its settings: {', '.join(sorted(self.accepts())) or 'none'}")

    def settings(self) -> dict[str, Any]:
        """The target settings given (None fields left out)."""
        return {k: getattr(self, k) for k in SETTINGS if getattr(self, k) is not None}

    def resolved(self) -> tuple[str, dict[str, Any]]:
        """(registered target name, its settings) by the --device rule."""
        return DEVICES[self.device](self.settings(), self.host or None)

    def target_class(self) -> type[Target]:
        """The class that runs the models (a remote target's inner one)."""
        name, settings = self.resolved()
        return target_class(settings["target"]) if name == "remote" else target_class(name)

    def accepts(self) -> set[str]:
        params = inspect.signature(self.target_class().__init__).parameters
        return set(params) - {"self"} if not any(p.kind is p.VAR_KEYWORD for p in params.values()) else set(SETTINGS)

    @property
    def takes_onnx(self) -> bool:
        """True: the target runs ONNX files; False: torch modules (every stage asks this, never decides)."""
        return self.target_class().takes_onnx

    def with_threads(self, default: int | None) -> "TargetSpec":
        """`default` threads where none were given and the target has threads; else unchanged."""
        return replace(self, threads=default) if self.threads is None and default and "threads" in self.accepts() else self


def resolve_device(spec: TargetSpec, **extra: Any) -> Target:
    """The target of `spec` by the --device rule (registry.DEVICES). `extra`: a target's own settings
    beyond the spec's (jetson's user or fp16, a host's remote_dir), handed to the rule with them."""
    clash = sorted(set(extra) & set(SETTINGS))
    if clash:
        raise RcaiError(f"resolve_device: {', '.join(clash)} belong in the TargetSpec, not among a target's own settings")
    name, settings = DEVICES[spec.device]({**spec.settings(), **extra}, spec.host)
    return get_target(name, **settings)
