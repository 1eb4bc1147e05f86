"""Helpers shared by the benchmark scripts: machine description, result files."""
from __future__ import annotations

import subprocess
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    from rcai.targets.sysinfo import machine_facts

    return machine_facts()


def load1() -> float:
    """The 1-minute load average now (`rcai.targets.sysinfo.load_average()[0]`); nan where unknown."""
    from rcai.targets.sysinfo import load_average

    load = load_average()
    return load[0] if load else float("nan")


def load_text(load: list[float]) -> str:
    """1/5/15-minute load averages (`rcai.targets.sysinfo.load_average()`) as 'a/b/c', 'unknown' for []."""
    return "/".join(f"{x:.2f}" for x in load) or "unknown"


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return "unknown"


def add_train_device(ap) -> None:
    """--train-device / --train-precision of a benchmark that trains (rcai/train/device.py; its value
    is checked where the training starts)."""
    ap.add_argument("--train-device", default="auto", help="where its trainings run: auto | cpu | cuda | cuda:<i> (not the target)")
    ap.add_argument("--train-precision", default="auto", help="auto | fp32 | bf16 (auto: bf16 on a CPU with native bf16, else fp32)")


def write(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(text)
    return path


def scatter_vs_measured(measured, series: dict, path: Path, xlabel: str = "measured ms per denoising step") -> Path:
    """Estimated vs measured latency, one colour per estimate, with the y = x line and a ±10% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    for name, est in series.items():
        ax.scatter(measured, est, s=7, alpha=0.7, label=name)
    lo, hi = float(min(measured)), float(max(measured))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="gray", alpha=0.15, label="±10%")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("estimated ms")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
