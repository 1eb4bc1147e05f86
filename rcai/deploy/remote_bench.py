"""`rcai bench --host`: the whole sampling loop run on another host over ssh, the cost table's /
predictor's estimates computed here beside the host's measurement.

The host runs this module as its worker (targets' worker plus a "bench" mode), so the session
protocol, the upload and the reconnects are the remote target's (rcai/targets/remote.py).
    {"mode": "bench", "model": name (its sidecar uploaded as name + ".json"), "config": {BenchConfig}}
        -> {"ok": true, "result": {BenchResult}}
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from ..errors import RcaiError
from ..targets import TargetSpec, resolve_device
from ..targets.worker import Worker, main as worker_main, serve as worker_serve
from .bench import BenchConfig, BenchResult, bench_loop
from .estimates import estimate_vs_measured, load_estimators
from .runtime import read_deployment


def _bench(worker: Worker, request: dict[str, Any]) -> dict[str, Any]:
    cfg = BenchConfig.from_dict(request.get("config", {}), "request.config")
    return {"ok": True, "result": bench_loop(worker.path(request.get("model")), cfg).to_dict()}


class BenchWorker(Worker):
    modes = {**Worker.modes, "bench": _bench}


def serve(base: str) -> int:
    return worker_serve(base, worker_class=BenchWorker)


def bench_on_host(onnx_path: str | Path, cfg: BenchConfig, host: str) -> BenchResult:
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise RcaiError(f"{onnx_path}: file not found")
    if cfg.image not in (None, "random"):
        raise RcaiError("--image FILE is not sent to the host; use the built-in image or --image random")
    # every --device rule with a --host gives the remote target (or refuses in one line)
    spec = TargetSpec(device=cfg.device, host=host or None, threads=cfg.threads or None)
    target = resolve_device(spec)
    target.worker_entry = __name__
    # On the host, --device names its own CPU or GPU; estimates and the PSNR reference stay here.
    remote_cfg = dataclasses.replace(cfg, device="cpu" if cfg.device == "cpu" else "gpu", table=None, predictor=None,
                                     psnr=False, weights=None)
    name = target.upload(onnx_path)
    side_file = onnx_path.with_name(onnx_path.name + ".json")
    if side_file.is_file():
        target.put(side_file, name + ".json")
    d = target.request({"mode": "bench", "model": name, "config": remote_cfg.to_dict()})["result"]
    res = BenchResult(**{k: v for k, v in d.items() if k != "estimates"})
    res.model = str(onnx_path)
    res.notes.append(f"measured on {target.transport.describe()}" + ("; no PSNR check over --host" if cfg.psnr else ""))
    if cfg.device == "jetson":  # energy per denoiser call in a separate pass (tegrastats); unverified on hardware
        e = target.energy(onnx_path)
        res.notes.append(f"energy: {e['energy_mj']:.2f} mJ per denoiser call, {e['energy_mj'] * res.steps:.0f} mJ per image "
                         f"({e['mean_power_w']:.2f} W mean over {e['samples']} tegrastats samples)")
    target.close()
    side, _ = read_deployment(onnx_path)
    paths = {"table": cfg.table, "predictor": cfg.predictor}
    for name, model in load_estimators(paths, side, dataclasses.replace(spec, batch=cfg.batch)).items():
        res.estimates[name] = estimate_vs_measured(model, side.choices, res.steps, res.loop_ms, res.step_p50_ms, str(paths[name]))
    return res


if __name__ == "__main__":
    sys.exit(worker_main(serve_fn=serve))
