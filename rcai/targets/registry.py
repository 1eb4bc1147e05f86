"""Target registry (`@register_target`, `get_target`, `list_targets`) and the CLI's --device map."""
from __future__ import annotations

import inspect
from typing import Any, Callable

from ..errors import RcaiError
from ..registry import Registry
from .base import Target

TARGETS: Registry[type[Target]] = Registry("target")
list_targets = TARGETS.names
target_class = TARGETS.get


def register_target(name: str) -> Callable[[type[Target]], type[Target]]:
    """Class decorator: make a Target subclass available as get_target(name)."""
    return TARGETS.register(name, on_register=lambda n, cls: setattr(cls, "name", n))


def get_target(name: str, **settings: Any) -> Target:
    """An instance of the target registered as `name`, configured with its keyword settings."""
    cls = target_class(name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(settings) - set(params) - {"self"})
        if unknown:
            known = sorted(set(params) - {"self"})
            raise RcaiError(f"target {name!r}: unknown setting(s) {unknown}; known: {known}")
    return cls(**settings)


# --device value -> (target name, settings) given the user's settings.
DEVICES: dict[str, Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]] = {
    "cpu": lambda s: ("onnxruntime", s),
    "gpu": lambda s: ("tensorrt", s),
}  # "jetson": added by remote.py (TensorRT over ssh)


def register_device(name: str, rule: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]) -> None:
    """Add a `--device NAME` rule: the user's settings -> (target name, its settings)."""
    DEVICES[name] = rule


def resolve_device(device: str, **settings: Any) -> Target:
    """The target behind the CLI's `--device cpu|gpu|jetson` (see DEVICES)."""
    try:
        rule = DEVICES[device]
    except KeyError:
        raise RcaiError(f"unknown device {device!r}; known: {', '.join(sorted(DEVICES))}") from None
    name, resolved = rule(dict(settings))
    return get_target(name, **resolved)
