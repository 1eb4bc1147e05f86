"""Run any ONNX target on another host: `--host user@addr[:port]` (see transport.py).

One worker session per RemoteTarget: each model is uploaded once (named by content hash, kept on
the host), each measurement is one request on the open session, so the caller appends each row as
its reply arrives. A session that dies (dropped connection, killed worker) is reopened and the
request in flight sent again; finished rows are never measured again because the caller has them.
"""
from __future__ import annotations

import base64
import hashlib
import io
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import RcaiError
from .base import MeasureConfig, Prepared, Target, TargetInfo, TimingStats, onnx_path
from .inputs import Specs, check_feeds, normalize_specs, specs_from_onnx, specs_to_json
from .registry import register_target
from .transport import WORKER, Session, SessionLost, make_transport

RECONNECTS = 3  # reopen attempts per request after a lost session


@register_target("remote")
class RemoteTarget(Target):
    """target / target_settings: what runs on the host (e.g. "onnxruntime", {"threads": 1}); or
    device: a --device name resolved on the host ("gpu": TensorRT there if importable, else torch-cuda).
    transport: "ssh" (host, user, port, key, ssh_config, remote_dir, python) or "local" (remote_dir, python).
    timeout_s: limit for one request (an engine build can take minutes)."""

    local = False
    worker_entry = WORKER  # the module serving the session on the host (a higher layer may serve more modes)

    def __init__(
        self, target: str = "onnxruntime", target_settings: Mapping[str, Any] | None = None,
        transport: str = "ssh", host: str | None = None, user: str | None = None, port: int | None = None,
        key: str | None = None, remote_dir: str | None = None, python: str | None = None,
        ssh_config: str | None = None, device: str | None = None, timeout_s: float = 3600.0,
    ):
        from .registry import DEVICES, target_class

        if device is None:
            if target == "remote":
                raise RcaiError("remote target: the inner target cannot be 'remote' again")
            cls = target_class(target)  # unknown name -> RcaiError listing the known ones, before any connection
            if not cls.takes_onnx:
                raise RcaiError(f"remote target: {target!r} takes a torch module; only ONNX targets run on a host")
        elif device not in DEVICES:
            raise RcaiError(f"unknown device {device!r}; known: {', '.join(sorted(DEVICES))}")
        self.inner, self.device, self.inner_settings = target, device, dict(target_settings or {})
        self.transport = make_transport(transport, host=host, user=user, port=port, key=key, remote_dir=remote_dir,
                                        python=python, **({"ssh_config": ssh_config} if transport == "ssh" else {}))
        self.timeout_s = float(timeout_s)
        self._info: TargetInfo | None = None
        self._session: Session | None = None
        self._uploaded: set[str] = set()
        self._blobs: dict[str, Path] = {}  # remote name -> local file (to upload again to a fresh host)
        self._facts: dict[str, Any] = {}
        self._settings = {"target": target, "device": device, "target_settings": self.inner_settings,
                          "transport": transport, "host": host, "user": user, "port": port, "key": key,
                          "remote_dir": remote_dir, "python": python, "ssh_config": ssh_config, "timeout_s": self.timeout_s}
        if transport != "ssh":  # only ssh takes these
            for k in ("host", "user", "port", "key", "ssh_config"):
                self._settings.pop(k)

    # --- session ---------------------------------------------------------------------------
    def session(self) -> Session:
        if self._session is None or not self._session.alive():
            if self._session is not None:
                self._session.close()
            self._session = self.transport.open(self.worker_entry)
            self._uploaded.clear()  # the host may have lost files with the session (a reboot)
            self._facts = {"host": self.transport.describe(), **self._session.ready.get("host", {})}
        return self._session

    def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        """One request; a lost session is reopened (up to RECONNECTS times) and the request sent again."""
        where = self.transport.describe()
        for attempt in range(RECONNECTS + 1):
            try:
                reply = self.session().request(obj, self.timeout_s)
                break
            except RcaiError as e:  # lost mid-request, or (when reconnecting) could not connect again
                self.close()
                if attempt == RECONNECTS or not (isinstance(e, SessionLost) or attempt):
                    raise
                time.sleep(min(2.0 ** attempt, 5.0))
        if not reply.get("ok"):
            raise RcaiError(f"{where}: {reply.get('error', 'unknown worker error')}")
        return reply

    def host_facts(self) -> dict[str, Any]:
        """The host's platform (and a Jetson's L4T release and power mode), as its worker reports it."""
        if not self._facts:
            self.session()
        return dict(self._facts)

    def close(self) -> None:
        """End the session (the worker exits when its stdin closes)."""
        session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except (OSError, ValueError):
                pass

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # --- files -----------------------------------------------------------------------------
    def upload(self, path: Path) -> str:
        """Copy an ONNX file to the host once (named by content hash); returns its remote name."""
        data = path.read_bytes()
        name = f"model-{hashlib.sha256(data).hexdigest()[:20]}.onnx"
        self._blobs[name] = path
        if name not in self._uploaded:
            if not self.request({"mode": "exists", "name": name})["exists"]:
                self.request({"mode": "put", "name": name, "data": base64.b64encode(data).decode()})
            self._uploaded.add(name)
        return name

    def upload_bytes(self, name: str) -> None:
        path = self._blobs.get(name)
        if path is not None and name not in self._uploaded:
            self.upload(path)

    def put(self, local: Path, name: str) -> None:
        """Copy a local file into the host's work dir as `name`."""
        self.request({"mode": "put", "name": name, "data": base64.b64encode(local.read_bytes()).decode()})

    def energy(self, onnx_path: Path, seconds: float = 5.0) -> dict[str, Any]:
        """Energy per inference on a Jetson host (tegrastats there): {"energy_mj", "mean_power_w", ...}."""
        job = self.prepare(onnx_path).job()
        what = {"device": self.device} if self.device else {"target": self.inner}
        return self.request({"mode": "energy", **what, "settings": self.inner_settings, "jobs": [job], "seconds": seconds})["energy"]

    # --- target interface ------------------------------------------------------------------
    def call(self, mode: str, jobs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """One target request (info/measure/run); the models of `jobs` are re-uploaded after a reconnect."""
        what = {"device": self.device} if self.device else {"target": self.inner}
        request = {"mode": mode, **what, "settings": self.inner_settings, "jobs": jobs, **extra}
        needs = [j["model"] for j in jobs]
        for attempt in range(2):
            for name in needs:
                self.upload_bytes(name)
            try:
                reply = self.request(request)
                break
            except RcaiError as e:  # a fresh host (after a reconnect) may lack a model: upload, retry once
                if attempt or "not on the host" not in str(e):
                    raise
                self._uploaded.difference_update(needs)
        self._info = TargetInfo.from_dict(reply["target_info"], self.transport.describe())
        return reply

    def info(self, precision: str | None = None) -> TargetInfo:
        """The inner target's info, as the host reports it (one request the first time)."""
        if self._info is None:
            self.call("info", [])
        assert self._info is not None
        return self._info if precision is None else TargetInfo.from_dict({**self._info.to_dict(), "precision": precision})

    def prepare(self, model: Any, input_specs: Mapping[str, Any] | None = None) -> "RemotePrepared":
        if not isinstance(model, (str, Path)):
            raise RcaiError(f"remote target: takes an ONNX file, got {type(model).__name__}")
        path = onnx_path(model)
        specs = normalize_specs(input_specs, str(path)) if input_specs is not None else specs_from_onnx(path)
        return RemotePrepared(self, specs, self.upload(path))

    def measure_many(
        self, items: Sequence[tuple[Any, Mapping[str, Any] | None]], cfg: MeasureConfig = MeasureConfig(), seed: int = 0
    ) -> list[TimingStats]:
        """All models in one request."""
        prepared = [self.prepare(model, specs) for model, specs in items]
        reply = self.call("measure", [p.job(seed) for p in prepared], measure=cfg.to_dict())
        for p, job in zip(prepared, reply["jobs"]):
            p._info = TargetInfo.from_dict(job["info"])
        return [TimingStats.from_dict(job["stats"]) for job in reply["jobs"]]


class RemotePrepared(Prepared):
    """A model uploaded to the host; the worker keeps the last few prepared, so repeated runs are cheap."""

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
        """Ship the inputs, run once on the host, bring the outputs back (in the request/reply)."""
        buf = io.BytesIO()
        np.savez(buf, **staged)
        reply = self.target.call("run", [self.job()], feeds=base64.b64encode(buf.getvalue()).decode())
        with np.load(io.BytesIO(base64.b64decode(reply["jobs"][0]["outputs"]))) as z:
            return [z[f"out{i}"] for i in range(len(z.files))]

    def outputs(self, result: list[np.ndarray]) -> list[np.ndarray]:
        return result
