"""runs/NAME/report.md: what the pipeline found and measured, with plots."""
from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .io import atomic_write_bytes, atomic_write_text


def _bar_plots(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["base", "subnet"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    x = range(len(names))
    ax = axes[0]
    ax.bar([i - 0.2 for i in x], [summary[n]["table_loop_ms"] for n in names], 0.4, label="table estimate")
    ax.bar([i + 0.2 for i in x], [summary[n]["measured_loop_ms"] for n in names], 0.4, label="measured")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("whole loop latency (ms)")
    ax.set_title("latency: estimate vs measurement")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.bar(x, [summary[n]["psnr"] for n in names], 0.5, color=["#888", "#3a7"])
    ax.axhline(summary["base"]["bicubic_psnr"], ls="--", c="k", lw=1, label="bicubic")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("quality (test crops)")
    ax.legend(fontsize=7)
    ax = axes[2]
    for n, c in zip(names, ["#888", "#3a7"]):
        ax.scatter(summary[n]["measured_loop_ms"], summary[n]["psnr"], s=60, c=c, label=n)
    ax.set_xlabel("measured whole loop (ms)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("latency / quality trade-off")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _machine_lines(summary: dict[str, Any]) -> list[str]:
    """Where the table was measured, and how loaded the machine was around the timings."""
    m, load = summary.get("table_meta") or {}, summary.get("load_avg") or {}
    fmt = lambda key: "/".join(f"{x:.2f}" for x in load.get(key) or []) or "n/a"  # noqa: E731
    return [
        f"Table profiled on host `{m.get('host')}` ({m.get('device_model')}, {m.get('backend')} {m.get('backend_version')}, "
        f"{m.get('threads')} thread(s), {m.get('date')}); this run on host `{summary.get('host')}`. Load average (1/5/15 min, {summary.get('cpu_count')} CPUs): "
        f"{fmt('start')} at the start, {fmt('before_timing')} before timing, {fmt('end')} at the end.",
        "",
    ]


def write_report(out: Path, summary: dict[str, Any], cfg) -> Path:
    _bar_plots(summary, out / "latency_psnr.png")
    b, s = summary["base"], summary["subnet"]
    lines = [
        f"# rcai pipeline report: {cfg.preset} on {cfg.device}",
        "",
        f"Cost table `{summary['table']}`; predictor `{summary['predictor'] or 'none'}`. Budget {summary['budget_ms']:.1f} ms for the whole "
        f"DDIM loop of {cfg.steps_per_sample} steps (base table latency / {cfg.speedup}).",
        "",
        *_machine_lines(summary),
        "| model | params | MFLOPs/step | table loop ms | measured loop ms | repeatability | PSNR dB | SSIM |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("base", b), ("subnet", s)):
        lines.append(f"| {name} ({r['subnet']}) | {r['params']:,} | {r['flops_per_step'] / 1e6:.1f} | {r['table_loop_ms']:.1f} | "
                     f"{r['measured_loop_ms']:.1f} | {r['repeatability']:.1%} | {r['psnr']:.2f} | {r['ssim']:.3f} |")
    lines += [
        f"| bicubic | | | | | | {b['bicubic_psnr']:.2f} | {b['bicubic_ssim']:.3f} |",
        "",
        f"**Measured speed-up of the whole loop: {summary['speedup_measured']:.2f}x** at {summary['psnr_delta']:+.2f} dB PSNR.",
        "",
        "Search: " + "; ".join(summary["search"]["notes"] or [summary["search"]["selection"]]),
        "",
        "## Estimate vs measurement",
        "",
        "| model | estimate | loop ms | measured loop ms (bench) | loop error | per-step error |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, r in (("base", b), ("subnet", s)):
        for k, e in r["estimates"].items():
            lines.append(f"| {name} | {k} | {e['loop_ms']:.1f} | {r['bench_loop_ms']:.1f} | {e['loop_error_pct']:+.1f}% | {e['step_error_pct']:+.1f}% |")
    if s.get("bench_psnr_onnx_vs_torch") is not None:
        lines.append(f"\nONNX Runtime loop vs torch loop, same noise: PSNR {s['bench_psnr_onnx_vs_torch']:.1f} dB.")
    lines += [
        "",
        "![latency and PSNR](latency_psnr.png)",
        "",
        "## Search curves",
        "",
        "![search](search/plots/search.png)",
        "",
        "## Samples (rows: bicubic, model, ground truth)",
        "",
        "Base model:",
        "",
        "![base samples](base/samples.png)",
        "",
        "Searched subnet:",
        "",
        "![subnet samples](search/samples.png)",
        "",
        f"Settings: `{asdict(cfg)}`",
    ]
    return atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
