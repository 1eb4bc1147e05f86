"""The remote side of the remote target: `python -m rcai.targets.worker REQUEST.json`.

Request (paths relative to the request's folder):
    {"mode": "info" | "measure" | "run", "target": "tensorrt", "settings": {...},
     "jobs": [{"model": "model-<hash>.onnx", "input_specs": {"x": {"shape": [...], "dtype": "float32"}},
               "seed": 0}],
     "measure": {MeasureConfig fields},            # mode "measure"
     "feeds": "feeds.npz", "outputs": "out.npz"}   # mode "run": one job; outputs saved as out0, out1...
The request file (and the feeds file) are deleted once read; uploaded models stay.
Reply: one stdout line `RCAI-REPLY {json}`:
    {"ok": true, "target_info": {...}, "jobs": [{"info": {...}, "stats": {...}}]}   (stats: measure only)
    {"ok": false, "error": "one line"}   (exit code 2 for RcaiError, 1 otherwise)
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

REPLY_PREFIX = "RCAI-REPLY "


def handle(request: dict[str, Any], base: Path) -> dict[str, Any]:
    import numpy as np

    from ..errors import RcaiError
    from ..io import atomic_write_bytes
    from .registry import get_target  # the package (imported first by -m) registered every target
    from .base import MeasureConfig

    mode = request.get("mode")
    if mode not in ("info", "measure", "run"):
        raise RcaiError(f"request: unknown mode {mode!r}")
    target = get_target(request["target"], **request.get("settings", {}))
    reply: dict[str, Any] = {"ok": True, "target_info": target.info().to_dict(), "jobs": []}
    jobs = request.get("jobs", [])
    if mode == "run" and len(jobs) != 1:
        raise RcaiError("request: mode 'run' takes exactly one job")
    cfg = MeasureConfig.from_dict(request.get("measure", {}), "request.measure")
    for job in jobs:
        prepared = target.prepare(base / job["model"], job.get("input_specs"))
        out: dict[str, Any] = {"info": prepared.info().to_dict()}
        if mode == "measure":
            out["stats"] = prepared.measure(cfg, seed=int(job.get("seed", 0))).to_dict()
        elif mode == "run":
            with np.load(base / request["feeds"]) as z:
                feeds = {k: z[k] for k in z.files}
            (base / request["feeds"]).unlink()
            outputs = prepared.run(feeds)
            buf = io.BytesIO()
            np.savez(buf, **{f"out{i}": a for i, a in enumerate(outputs)})
            atomic_write_bytes(base / request["outputs"], buf.getvalue())
            out["outputs"] = len(outputs)
        reply["jobs"].append(out)
    return reply


def main(argv: list[str] | None = None) -> int:
    from ..errors import RcaiError

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m rcai.targets.worker REQUEST.json", file=sys.stderr)
        return 2
    path = Path(argv[0]).resolve()
    try:
        request = json.loads(path.read_text(encoding="utf-8"))
        path.unlink()  # requests are one-shot; models stay (the remote target reuses them)
        reply, code = handle(request, path.parent), 0
    except RcaiError as e:
        reply, code = {"ok": False, "error": str(e)}, 2
    except Exception as e:  # report anything else as one line too; the traceback goes to stderr
        import traceback

        traceback.print_exc()
        reply, code = {"ok": False, "error": f"{type(e).__name__}: {e}"}, 1
    print(REPLY_PREFIX + json.dumps(reply), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
