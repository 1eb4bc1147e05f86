"""What machine we are on: host name and a readable CPU / board model."""
from __future__ import annotations

import platform
import socket
from pathlib import Path


def host_name() -> str:
    return socket.gethostname()


def cpu_model() -> str:
    """The CPU model string: 'model name' in /proc/cpuinfo (x86), the device-tree model on
    ARM boards such as a Jetson ('NVIDIA Jetson AGX Orin ...'), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    try:
        model = Path("/proc/device-tree/model").read_text(errors="replace").strip("\x00 \n")
        if model:
            return model
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
