"""Worker processes owned by the process that starts them: a `kill -9` of an rcai command ends its
pool workers too, at once, without a traceback.

A pool worker outlives a killed parent by default (it is re-parented to init): it keeps training,
holds the lock of its run folder (so a rerun is refused) and, when it finally tries to hand back
its result, prints a BrokenPipeError traceback. `worker_init` asks the kernel to SIGKILL the worker
when its parent dies (Linux `prctl(PR_SET_PDEATHSIG)`), and ends a worker whose parent died before
the request took effect. `owned_pool` is a spawn Pool whose workers start that way; its resource
tracker (which unlinks the pool's semaphores once every holder is gone) is started without the
"leaked semaphore objects" warning, which after a kill is expected, not news.

The death signal is tied to the parent *thread* that started the worker: Pool starts its workers
from the caller's thread, which must outlive the pool (the main thread of a command does).

Processes that others start for us (a local Ray cluster's GCS, raylet and agents) cannot be asked
for that signal: `reaper()` starts a watchdog in a session of its own that records every process
below this one and, when this process dies without `disarm()`ing it (its pipe closes), SIGKILLs them.
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Iterator

PR_SET_PDEATHSIG = 1
_QUIET_TRACKER = "ignore:resource_tracker:UserWarning"


def die_with_parent(parent: int) -> None:
    """This process is SIGKILLed when its parent dies; if `parent` is already gone, exit now."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the request: nobody waits for this worker
        os._exit(1)


def worker_init(parent: int, init: Callable[..., Any] | None = None, *args: Any) -> None:
    """Pool/executor initializer: die with `parent`, then run the caller's own initializer."""
    die_with_parent(parent)
    if init is not None:
        init(*args)


def owned(init: Callable[..., Any] | None = None, *args: Any) -> dict[str, Any]:
    """initializer/initargs keywords for a Pool or ProcessPoolExecutor started by this process."""
    return {"initializer": worker_init, "initargs": (os.getpid(), init, *args)}


@contextlib.contextmanager
def _quiet_tracker() -> Iterator[None]:
    """Start multiprocessing's resource tracker (if not running) without its leak warning: the
    tracker inherits the interpreter's -W options when it starts."""
    from multiprocessing import resource_tracker

    added = _QUIET_TRACKER not in sys.warnoptions
    if added:
        sys.warnoptions.append(_QUIET_TRACKER)
    try:
        resource_tracker.ensure_running()
        yield
    finally:
        if added:
            sys.warnoptions.remove(_QUIET_TRACKER)


def owned_pool(processes: int, init: Callable[..., Any] | None = None, *args: Any) -> mp.pool.Pool:
    """A spawn Pool of `processes` workers that die with this process (see the module docstring)."""
    ctx = mp.get_context("spawn")
    with _quiet_tracker():
        return ctx.Pool(processes, **owned(init, *args))


class Reaper:
    """The watchdog of `reaper()`: `disarm()` when the processes it guards have ended normally."""

    def __init__(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder holding the rcai package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self.proc = subprocess.Popen([sys.executable, "-c", "import sys; from rcai.procs import _reap; _reap(int(sys.argv[1]))", str(os.getpid())],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                     start_new_session=True)  # survives a kill of our process group too

    def disarm(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"disarm\n")
                self.proc.stdin.close()
            except OSError:
                pass
            self.proc.wait(10)

    def fire(self) -> None:
        """End what it guards now (a cluster that failed to start), as if this process had died."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(10)


def reaper() -> Reaper:
    """A watchdog that SIGKILLs this process's descendants when it dies (see the module docstring)."""
    return Reaper()


def _reap(root: int, every_s: float = 0.25) -> None:
    """The watchdog's loop: track {pid: start time} below `root` until its pipe says disarm (return)
    or closes (`root` died): then SIGKILL what is tracked and still the same process, and below it."""
    me, tracked = os.getpid(), {}
    while True:
        ready, _, _ = select.select([0], [], [], every_s)
        if ready:
            data = os.read(0, 64)
            if b"disarm" in data:
                return
            if not data:
                break
        for pid in descendants(root):
            if pid != me and pid not in tracked:
                tracked[pid] = start_time(pid)
    for _ in range(2):  # a process started while the first pass ran is caught by the second
        alive = [pid for pid, t in tracked.items() if t is not None and start_time(pid) == t]
        for pid in alive:
            for child in descendants(pid):
                tracked.setdefault(child, start_time(child))
        for pid, t in list(tracked.items()):
            if t is not None and start_time(pid) == t:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def descendants(pid: int) -> list[int]:
    """The live processes below `pid` (children, theirs...), read from /proc (Linux); [] elsewhere."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[0] != "Z":
                children.setdefault(st[1], []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        for c in children.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


def group(pgid: int) -> list[int]:
    """The live processes of process group `pgid` (a command started in a session of its own: all
    that it started, unless they left the group), from /proc (Linux); [] elsewhere."""
    out = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[0] != "Z" and st[3] == pgid:
                out.append(int(entry))
    return out


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot): with its pid, an identity that survives
    pid reuse. None if it is gone or a zombie."""
    st = _stat(pid)
    return None if st is None or st[0] == "Z" else st[2]


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, start time, process group) from /proc/<pid>/stat, None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # after "pid (comm) ", comm may hold spaces
    return fields[0], int(fields[1]), int(fields[19]), int(fields[2])
