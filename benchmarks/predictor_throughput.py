"""Latency predictor throughput: batched predictions per second on search-sized graphs (UNet-like
conv nets exported from torch to ONNX without weights, ~100-300 ONNX nodes), and the time to encode
an ONNX file / an in-memory ModelProto into a graph.

    python benchmarks/predictor_throughput.py [--rounds 7] [--graphs 2048]

Interleaved rounds (every graph size and thread count once per round); medians reported, with the
spread across rounds. The predictor is freshly initialised with the default ModelConfig: its cost
does not depend on the weights. Writes benchmarks/results/predictor_throughput.{md,csv}.

Its UNet is its own on purpose, not rcai/model's: a size ladder of plain SR3-like graphs (no attention,
no mixed ops, 5 depths/widths, 101-373 nodes) that the committed figures are per-size for, where the
library's model gives one preset's subnets (those are measured end to end by predictor_speed.py).
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import torch
from common import load1
from torch import nn

from rcai.predictor.graph import encode_onnx
from rcai.predictor.model import LatencyGNN, ModelConfig
from rcai.predictor.predictor import LatencyPredictor

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "benchmarks" / "results"


class Block(nn.Module):
    def __init__(self, ci: int, co: int, temb: int):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(4, ci), nn.Conv2d(ci, co, 3, padding=1)
        self.t = nn.Linear(temb, co)
        self.n2, self.c2 = nn.GroupNorm(4, co), nn.Conv2d(co, co, 3, padding=1)
        self.skip = nn.Conv2d(ci, co, 1) if ci != co else nn.Identity()

    def forward(self, x, t):
        h = self.c1(torch.nn.functional.silu(self.n1(x))) + self.t(t)[:, :, None, None]
        return self.skip(x) + self.c2(torch.nn.functional.silu(self.n2(h)))


class UNet(nn.Module):
    """SR3-like: time embedding, residual blocks, stride-2 downsampling, nearest upsampling, skips."""

    def __init__(self, ch: int, mults: tuple[int, ...], blocks: int):
        super().__init__()
        temb = ch * 4
        self.temb = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.inp = nn.Conv2d(6, ch, 3, padding=1)
        self.down, self.up, chans, c = nn.ModuleList(), nn.ModuleList(), [ch], ch
        for i, m in enumerate(mults):
            for _ in range(blocks):
                self.down.append(Block(c, ch * m, temb)); c = ch * m; chans.append(c)
            if i < len(mults) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1)); chans.append(c)
        self.mid = Block(c, c, temb)
        for i, m in reversed(list(enumerate(mults))):
            for _ in range(blocks + 1):
                self.up.append(Block(c + chans.pop(), ch * m, temb)); c = ch * m
            if i > 0:
                self.up.append(nn.Upsample(scale_factor=2.0, mode="nearest"))
        self.out = nn.Sequential(nn.GroupNorm(4, c), nn.SiLU(), nn.Conv2d(c, 3, 3, padding=1))

    def forward(self, x, t):
        t = self.temb(t)
        h, hs = self.inp(x), []
        hs.append(h)
        for m in self.down:
            h = m(h, t) if isinstance(m, Block) else m(h)
            hs.append(h)
        h = self.mid(h, t)
        for m in self.up:
            h = m(torch.cat([h, hs.pop()], 1), t) if isinstance(m, Block) else m(h)
        return self.out(h)


CONFIGS = {  # name -> (channels, multipliers, blocks per level); ~100 to ~370 graph nodes
    "unet_xs": (16, (1,), 1),
    "unet_s": (16, (1, 2), 1),
    "unet_m": (32, (1, 2, 2), 1),
    "unet_l": (32, (1, 2, 2, 2), 1),
    "unet_xl": (32, (1, 2, 4), 2),
}


def export(name: str) -> bytes:
    ch, mults, blocks = CONFIGS[name]
    net = UNet(ch, mults, blocks).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 6, 64, 64), torch.randn(1, ch)), buf, dynamo=False,
                          export_params=False, opset_version=17)
    return buf.getvalue()


def timed(fn, repeat: int = 1) -> float:
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--graphs", type=int, default=2048, help="graphs per throughput measurement")
    args = ap.parse_args()
    load_start = load1()
    pred = LatencyPredictor(LatencyGNN(ModelConfig()), {"targets": ["untrained"]})
    blobs = {n: export(n) for n in CONFIGS}
    tmp = Path(tempfile.mkdtemp())
    files = {n: tmp / f"{n}.onnx" for n in CONFIGS}
    for n, b in blobs.items():
        files[n].write_bytes(b)
    graphs = {n: encode_onnx(files[n]) for n in CONFIGS}
    protos = {n: onnx.load_from_string(b) for n, b in blobs.items()}
    rows = []
    for r in range(args.rounds):
        for n in CONFIGS:
            row = {"round": r, "graph": n, "nodes": graphs[n].num_nodes, "edges": graphs[n].edge_index.shape[1],
                   "onnx_nodes": len(protos[n].graph.node)}
            row["encode_file_ms"] = 1e3 * timed(lambda: encode_onnx(files[n]), 5)
            row["encode_proto_ms"] = 1e3 * timed(lambda: encode_onnx(protos[n]), 5)
            batch = [graphs[n]] * args.graphs
            for threads in (1, 2):
                torch.set_num_threads(threads)
                pred.predict(batch[:64])  # warm up
                row[f"pred_per_s_{threads}t"] = args.graphs / timed(lambda: pred.predict(batch))
            torch.set_num_threads(1)
            row["end_to_end_per_s_1t"] = 64 / timed(lambda: pred.predict([protos[n]] * 64))
            rows.append(row)
            print({k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    shutil.rmtree(tmp)
    df = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / "predictor_throughput.csv", index=False)
    write_markdown(df, load_start, load1(), args)


def write_markdown(df: pd.DataFrame, load_start: float, load_end: float, args) -> None:
    cols = ["encode_file_ms", "encode_proto_ms", "pred_per_s_1t", "pred_per_s_2t", "end_to_end_per_s_1t"]
    lines = [
        "# Latency predictor throughput",
        "",
        f"`python benchmarks/predictor_throughput.py --rounds {args.rounds} --graphs {args.graphs}` on "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}. "
        f"Load average (other jobs on the machine) at start {load_start:.1f}, at end {load_end:.1f}.",
        "",
        "Medians over interleaved rounds; `spread` = (max - min) / median across rounds. "
        "Predictions: pre-encoded graphs, `LatencyPredictor.predict` (batches of <= 6000 nodes; default "
        "ModelConfig: hidden 32, 3 layers). "
        "End-to-end: encode an in-memory ModelProto + predict, 1 thread.",
        "",
        "| graph | nodes | edges | encode file (ms) | encode proto (ms) | pred/s 1 thread | pred/s 2 threads | end-to-end/s | spread pred/s 1t |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, g in df.groupby("graph", sort=False):
        med = {c: statistics.median(g[c]) for c in cols}
        spread = (g["pred_per_s_1t"].max() - g["pred_per_s_1t"].min()) / med["pred_per_s_1t"]
        lines.append(f"| {n} | {g.nodes.iloc[0]} | {g.edges.iloc[0]} | {med['encode_file_ms']:.1f} | "
                     f"{med['encode_proto_ms']:.1f} | {med['pred_per_s_1t']:,.0f} | {med['pred_per_s_2t']:,.0f} | "
                     f"{med['end_to_end_per_s_1t']:,.0f} | {spread:.0%} |")
    meds = df.groupby("graph", sort=False)[["nodes", "pred_per_s_1t", "pred_per_s_2t"]].median()
    best = meds[["pred_per_s_1t", "pred_per_s_2t"]].max(axis=1)
    met = [f"{n} ({int(meds.nodes[n])} nodes)" for n in meds.index if best[n] >= 10_000]
    missed = [f"{n} ({int(meds.nodes[n])} nodes): {best[n]:,.0f}/s" for n in meds.index if best[n] < 10_000]
    lines += ["", f"Goal >= 10,000 predictions/s on 2 cores: met for {', '.join(met) or 'none'}; "
              f"not met for {', '.join(missed) or 'none'}. Encoding (ONNX -> graph, pure Python + ONNX shape "
              "inference) costs far more than the GNN: a search should encode each distinct candidate once."]
    first, last = df[df["round"] == 0], df[df["round"] == df["round"].max()]
    rep = np.median(last["pred_per_s_1t"].values / first["pred_per_s_1t"].values)
    lines += ["", f"Repeatability: last round / first round pred/s (1 thread), median over graphs: {rep:.2f}.", ""]
    (RESULTS / "predictor_throughput.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
