"""`rcai bench --host`: the whole sampling loop run on another host over ssh (see targets/remote.py),
the cost table's / predictor's estimates computed here beside the host's measurement."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import RcaiError
from ..targets import resolve_device
from ..targets.remote import RemoteTarget
from .bench import BenchConfig, BenchResult
from .estimates import predictor_estimate, table_estimate
from .runtime import read_deployment


def bench_on_host(onnx_path: str | Path, cfg: BenchConfig, host: str) -> BenchResult:
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise RcaiError(f"{onnx_path}: file not found")
    target = resolve_device(cfg.device, host=host, **({"threads": cfg.threads} if cfg.threads else {}))
    if not isinstance(target, RemoteTarget):
        raise RcaiError(f"--device {cfg.device} --host {host}: not a remote target")
    if cfg.image not in (None, "random"):
        raise RcaiError("--image FILE is not sent to the host; use the built-in image or --image random")
    # On the host, --device names its own CPU or GPU; estimates and the PSNR reference stay here.
    remote_cfg = dataclasses.replace(cfg, device="cpu" if cfg.device == "cpu" else "gpu", table=None, predictor=None,
                                     psnr=False, weights=None)
    d = target.bench(onnx_path, remote_cfg.to_dict())
    res = BenchResult(**{k: v for k, v in d.items() if k != "estimates"})
    res.model = str(onnx_path)
    res.notes.append(f"measured on {target.transport.describe()}" + ("; no PSNR check over --host" if cfg.psnr else ""))
    if cfg.device == "jetson":  # energy per denoiser call in a separate pass (tegrastats); unverified on hardware
        e = target.energy(onnx_path)
        res.notes.append(f"energy: {e['energy_mj']:.2f} mJ per denoiser call, {e['energy_mj'] * res.steps:.0f} mJ per image "
                         f"({e['mean_power_w']:.2f} W mean over {e['samples']} tegrastats samples)")
    target.close()
    side, _ = read_deployment(onnx_path)
    if cfg.table:
        res.estimates["table"] = table_estimate(cfg.table, side, res.steps, cfg.batch).compare(res.loop_ms, res.step_p50_ms)
    if cfg.predictor:
        res.estimates["predictor"] = predictor_estimate(cfg.predictor, side, onnx_path, res.steps, cfg.batch).compare(res.loop_ms, res.step_p50_ms)
    return res
