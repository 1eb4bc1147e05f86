"""What machine we are on: host name, a readable CPU / board model, and how busy it is."""
from __future__ import annotations

import os
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


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (how busy the machine was around a timing); [] where unknown."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return []


def machine_facts() -> str:
    """One line for a benchmark's header: CPU model, cores, Python, the load average now."""
    load = load_average()
    return (f"{cpu_model()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
            f"load avg {load[0] if load else float('nan'):.2f} at start")
