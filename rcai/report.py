"""runs/NAME/report.md: what the pipeline found and measured, with plots."""
from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .io import atomic_write_bytes, atomic_write_text


# "predicted": the quality model's pick, "random_search": random search of the search's training cost, where the run made them
ORDER = ("base", "subnet", "random_search", "random", "predicted", "cheapest")
COLORS = {"base": "#888", "subnet": "#3a7", "random_search": "#c93", "random": "#a7a", "predicted": "#37c", "cheapest": "#c55"}
LABELS = {"base": "base", "subnet": "searched subnet", "random_search": "random-search pick of equal training cost",
          "random": "random subnet of its latency", "predicted": "quality-model pick", "cheapest": "cheapest subnet"}


def names(summary: dict[str, Any]) -> tuple[str, ...]:
    return tuple(n for n in ORDER if n in summary)


def _bar_plots(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = names(summary)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    x = range(len(shown))
    ax = axes[0]
    ax.bar([i - 0.2 for i in x], [summary[n]["table_loop_ms"] for n in shown], 0.4, label="table estimate")
    ax.bar([i + 0.2 for i in x], [summary[n]["measured_loop_ms"] for n in shown], 0.4, label="measured")
    ax.axhline(summary["budget_ms"], ls=":", c="k", lw=1, label="budget")
    ax.set_xticks(list(x), shown, rotation=30, ha="right", fontsize=8)  # six names side by side overlap
    ax.set_ylabel("whole loop latency (ms)")
    ax.set_title("latency: estimate vs measurement")
    ax.legend(fontsize=7)
    ax = axes[1]
    q = [summary[n]["quality"] for n in shown]
    ax.bar(x, [r["gain_db"] for r in q], 0.5, color=[COLORS[n] for n in shown],
           yerr=[[r["gain_db"] - r["gain_lo"] for r in q], [r["gain_hi"] - r["gain_db"] for r in q]], capsize=4)
    ax.axhline(0, ls="--", c="k", lw=1, label="bicubic")
    ax.set_xticks(list(x), shown, rotation=30, ha="right", fontsize=8)  # six names side by side overlap
    ax.set_ylabel("gain over bicubic (dB)")
    ax.set_title("quality: posterior mean, held-out photos")
    ax.legend(fontsize=7)
    ax = axes[2]
    for n in shown:
        r = summary[n]
        ax.errorbar(r["measured_loop_ms"], r["quality"]["gain_db"], yerr=[[r["quality"]["gain_db"] - r["quality"]["gain_lo"]], [r["quality"]["gain_hi"] - r["quality"]["gain_db"]]],
                    fmt="o", ms=8, c=COLORS[n], label=n)
    ax.axvline(summary["budget_ms"], ls=":", c="k", lw=1, label="budget")
    ax.axhline(0, ls="--", c="k", lw=1)
    ax.set_xlabel("measured whole loop (ms)")
    ax.set_ylabel("gain over bicubic (dB)")
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


def _pct(x: Any) -> str:
    return "n/a" if x is None or x != x else f"{x:+.1f}%"


def _loop_lines(summary: dict[str, Any]) -> list[str]:
    """How the loops were measured, which figure is quoted, and the base measured twice."""
    lm, again, b = summary.get("loop_measurement"), summary.get("base_again"), summary["base"]
    if not lm:
        return []
    clock = {"cpu": "this process's CPU time (the loop runs on one thread here: its wall time is that plus the time neighbours held "
                    "the core, which moves with them)", "wall": "the wall clock"}[lm["clock"]]
    lines = [f"Loops: every model's whole {summary.get('steps', 50)}-step DDIM loop measured once, together, in {lm['rounds']} rounds "
             f"(a new random order each round, {lm['loops_per_round']} loop a visit); the figure is the median of all its loops on {clock}. "
             f"Re-measured = the same statistic over the second half of the rounds vs the first. Load {lm['load_before']} -> {lm['load_after']}."]
    if again:
        d = 100.0 * (again["median_ms"] / b["measured_loop_ms"] - 1)
        lines.append(f"The same base measured twice in these rounds: {b['measured_loop_ms']:.1f} and {again['median_ms']:.1f} ms ({d:+.1f}%); "
                     f"wall clock {b.get('loop_wall_ms', float('nan')):.1f} and {again['wall_ms']:.1f} ms.")
    return lines + [""]


def verdict_lines(summary: dict[str, Any]) -> list[str]:
    """The report's first lines: does each pick beat the trivial answer (the cheapest subnet, which
    always costs less loop) and a random subnet of its own table latency, on quality? Said plainly
    where it does not."""
    refs = [(n, summary[n]) for n in ("cheapest", "random") if summary.get(n)]
    out = _random_search_lines(summary)
    for name in ("subnet", "predicted"):
        r = summary.get(name)
        if not r or not refs:
            continue
        q, ms = r["quality"]["gain_db"], r["measured_loop_ms"]
        for ref, c in refs:
            cq, cms = c["quality"]["gain_db"], c["measured_loop_ms"]
            if q > cq:
                out.append(f"The {LABELS[name]} beats the {LABELS[ref]}: {q:+.3f} dB at {ms:.1f} ms vs {cq:+.3f} dB at {cms:.1f} ms "
                           f"({q - cq:+.3f} dB for {ms / cms:.2f}x its loop; one training seed each, the intervals below are over crops).")
            else:
                out.append(f"**The {LABELS[name]} does not beat the {LABELS[ref]}**: {q:+.3f} dB at {ms:.1f} ms vs {cq:+.3f} dB at {cms:.1f} ms"
                           + (": at this training budget the trivial answer wins." if ref == "cheapest" else ": the search added nothing beyond its latency."))
    return out + [""] if out else []


def _random_search_lines(summary: dict[str, Any]) -> list[str]:
    """What the search bought over random search of the same training cost (the best of as many random
    subnets near the budget as the search's cost in trainings, chosen on the search's training seed and
    trained again like every model here), where the run measured it."""
    r, rs = summary.get("subnet"), summary.get("random_search")
    if not r or not rs:
        return []
    q, ms, rq, rms = r["quality"]["gain_db"], r["measured_loop_ms"], rs["quality"]["gain_db"], rs["measured_loop_ms"]
    cost = (summary.get("search") or {}).get("trainings")
    what = f"random search of the same training cost ({cost:.1f} trainings: the best of {max(1, round(cost))} random subnets near the budget)" \
        if cost is not None else "random search of the same training cost"
    if q > rq:
        return [f"**What the search bought**: {q - rq:+.3f} dB over {what}: {q:+.3f} dB at {ms:.1f} ms vs {rq:+.3f} dB at {rms:.1f} ms "
                "(one training seed each; the intervals below are over crops)."]
    return [f"**The search bought nothing over {what}**: the searched subnet {q:+.3f} dB at {ms:.1f} ms vs the random-search pick "
            f"{rq:+.3f} dB at {rms:.1f} ms ({q - rq:+.3f} dB; one training seed each)."]


HOW_TRAINED = {
    "halving": "every model here is trained from scratch the same way (the {protocol} protocol, rcai/train/protocol.py, stopped at "
               "the pipeline's train_steps, one training seed); the searched subnet was chosen on trainings under another seed, so its "
               "figure here is a fresh training, not the score that selected it",
    "darts": "the searched subnet is inherited from the supernet and fine-tuned; the other models are trained from scratch with the same "
             "number of weight updates",
}


def how_trained(search: dict[str, Any]) -> str:
    """How the report's models were trained, naming the halving search's protocol (`cpu` or `gpu`)."""
    protocol = f"`{search['protocol']}`" if "protocol" in search else "training device's"
    return HOW_TRAINED.get(search.get("strategy", "darts"), "").format(protocol=protocol)


def write_report(out: Path, summary: dict[str, Any], cfg) -> Path:
    _bar_plots(summary, out / "latency_quality.png")
    b, s = summary["base"], summary["subnet"]
    search = summary["search"]
    use = s["measured_loop_ms"] / summary["budget_ms"]
    lines = [
        f"# rcai pipeline report: {cfg.preset} on {cfg.device}",
        "",
        *verdict_lines(summary),
        f"Cost table `{summary['table']}`; predictor `{summary['predictor'] or 'none'}`. Budget {summary['budget_ms']:.1f} ms for the whole "
        f"DDIM loop of {cfg.steps_per_sample} steps (base table latency / {cfg.speedup}). The searched subnet lands at "
        f"{search['table_loop_ms'] or s['table_loop_ms']:.1f} ms by the table ({(search['table_loop_ms'] or s['table_loop_ms']) / summary['budget_ms']:.0%} "
        f"of the budget) and {s['measured_loop_ms']:.1f} ms measured ({use:.0%})"
        + (" — **flagged: more than 15% under its budget**." if search.get("far_under_budget") else "."),
        "",
        *_machine_lines(summary),
        "Quality is the network's posterior mean E[hr | lr] on 64 crops of held-out photos that no split trains or validates on, as "
        "gain over bicubic in dB (pooled MSE, 95% bootstrap interval over crops; a zero residual = bicubic scores 0). Sampled PSNR, "
        "the report's figure, is the second view.",
        "",
        *_loop_lines(summary),
        "| model | params | MFLOPs/step | table loop ms | measured loop ms | re-measured | quality: gain dB [95% CI] | sampled PSNR dB | vs bicubic | SSIM |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names(summary):
        r = summary[name]
        q = r["quality"]
        lines.append(f"| {LABELS[name]} ({r['subnet']}) | {r['params']:,} | {r['flops_per_step'] / 1e6:.1f} | {r['table_loop_ms']:.1f} | "
                     f"{r['measured_loop_ms']:.1f} | {_pct(r.get('remeasure_pct'))} | {q['gain_db']:+.3f} [{q['gain_lo']:+.3f}, {q['gain_hi']:+.3f}] | "
                     f"{r['psnr']:.2f} | {r['psnr_gain_db']:+.2f} | {r['ssim']:.3f} |")
    lines += [
        f"| bicubic (= zero residual) | | | | | | +0.000 | {b['bicubic_psnr']:.2f} | +0.00 | {b['bicubic_ssim']:.3f} |",
        "",
        f"**Measured speed-up of the whole loop: {summary['speedup_measured']:.2f}x** at {summary['quality_delta']:+.3f} dB quality "
        f"(searched subnet vs base; {how_trained(search)}).",
    ]
    if "predicted" in summary:
        p = summary["predicted"]
        lines.append(f"\nThe quality model's pick (`rcai search --strategy knapsack`: the subnet of highest predicted quality within the budget, "
                     f"by per-op effects fitted on subnets trained from scratch) measures {p['measured_loop_ms']:.1f} ms at "
                     f"{p['quality']['gain_db']:+.3f} dB, trained from scratch like the base: {b['measured_loop_ms'] / p['measured_loop_ms']:.2f}x "
                     f"faster than the base at {p['quality']['gain_db'] - b['quality']['gain_db']:+.3f} dB.")
    below = [LABELS[n] for n in names(summary) if summary[n]["psnr_gain_db"] < 0]
    if below:
        lines.append(f"\nSampled outputs are **below bicubic** for: {', '.join(below)} (one sample has about twice the error of the posterior "
                     "mean, so models trained for minutes sample below bicubic; the quality column is what ranks them).")
    lines += _deployed_loop_lines(summary)
    lines += [
        "",
        "Search: " + "; ".join(search["notes"] or [search["selection"]]),
        "",
        "## Estimate vs measurement",
        "",
        "The measured loop is the one figure above (the same measurement, not a second one); the estimate includes the sampler's "
        "own per-step term measured with the table.",
        "",
        "| model | estimate | loop ms | of which sampler ms | measured loop ms | loop error |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name in names(summary):
        r = summary[name]
        for k, e in r.get("estimates", {}).items():
            lines.append(f"| {LABELS[name]} | {k} | {e['loop_ms']:.1f} | {e.get('sampler_ms', 0.0) * e['steps']:.1f} | {r['measured_loop_ms']:.1f} | "
                         f"{e['loop_error_pct']:+.1f}% |")
    if s.get("bench_psnr_onnx_vs_torch") is not None:
        lines.append(f"\nONNX Runtime loop vs torch loop, same noise: PSNR {s['bench_psnr_onnx_vs_torch']:.1f} dB.")
    lines += [
        "",
        "![latency and quality](latency_quality.png)",
        "",
        *(["## Search curves", "", "![search](search/plots/search.png)", ""] if search.get("strategy", "darts") == "darts" else []),
        "## Samples (rows: bicubic, model, ground truth)",
        "",
        "Base model:",
        "",
        "![base samples](base/samples.png)",
        "",
        "Searched subnet:",
        "",
        f"![subnet samples]({Path(s['run']).relative_to(out).as_posix() if Path(s['run']).is_relative_to(out) else s['run']}/samples.png)",
        "",
        f"Settings: `{asdict(cfg)}`",
    ]
    return atomic_write_text(out / "report.md", "\n".join(lines) + "\n")


def _deployed_loop_lines(summary: dict[str, Any]) -> list[str]:
    """What users deploy, scored: every model's ONNX loop on the held-out crops under K noise seeds
    (rcai/train/loop_quality.py), beside bicubic and the ideal sampler; the pick vs the base paired."""
    if "loop" not in summary["base"]:
        return []  # a summary written before the loop metric
    b, d = summary["base"]["loop"], summary["loop_delta"]
    lines = [
        "",
        "## The deployed loop's output",
        "",
        f"Each model's ONNX loop ({b['sampler']}, {b['steps']} steps) on {b['crops']} held-out crops under {b['seeds']} noise seeds, the "
        "same seeds for every model. An ideal sampler (exact posterior samples) sits 3.01 dB under the posterior mean's PSNR; the "
        "mean of the samples moves towards the posterior mean as seeds are added. Across two training seeds this metric ranks "
        "subnets less stably than the quality column (benchmarks/results/loop_metric.md: Spearman +0.59 single samples, "
        "+0.70 the mean of 4, +0.74 the posterior mean).",
        "",
        "| model | single sample PSNR dB (sd over seeds) | vs bicubic | ideal sampler | mean of samples PSNR | consistency PSNR |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in names(summary):
        r = summary[name]["loop"]
        ideal = "" if r.get("ideal_psnr") is None else f"{r['ideal_psnr']:.2f}"
        lines.append(f"| {LABELS[name]} | {r['sample_psnr']:.2f} ({r['sample_psnr_sd']:.2f}) | {r['sample_vs_bicubic_db']:+.2f} | {ideal} | "
                     f"{r['mean_psnr']:.2f} | {r['consistency_psnr']:.2f} |")
    lines += [
        f"| bicubic | {b['bicubic_psnr']:.2f} | +0.00 | | | {b['bicubic_consistency_psnr']:.2f} |",
        "",
        f"Searched subnet vs base on the deployed loop: {d['sample_psnr']:+.3f} dB single-sample PSNR (paired over {d['seeds']} noise seeds, "
        f"95% interval [{d['sample_psnr_lo']:+.3f}, {d['sample_psnr_hi']:+.3f}]), {d['mean_psnr']:+.3f} dB on the mean of the samples; one training seed, so a training "
        "seed's spread (benchmarks/results/loop_metric.md) is not in these figures.",
    ]
    return lines
