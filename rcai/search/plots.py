"""PNG plots of a search log: losses, expected vs argmax-subnet latency and FLOPs, entropy, tau."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..io import atomic_write_bytes

PANELS = [
    ("losses", [("loss_weights", "model engine (train loss)"), ("loss_data", "arch engine (val loss)"), ("loss_arch", "arch loss (with cost)")]),
    ("latency_ms", [("expected_loop_ms", "E[loop latency] of the supernet"), ("subnet_loop_ms", "argmax subnet (table)")]),
    ("flops", [("expected_flops", "E[FLOPs] of the supernet"), ("subnet_flops", "argmax subnet")]),
    ("alpha", [("alpha_entropy", "mean alpha entropy (nats)")]),
    ("temperature", [("tau", "softmax temperature (eq. 8)")]),
]


def plot_search(records: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig_all, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4))
    for ax_all, (name, series) in zip(axes, PANELS):
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for target in (ax, ax_all):
            for key, label in series:
                pts = [(r["step"], r[key]) for r in records if key in r]
                if pts:
                    target.plot(*zip(*pts), label=label)
            target.set_xlabel("search step")
            target.set_title(name)
            target.legend(fontsize=7)
        fig.tight_layout()
        written.append(_save(fig, out_dir / f"{name}.png"))
        plt.close(fig)
    fig_all.tight_layout()
    written.append(_save(fig_all, out_dir / "search.png"))
    plt.close(fig_all)
    return written


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return atomic_write_bytes(path, buf.getvalue())
