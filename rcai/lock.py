"""One writer per output: an exclusive flock on `<output>.lock` next to it (a cost table, a dataset
folder, a run folder), keyed by its real path (a symlink to a held folder is the same output). A second writer is refused at once with a one-line error naming the holder
(pid, host, command). The kernel drops the lock when its holder dies, so a kill never leaves a
stale lock behind; the file itself is removed on a clean exit."""
from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Iterator

from .errors import RcaiError
from .io import os_errors


def lock_path(output: str | os.PathLike) -> Path:
    output = Path(os.path.realpath(output))
    return output.with_name(output.name + ".lock")


def _holder() -> str:
    cmd = " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])[:200]
    return f"pid {os.getpid()} on {socket.gethostname()} ({cmd})"


@contextlib.contextmanager
def exclusive(output: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of `output` for the block; RcaiError if another process holds it."""
    path = lock_path(output)
    with os_errors(path, "cannot take the lock"):
        path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        with os_errors(path, "cannot take the lock"):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RcaiError(f"{output}: in use by {holder}; wait for it to finish or use another output") from None
        # the previous holder may have removed the file between our open and flock: lock the live one
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, (_holder() + "\n").encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
