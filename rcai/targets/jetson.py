"""Jetson specifics: power mode and clocks (nvpmodel, jetson_clocks) for the table's metadata, and
tegrastats power samples -> energy per inference.

Unverified on hardware: no Jetson is reachable from the development machine. The tegrastats parser
is tested on lines written in the formats of JetPack 4.x (`POM_5V_IN 3306/3306`, mW), JetPack 5.x
(`VDD_IN 5000mW/5000mW`) and JetPack 6.x; the board's total input rail is what energy is computed from.
"""
from __future__ import annotations

import re
import select
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import RcaiError

# Total board input power rail, by name (Nano/TX: POM_5V_IN; Xavier NX, Orin NX/Nano: VDD_IN). Boards
# without one (AGX Orin: VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0, VDDQ_VDD2_1V8AO) sum all their rails.
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
NOT_RAILS = ("NC",)  # unconnected monitor channels
# "NAME 1234/5678" (JetPack 4: mW implied) or "NAME 1234mW/5678mW" (JetPack 5/6); current/average.
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*[A-Z0-9])\s+(\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
_RAM = re.compile(r"\bRAM\s+(\d+)/(\d+)MB")
_GPU = re.compile(r"\bGR3D_FREQ\s+(\d+)%(?:@\[?(\d+))?")
_CPU = re.compile(r"\bCPU\s+\[([^\]]*)\]")
_TEMP = re.compile(r"\b([A-Za-z0-9_]+)@(-?\d+(?:\.\d+)?)C\b")
_STAMP = re.compile(r"^(\d\d-\d\d-\d{4} \d\d:\d\d:\d\d)\s+")


@dataclass
class TegraSample:
    """One tegrastats line: rails in mW (current reading), RAM in MB, GPU load %, temperatures in C."""

    rails_mw: dict[str, float] = field(default_factory=dict)
    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    gpu_load_pct: int | None = None
    gpu_freq_mhz: int | None = None
    cpu_load_pct: list[int] = field(default_factory=list)
    temps_c: dict[str, float] = field(default_factory=dict)
    stamp: str | None = None

    @property
    def total_mw(self) -> float | None:
        """Board input power: its total rail, else the sum of all rails; None without rails."""
        for name in TOTAL_RAILS:
            if name in self.rails_mw:
                return self.rails_mw[name]
        return sum(self.rails_mw.values()) if self.rails_mw else None


def parse_tegrastats(line: str) -> TegraSample:
    """Parse one tegrastats line (any JetPack 4-6 format); RcaiError if it holds nothing tegrastats writes."""
    s = TegraSample()
    m = _STAMP.match(line)
    if m:
        s.stamp = m.group(1)
    if m := _RAM.search(line):
        s.ram_used_mb, s.ram_total_mb = int(m.group(1)), int(m.group(2))
    if m := _GPU.search(line):
        s.gpu_load_pct = int(m.group(1))
        s.gpu_freq_mhz = int(m.group(2)) if m.group(2) else None
    if m := _CPU.search(line):
        s.cpu_load_pct = [int(c.split("%")[0]) for c in m.group(1).split(",") if c.split("%")[0].isdigit()]
    for name, cur, _avg in _RAIL.findall(line):
        if name not in NOT_RAILS:
            s.rails_mw[name] = float(cur)
    s.temps_c = {k: float(v) for k, v in _TEMP.findall(line) if float(v) > -200}  # -256C: sensor off
    if s.ram_total_mb is None and not s.rails_mw:
        raise RcaiError(f"not a tegrastats line: {line.strip()[:80]!r}")
    return s


def energy_per_inference_mj(samples: Sequence[TegraSample], seconds: float, inferences: int,
                            idle_mw: float | None = None) -> float:
    """Energy per inference in mJ: mean total-rail power over the samples x seconds / inferences.
    With idle_mw, the idle power is subtracted first (the inference's own share)."""
    watts = [s.total_mw for s in samples if s.total_mw is not None]
    if not watts:
        raise RcaiError("tegrastats: no power rails in the samples (needs a board with INA3221 monitors)")
    if inferences < 1 or seconds <= 0:
        raise RcaiError("energy: need >= 1 inference and a positive duration")
    mean_mw = sum(watts) / len(watts) - (idle_mw or 0.0)
    return mean_mw * seconds / inferences  # mW * s = mJ


class Tegrastats:
    """`tegrastats --interval MS` in the background while a block runs (a separate pass from timing)."""

    def __init__(self, interval_ms: int = 100, binary: str = "tegrastats"):
        self.cmd = [binary, "--interval", str(int(interval_ms))]
        self.lines: list[str] = []

    def __enter__(self) -> "Tegrastats":
        if shutil.which(self.cmd[0]) is None:
            raise RcaiError("tegrastats not found (not a Jetson?)")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        # the measured block starts once the sampler is live (its start-up would otherwise eat the window)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10.0)
        self.first = self.proc.stdout.readline() if ready else ""
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        self.lines = [ln for ln in [self.first, *out.splitlines()] if ln.strip()]

    def samples(self) -> list[TegraSample]:
        return [parse_tegrastats(ln) for ln in self.lines]


def measure_energy(run: Callable[[], object], seconds: float = 5.0, interval_ms: int = 100,
                   binary: str = "tegrastats") -> dict[str, float]:
    """Energy per inference: call `run` back to back for `seconds` while tegrastats samples power
    (a separate pass from the latency measurement, whose timing it would disturb)."""
    import time

    n = 0
    with Tegrastats(interval_ms, binary) as ts:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            run()
            n += 1
        elapsed = time.perf_counter() - t0
    samples = ts.samples()
    mj = energy_per_inference_mj(samples, elapsed, n)
    mean_w = sum(s.total_mw or 0.0 for s in samples) / len(samples) / 1e3
    return {"energy_mj": mj, "mean_power_w": mean_w, "inferences": n, "seconds": elapsed, "samples": len(samples)}


def parse_nvpmodel(text: str) -> dict[str, str | int]:
    """`nvpmodel -q` -> {"power_mode": "MAXN", "power_mode_id": 0}."""
    out: dict[str, str | int] = {}
    for ln in text.splitlines():
        if m := re.match(r"\s*NV Power Mode:\s*(.+?)\s*$", ln):
            out["power_mode"] = m.group(1)
        elif ln.strip().isdigit() and "power_mode" in out:
            out["power_mode_id"] = int(ln.strip())
    return out


def _run(cmd: Iterable[str]) -> str | None:
    cmd = list(cmd)
    if shutil.which(cmd[0]) is None:
        return None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def jetson_facts(root: Path = Path("/")) -> dict[str, object]:
    """On a Jetson: L4T release, nvpmodel power mode, jetson_clocks state; {} elsewhere."""
    release = root / "etc" / "nv_tegra_release"
    if not release.is_file():
        return {}
    facts: dict[str, object] = {"l4t_release": release.read_text(errors="replace").splitlines()[0].strip("# ").strip()}
    q = _run(["nvpmodel", "-q"])
    if q is not None:
        facts.update(parse_nvpmodel(q))
    clocks = _run(["jetson_clocks", "--show"])
    if clocks is not None:
        facts["jetson_clocks_show"] = clocks.strip().splitlines()[:20]
    return facts
