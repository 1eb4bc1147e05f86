"""The torch side of a deployed model: loading a subnet's weights, a random init that can be rebuilt
from its seed, and the reference torch model that the ONNX loop is compared with."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping

import torch

from ..errors import RcaiError
from ..io import load_torch
from ..space.subnet import SubnetSpec
from .sidecar import DeploySidecar, WeightsRef

RUN_WEIGHTS = ("model.pt", "subnet.pt")  # rcai train, rcai search


def state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """Hash of names, dtypes, shapes and bytes of every tensor, in key order."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().to("cpu").contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def run_files(run: str | Path) -> tuple[Path, Path]:
    """(subnet.json, weights) of a run folder of `rcai train` (model.pt) or `rcai search` (subnet.pt)."""
    run = Path(run)
    spec = run / "subnet.json"
    weights = next((run / n for n in RUN_WEIGHTS if (run / n).is_file()), None)
    if not spec.is_file() or weights is None:
        raise RcaiError(f"{run}: not a finished run (needs subnet.json and {' or '.join(RUN_WEIGHTS)})")
    return spec, weights


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    state = load_torch(path, "torch state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RcaiError(f"{path}: expected a state_dict (name -> tensor)")
    return state


def build_model(spec: SubnetSpec, state: Mapping[str, torch.Tensor] | None, seed: int = 0, source: str = "weights") -> torch.nn.Module:
    """The subnet in eval mode with `state` loaded, or randomly initialised from `seed`
    (without touching torch's global RNG). A random init draws the output conv too (training starts
    it at zero), so that what is verified and timed computes a non-trivial output."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build()
        if state is None:
            for m in model.head.modules():
                if isinstance(m, torch.nn.Conv2d):
                    m.reset_parameters()
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise RcaiError(f"{source}: weights do not fit subnet {spec.hash} ({first})") from None
    return model.eval()


def weights_ref(model: torch.nn.Module, weights_path: str | Path | None, onnx_path: str | Path, seed: int) -> WeightsRef:
    sha = state_sha256(model.state_dict())
    if weights_path is None:
        return WeightsRef("random", sha, seed=seed, torch_version=torch.__version__)
    w, base = Path(weights_path).resolve(), Path(onnx_path).resolve().parent
    try:
        rel = os.path.relpath(w, base)
    except ValueError:  # other drive (Windows)
        rel = str(w)
    return WeightsRef("file", sha, path=rel, torch_version=torch.__version__)


def reference_model(side: DeploySidecar, onnx_path: str | Path, weights: str | Path | None = None) -> tuple[torch.nn.Module | None, str]:
    """The torch model the ONNX file was exported from: `weights` if given, else what the sidecar
    says (its weights file, or the seeded random init). Returns (model, note); model is None when
    the weights cannot be found or are not the exported ones (the note says why)."""
    ref = side.weights
    if weights is not None:
        return build_model(side.subnet, load_state(weights), source=str(weights)), f"weights {weights}"
    if ref is None:
        return None, "the sidecar names no weights (pass --weights)"
    if ref.source == "file":
        path = Path(ref.path or "")
        path = path if path.is_absolute() else Path(onnx_path).resolve().parent / path
        if not path.is_file():
            return None, f"weights file {path} not found (pass --weights)"
        model = build_model(side.subnet, load_state(path), source=str(path))
        note = f"weights {path}"
    else:
        model = build_model(side.subnet, None, seed=int(ref.seed or 0))
        note = f"random init, seed {ref.seed}"
    if state_sha256(model.state_dict()) != ref.state_sha256:
        return None, f"{note}: tensors differ from the exported ones (changed file or torch version)"
    return model, note
