"""Target registry (`@register_target`, `get_target`, `list_targets`) and the CLI's --device map."""
from __future__ import annotations

import importlib.util
import inspect
import os
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


# Settings that configure the connection, not the target on the host.
REMOTE_KEYS = ("user", "port", "key", "remote_dir", "python", "ssh_config", "timeout_s")
REMOTE_ENV = {"python": "RCAI_REMOTE_PYTHON", "remote_dir": "RCAI_REMOTE_DIR"}


def _remote(inner: str, settings: dict[str, Any], host: str) -> tuple[str, dict[str, Any]]:
    """`inner` (with the user's settings) run on `host` over ssh."""
    own = {k: settings.pop(k) for k in list(settings) if k in REMOTE_KEYS}
    for k, env in REMOTE_ENV.items():
        if own.get(k) is None and os.environ.get(env):
            own[k] = os.environ[env]
    inner_settings = {**settings.pop("target_settings", {}), **settings}
    return "remote", {"target": inner, "transport": "ssh", "host": host, **own, "target_settings": inner_settings}


def _cpu(settings: dict[str, Any], host: str | None) -> tuple[str, dict[str, Any]]:
    return _remote("onnxruntime", settings, host) if host else ("onnxruntime", settings)


def _gpu(settings: dict[str, Any], host: str | None) -> tuple[str, dict[str, Any]]:
    """TensorRT where importable, else torch-cuda with CUDA graphs (the table's metadata says which:
    its backend). On a host: TensorRT there (the host gets ONNX files)."""
    if host:
        return _remote("tensorrt", settings, host)
    if importlib.util.find_spec("tensorrt") is not None:
        return "tensorrt", settings
    return _torch_cuda(settings, None)


def _jetson(settings: dict[str, Any], host: str | None) -> tuple[str, dict[str, Any]]:
    """TensorRT on a Jetson over ssh ($RCAI_JETSON_HOST when no --host)."""
    host = host or settings.pop("host", None) or os.environ.get("RCAI_JETSON_HOST")
    if not host:
        raise RcaiError("--device jetson: no host; pass --host [user@]addr[:port] (or set RCAI_REMOTE_HOST / RCAI_JETSON_HOST)")
    return _remote("tensorrt", settings, host)


def _torch(settings: dict[str, Any], host: str | None) -> tuple[str, dict[str, Any]]:
    """torch eager on this CPU (per-op overhead unlike ONNX Runtime's: a target of another character)."""
    if host:
        raise RcaiError("--device torch runs torch modules on this machine; --host takes cpu, gpu or jetson")
    return "torch", settings


def _torch_cuda(settings: dict[str, Any], host: str | None) -> tuple[str, dict[str, Any]]:
    """torch on this machine's GPU, one CUDA graph replayed per call (`gpu` picks TensorRT where it imports)."""
    if host:
        raise RcaiError("--device torch-cuda runs torch modules on this machine; --host takes cpu, gpu or jetson")
    return "torch-cuda", {"graphs": True, **settings}


# --device value -> (target name, settings) given the user's settings and --host (None: this machine).
DEVICES: dict[str, Callable[[dict[str, Any], "str | None"], tuple[str, dict[str, Any]]]] = {
    "cpu": _cpu,
    "gpu": _gpu,
    "jetson": _jetson,
    "torch": _torch,
    "torch-cuda": _torch_cuda,
}
