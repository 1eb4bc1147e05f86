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
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


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
