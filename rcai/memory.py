"""Peak memory of a code block: the process's resident-set high-water mark, reset before the block.

Linux: VmHWM from /proc/self/status, reset by writing "5" to /proc/self/clear_refs (kernel >= 4.0),
so the peak is that of the block alone; the result is the peak minus the RSS at the start (native
allocations of ONNX Runtime / torch included, which tracemalloc would miss). Elsewhere, or if the
reset is refused: getrusage's lifetime maximum, which can include earlier peaks (the method says so)."""
from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_kb(key: str) -> int | None:
    return _read_kb(_STATUS, key)


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)  # bytes on macOS, KiB on Linux


class PeakRss:
    """with PeakRss() as m: ...  then m.delta_bytes, m.peak_bytes, m.method."""

    def __enter__(self) -> "PeakRss":
        rss = _status_kb("VmRSS")
        self.start_bytes = rss * 1024 if rss is not None else _maxrss_bytes()
        self.exact = rss is not None and _reset_hwm()
        self.method = (
            "RSS high-water mark delta (VmHWM reset via /proc/self/clear_refs)"
            if self.exact
            else "getrusage ru_maxrss delta (lifetime peak, not reset: may be 0 or include earlier peaks)"
        )
        if not self.exact:
            self.start_bytes = _maxrss_bytes()
        self.peak_bytes = self.delta_bytes = 0
        return self

    def __exit__(self, *exc: object) -> bool:
        hwm = _status_kb("VmHWM") if self.exact else None
        self.peak_bytes = hwm * 1024 if hwm is not None else _maxrss_bytes()
        self.delta_bytes = max(self.peak_bytes - self.start_bytes, 0)
        return False


def available_bytes() -> int | None:
    """Memory this process can still get without swapping: the least of the system's MemAvailable
    (psutil elsewhere), what its address-space limit (ulimit -v) leaves, and what its cgroup's
    memory.max leaves; None if none is known."""
    left = [x for x in (_system_available(), _rlimit_left(), _cgroup_left()) if x is not None]
    return min(left) if left else None


def _system_available() -> int | None:
    kb = _read_kb(Path("/proc/meminfo"), "MemAvailable")
    if kb is not None:
        return kb * 1024
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def _read_kb(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _rlimit_left() -> int | None:
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    size = _status_kb("VmSize")
    if limit == resource.RLIM_INFINITY or size is None:
        return None
    return max(limit - size * 1024, 0)


def _cgroup_left() -> int | None:
    """cgroup v2: memory.max less memory.current of this process's cgroup."""
    try:
        [rel] = [line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::")]
        folder = Path("/sys/fs/cgroup") / rel.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(int(limit) - int((folder / "memory.current").read_text()), 0)
    except (OSError, ValueError, IndexError):
        return None


def require_memory(need: float, what: str, hint: str) -> None:
    """Refuse up front, in one line, work estimated to need more memory than is available."""
    from .errors import RcaiError

    have = available_bytes()
    if have is not None and need > have:
        raise RcaiError(f"{what} needs about {_gib(need)} of memory, {_gib(have)} available; {hint}")


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n < 2**40 else f"{n / 2**40:.3g} TiB"
