"""The remote side of the remote target: `python -m rcai.targets.worker --serve DIR` (or the ssh
bootstrap in transport.py) serves one session in DIR, in JSON lines:

    stdout, once:   RCAI-READY {"pid": ..., "python": "3.11.2", "host": {...}}   (host facts, e.g. Jetson power mode)
    stdin:          one request per line, stdout: one `RCAI-REPLY {json}` line per request:
      {"mode": "put", "name": "model-<hash>.onnx", "data": base64}            -> {"ok": true}
      {"mode": "exists", "name": ...}                                       -> {"ok": true, "exists": bool}
      {"mode": "info" | "measure" | "run", "target": "onnxruntime" | "device": "gpu", "settings": {...},
       "jobs": [{"model": name, "input_specs": {...}, "seed": 0}],
       "measure": {MeasureConfig fields},                   # measure
       "feeds": base64 npz}                                  # run: one job; reply "outputs": base64 npz (out0, out1...)
                                                            -> {"ok": true, "target_info": {...}, "jobs": [{"info", "stats"?}]}
      {"mode": "energy", "target"/"device", "settings", "jobs": [one job], "seconds": 5}
                                                            -> {"ok": true, "energy": {"energy_mj", "mean_power_w", ...}}
    more modes where a higher layer serves the session (rcai.deploy.remote_bench: "bench").
    any failure:    {"ok": false, "error": "one line"}; the session goes on. EOF on stdin ends it.
Only files named [A-Za-z0-9_-][A-Za-z0-9._-]* inside DIR are ever read or written.
"""
from __future__ import annotations

import base64
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

REPLY_PREFIX = "RCAI-REPLY "
READY_PREFIX = "RCAI-READY "
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}")


class Worker:
    """One session's state. Higher layers extend it with more modes (subclass, add to `modes`) and
    serve it from their own module (see transport.Transport.open(entry=...))."""

    modes: dict[str, Any] = {}

    def __init__(self, base: Path):
        self.base = base
        self.targets: dict[str, Any] = {}
        self.prepared: dict[str, Any] = {}  # last few prepared models (the bench loop reruns one)

    def path(self, name: Any) -> Path:
        from ..errors import RcaiError

        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise RcaiError(f"request: bad file name {name!r}")
        return self.base / name

    def target(self, request: dict[str, Any]) -> Any:
        from .registry import get_target
        from .spec import SETTINGS, TargetSpec, resolve_device  # the package (imported first) registered every target

        settings = request.get("settings") or {}
        key = json.dumps([request.get("device"), request.get("target"), settings], sort_keys=True)
        if key not in self.targets:
            dev = request.get("device")
            if dev:  # the spec's fields among the settings; the rest are the target's own
                spec = TargetSpec(device=dev, **{k: v for k, v in settings.items() if k in SETTINGS})
                self.targets[key] = resolve_device(spec, **{k: v for k, v in settings.items() if k not in SETTINGS})
            else:
                self.targets[key] = get_target(request["target"], **settings)
        return self.targets[key]

    def prepare(self, target: Any, job: dict[str, Any]) -> Any:
        from ..errors import RcaiError

        key = json.dumps([id(target), job.get("model"), job.get("input_specs")], sort_keys=True)
        if key not in self.prepared:
            path = self.path(job.get("model"))
            if not path.is_file():
                raise RcaiError(f"{job.get('model')}: not on the host (upload lost?)")
            if len(self.prepared) >= 4:
                self.prepared.pop(next(iter(self.prepared)))
            self.prepared[key] = target.prepare(path, job.get("input_specs"))
        return self.prepared[key]

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from ..errors import RcaiError
        from ..io import atomic_write_bytes
        from .base import MeasureConfig

        mode = request.get("mode")
        if mode == "put":
            atomic_write_bytes(self.path(request.get("name")), base64.b64decode(request["data"]))
            return {"ok": True}
        if mode == "exists":
            return {"ok": True, "exists": self.path(request.get("name")).is_file()}
        if mode in self.modes:  # modes added by a higher layer's worker (deploy: "bench")
            return self.modes[mode](self, request)
        if mode == "energy":  # Jetson: back-to-back calls while tegrastats samples power (separate from timing)
            from .inputs import make_input_pool
            from .jetson import measure_energy

            prepared = self.prepare(self.target(request), (request.get("jobs") or [{}])[0])
            staged = [prepared.stage(f) for f in make_input_pool(prepared.input_specs, 4, 0)]
            calls = iter(range(1 << 62))
            return {"ok": True, "energy": measure_energy(lambda: prepared.execute(staged[next(calls) % len(staged)]),
                                                         float(request.get("seconds", 5.0)))}
        if mode not in ("info", "measure", "run"):
            raise RcaiError(f"request: unknown mode {mode!r}")
        target = self.target(request)
        reply: dict[str, Any] = {"ok": True, "target_info": target.info().to_dict(), "jobs": []}
        jobs = request.get("jobs", [])
        if mode == "run" and len(jobs) != 1:
            raise RcaiError("request: mode 'run' takes exactly one job")
        cfg = MeasureConfig.from_dict(request.get("measure", {}), "request.measure")
        for job in jobs:
            prepared = self.prepare(target, job)
            out: dict[str, Any] = {"info": prepared.info().to_dict()}
            if mode == "measure":
                out["stats"] = prepared.measure(cfg, seed=int(job.get("seed", 0))).to_dict()
            elif mode == "run":
                with np.load(io.BytesIO(base64.b64decode(request["feeds"]))) as z:
                    feeds = {k: z[k] for k in z.files}
                outputs = prepared.run(feeds)
                buf = io.BytesIO()
                np.savez(buf, **{f"out{i}": a for i, a in enumerate(outputs)})
                out["outputs"] = base64.b64encode(buf.getvalue()).decode()
            reply["jobs"].append(out)
        return reply


def host_facts() -> dict[str, Any]:
    """What the host is (recorded in the table's metadata): platform, and on a Jetson its power mode."""
    import platform

    facts: dict[str, Any] = {"machine": platform.machine(), "system": platform.system(), "node": platform.node()}
    from .jetson import jetson_facts

    facts.update(jetson_facts())
    return facts


def serve(base: str | os.PathLike, stdin: Any = None, stdout: Any = None, worker_class: type[Worker] = Worker) -> int:
    from ..errors import RcaiError

    base = Path(os.path.expanduser(str(base)))
    base.mkdir(parents=True, exist_ok=True)
    stdin = stdin or sys.stdin.buffer
    out = stdout
    if out is None:  # replies on a private copy of stdout; fd 1 itself (native libraries' prints) goes to stderr
        out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
        sys.stdout.flush()
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    worker = worker_class(base)
    import platform

    hello = {"pid": os.getpid(), "python": platform.python_version(), "dir": str(base), "host": host_facts()}
    print(READY_PREFIX + json.dumps(hello), file=out, flush=True)
    for raw in stdin:
        try:
            reply = worker.handle(json.loads(raw))
        except RcaiError as e:
            reply = {"ok": False, "error": str(e)}
        except Exception as e:  # one line back; the traceback goes to stderr
            import traceback

            traceback.print_exc()
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(REPLY_PREFIX + json.dumps(reply), file=out, flush=True)
    return 0


def main(argv: list[str] | None = None, serve_fn: Any = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "--serve":
        print("usage: python -m MODULE --serve DIR", file=sys.stderr)
        return 2
    return (serve_fn or serve)(argv[1])


if __name__ == "__main__":
    sys.exit(main())
