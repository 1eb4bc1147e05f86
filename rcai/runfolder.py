"""One path from options to a run folder: check everything the run will read (files, numbers,
memory), then take the folder's lock (keyed by its real path: rcai/lock.py) and let the run create
it. A refusal in the checks leaves nothing on disk; a second writer is refused, through a symlink too."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from .errors import RcaiError
from .lock import exclusive

T = TypeVar("T")


def check_out(out: str | os.PathLike) -> Path:
    """The run folder `out` names: not empty, and a folder where something exists."""
    if not str(out).strip():
        raise RcaiError("--out is empty: name a run folder")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise RcaiError(f"{path}: exists and is not a folder; give a run folder as --out")
    return path


@contextlib.contextmanager
def open_run(out: str | os.PathLike, prepare: Callable[[], T] | None = None) -> Iterator[T | None]:
    """`prepare()` (every check, and what the run builds from its inputs) before anything is written,
    then the folder's lock for the block; yields what `prepare` returned."""
    path = check_out(out)
    ready = prepare() if prepare else None
    with exclusive(path):
        yield ready
