"""Run any other target on another host: copy the ONNX file and a JSON request there, run
`python -m rcai.targets.worker REQUEST.json`, read back the JSON reply (see worker.py).

The host needs rcai installed (plus the inner target's library). With transport="ssh" this is
unverified here (no Jetson reachable); transport="local" runs the very same worker in a
subprocess on this machine and is what the tests exercise.
"""
from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import RcaiError
from .base import MeasureConfig, Prepared, Target, TargetInfo, TimingStats, onnx_path
from .inputs import Specs, check_feeds, normalize_specs, specs_from_onnx, specs_to_json
from .registry import register_device, register_target
from .transport import make_transport
from .worker import REPLY_PREFIX


@register_target("remote")
class RemoteTarget(Target):
    """target / target_settings: what runs on the host (e.g. "tensorrt", {"fp16": True}).
    transport: "ssh" (host, user, port, key, remote_dir, python) or "local" (remote_dir, python).
    timeout_s: limit for one worker call (an engine build can take minutes)."""

    def __init__(
        self, target: str = "onnxruntime", target_settings: Mapping[str, Any] | None = None,
        transport: str = "ssh", host: str | None = None, user: str | None = None, port: int | None = None,
        key: str | None = None, remote_dir: str | None = None, python: str | None = None, timeout_s: float = 3600.0,
    ):
        if target == "remote":
            raise RcaiError("remote target: the inner target cannot be 'remote' again")
        from .registry import target_class

        target_class(target)  # unknown name -> RcaiError listing the known ones, before any connection
        self.inner, self.inner_settings = target, dict(target_settings or {})
        self.transport = make_transport(transport, host=host, user=user, port=port, key=key,
                                        remote_dir=remote_dir, python=python)
        self.timeout_s = float(timeout_s)
        self._info: TargetInfo | None = None
        self._settings = {"target": target, "target_settings": self.inner_settings, "transport": transport,
                          "host": host, "user": user, "port": port, "key": key, "remote_dir": remote_dir,
                          "python": python, "timeout_s": self.timeout_s}

    def call(self, mode: str, jobs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """One worker round trip; returns the reply dict (errors become RcaiError)."""
        where = self.transport.describe()
        request = {"mode": mode, "target": self.inner, "settings": self.inner_settings, "jobs": jobs, **extra}
        name = f"request-{uuid.uuid4().hex[:12]}.json"
        with tempfile.TemporaryDirectory(prefix="rcai-req-") as tmp:
            local = Path(tmp) / name
            local.write_text(json.dumps(request), encoding="utf-8")
            self.transport.put(local, name)
        proc = self.transport.run_worker(name, self.timeout_s)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(REPLY_PREFIX)]
        if not lines:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RcaiError(f"{where}: worker failed (exit {proc.returncode}): {tail}")
        reply = json.loads(lines[-1][len(REPLY_PREFIX):])
        if not reply.get("ok"):
            raise RcaiError(f"{where}: {reply.get('error', 'unknown worker error')}")
        self._info = TargetInfo.from_dict(reply["target_info"], where)
        return reply

    def info(self, precision: str | None = None) -> TargetInfo:
        """The inner target's info, as the host reports it (one round trip the first time)."""
        if self._info is None:
            self.call("info", [])
        assert self._info is not None
        return self._info if precision is None else TargetInfo.from_dict({**self._info.to_dict(), "precision": precision})

    def upload(self, path: Path) -> str:
        """Copy an ONNX file to the host once (named by content hash); returns its remote name."""
        name = f"model-{hashlib.sha256(path.read_bytes()).hexdigest()[:20]}.onnx"
        if not self.transport.exists(name):
            self.transport.put(path, name)
        return name

    def prepare(self, model: Any, input_specs: Mapping[str, Any] | None = None) -> "RemotePrepared":
        if not isinstance(model, (str, Path)):
            raise RcaiError(f"remote target: takes an ONNX file, got {type(model).__name__}")
        path = onnx_path(model)
        specs = normalize_specs(input_specs, str(path)) if input_specs is not None else specs_from_onnx(path)
        return RemotePrepared(self, specs, self.upload(path))

    def measure_many(
        self, items: Sequence[tuple[Any, Mapping[str, Any] | None]], cfg: MeasureConfig = MeasureConfig(), seed: int = 0
    ) -> list[TimingStats]:
        """All models in one worker call (one process start and connection for the lot)."""
        prepared = [self.prepare(model, specs) for model, specs in items]
        reply = self.call("measure", [p.job(seed) for p in prepared], measure=cfg.to_dict())
        for p, job in zip(prepared, reply["jobs"]):
            p._info = TargetInfo.from_dict(job["info"])
        return [TimingStats.from_dict(job["stats"]) for job in reply["jobs"]]


class RemotePrepared(Prepared):
    """A model uploaded to the host. Each measure/run is one worker call, so the model is built
    there again each time (the TensorRT target caches engines on disk, so that is cheap)."""

    target: RemoteTarget

    def __init__(self, target: RemoteTarget, specs: Specs, remote_name: str):
        super().__init__(target, specs)
        self.remote_name = remote_name
        self._info: TargetInfo | None = None

    def job(self, seed: int = 0) -> dict[str, Any]:
        return {"model": self.remote_name, "input_specs": specs_to_json(self.input_specs), "seed": seed}

    def info(self) -> TargetInfo:
        if self._info is None:
            reply = self.target.call("info", [self.job()])
            self._info = TargetInfo.from_dict(reply["jobs"][0]["info"])
        return self._info

    def measure(self, cfg: MeasureConfig = MeasureConfig(), seed: int = 0) -> TimingStats:
        """Measured on the host with the inner target's own loop (nothing timed over the wire)."""
        reply = self.target.call("measure", [self.job(seed)], measure=cfg.to_dict())
        self._info = TargetInfo.from_dict(reply["jobs"][0]["info"])
        return TimingStats.from_dict(reply["jobs"][0]["stats"])

    def stage(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return check_feeds(self.input_specs, feeds, "remote")

    def execute(self, staged: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Ship the inputs as .npz, run once on the host, fetch the outputs."""
        tag = uuid.uuid4().hex[:12]
        feeds_name, out_name = f"feeds-{tag}.npz", f"outputs-{tag}.npz"
        with tempfile.TemporaryDirectory(prefix="rcai-run-") as tmp:
            buf = io.BytesIO()
            np.savez(buf, **staged)
            (Path(tmp) / feeds_name).write_bytes(buf.getvalue())
            self.target.transport.put(Path(tmp) / feeds_name, feeds_name)
            reply = self.target.call("run", [self.job()], feeds=feeds_name, outputs=out_name)
            self.target.transport.get(out_name, Path(tmp) / out_name)
            self.target.transport.remove(out_name)
            with np.load(Path(tmp) / out_name) as z:
                return [z[f"out{i}"] for i in range(reply["jobs"][0]["outputs"])]

    def outputs(self, result: list[np.ndarray]) -> list[np.ndarray]:
        return result


def _jetson(settings: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """TensorRT on a Jetson over ssh. Settings the remote target does not take (fp16, ...)
    go to the TensorRT target on the Jetson."""
    host = settings.pop("host", None) or os.environ.get("RCAI_JETSON_HOST")
    if not host:
        raise RcaiError("--device jetson: no host; set RCAI_JETSON_HOST=[user@]host or pass host=...")
    own = set(inspect.signature(RemoteTarget.__init__).parameters) - {"self"}
    remote = {k: settings.pop(k) for k in list(settings) if k in own}
    inner = {**remote.pop("target_settings", {}), **settings}
    return "remote", {"target": "tensorrt", "transport": "ssh", "host": host, **remote, "target_settings": inner}


register_device("jetson", _jetson)
