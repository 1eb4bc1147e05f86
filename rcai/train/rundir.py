"""A run folder: resolved config, JSONL log, atomic checkpoints. Everything needed to reproduce or
resume a run lives in it."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import RcaiError
from ..io import append_line, atomic_torch_save, atomic_write_json, load_torch, read_json, read_jsonl


@dataclass
class RunDir:
    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint(self) -> Path:
        return self.file("checkpoint.pt")

    def start(self, config: dict[str, Any], resume: bool, growable: tuple[str, ...] = (),
              upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None, paths: tuple[str, ...] = ()) -> None:
        """A new run refuses to overwrite an existing one; --resume requires the same config, except
        that `growable` keys may grow (more steps of a run whose lr does not depend on its length):
        the stored config is then updated to the new one. `upgrade` reads a stored config as this
        version does (its config class's from_dict + to_dict: options added since take their
        defaults), so a run started by an earlier release resumes where nothing it set differs.
        `paths`: keys holding file paths; one inside the run folder is stored relative to it, so a
        moved or copied run resumes."""
        cfg_path = self.file("config.json")
        config = json.loads(json.dumps(config))  # tuples as the stored JSON has them (lists)
        config.update({k: self.relative(config[k]) for k in paths if config.get(k)})
        if resume:
            if not cfg_path.exists():
                raise RcaiError(f"{self.path}: nothing to resume (no config.json)")
            stored = read_json(cfg_path, expect=dict)
            old = json.loads(json.dumps(upgrade(stored))) if upgrade else stored
            old_c, new_c = _comparable(old), _comparable(config)
            diff = sorted(k for k in set(old_c) | set(new_c) if old_c.get(k) != new_c.get(k))
            grown = [k for k in diff if k in growable and _grows(old_c.get(k), new_c.get(k))]
            if len(grown) != len(diff):
                raise RcaiError(f"{self.path}: --resume with a different config ({', '.join(k for k in diff if k not in grown)})")
            if grown or old != stored:
                atomic_write_json(cfg_path, config)
            return
        if cfg_path.exists():
            raise RcaiError(f"{self.path}: run folder exists; use --resume or another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cfg_path, config)

    def relative(self, path: str) -> str:
        """`path` relative to the run folder where it lies inside it, else as given."""
        try:
            return str(Path(path).resolve().relative_to(self.path.resolve()))
        except ValueError:
            return path

    def log(self, record: dict[str, Any]) -> None:
        append_line(self.file("log.jsonl"), json.dumps(record, default=float))

    def read_log(self) -> list[dict[str, Any]]:
        return read_jsonl(self.file("log.jsonl"))

    def truncate_log(self, step: int) -> None:
        """On resume, drop log lines written after the checkpoint (they will be redone)."""
        kept = [r for r in self.read_log() if r.get("step", 0) <= step]
        from ..io import atomic_write_text

        atomic_write_text(self.file("log.jsonl"), "".join(json.dumps(r, default=float) + "\n" for r in kept))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        state = {**state, "rng": rng_state()}
        atomic_torch_save(state, self.checkpoint)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint (None if the run never reached one). Loaded with weights_only=True:
        tensors and plain containers only, so a planted pickle cannot run code."""
        if not self.checkpoint.exists():
            return None
        state = load_torch(self.checkpoint, "checkpoint (tensors, numbers and strings only)")
        try:
            set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise RcaiError(f"{self.checkpoint}: damaged checkpoint ({type(e).__name__}: {str(e)[:100]})") from None
        return state


def _grows(old: Any, new: Any) -> bool:
    """`new` continues `old`: a larger count, or a list that starts with the old one."""
    if isinstance(old, int) and isinstance(new, int):
        return new >= old
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return list(new[: len(old)]) == list(old)
    return False


# May differ on --resume: a run started on a GPU continues on a CPU. FREE: keys of a training's own
# config; TRAIN_FREE: the training device of a config's option groups (a search's), at any depth.
FREE = ("resume", "device", "precision")
TRAIN_FREE = ("train_device", "train_precision")


def _comparable(cfg: dict[str, Any], top: bool = True) -> dict[str, Any]:
    return {k: _comparable(v, False) if isinstance(v, dict) else v for k, v in cfg.items()
            if k not in TRAIN_FREE and not (top and k in FREE)}


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain Python values (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]
    return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
