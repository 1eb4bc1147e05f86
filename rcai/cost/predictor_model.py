"""The GNN predictor behind the cost-model interface: whole-subnet latency from its ONNX graph.

Search uses it to rank candidate subnets and to check the budget. The graph is the one of the
subnet's ONNX export without weights (the form of the predictor's training data, rcai.cost.archs),
built by default straight from the architecture (encoder "arch", rcai.predictor.arch_graph); encoder
"onnx" exports each subnet in memory and encodes the export (the same graphs, ~100x slower)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import onnx

from ..errors import RcaiError
from ..presets import Preset
from .model import Cost, CostModel, CounterCostModel


class PredictorCostModel(CostModel):
    """Per step: the predicted network call times the file's `loop_scale` plus the sampler's own
    per-step cost, where the predictor's file carries them (meta `sampler_ms`, copied from its latency
    dataset's meta.json at training; meta `loop_scale`, the measured conversion from the dataset's
    isolated calls to a call inside the loop: `calibrate_predictor`)."""

    name = "predictor"

    def __init__(self, preset: Preset, predictor: str | Path, batch: int = 1, encoder: str = "arch", sampler: str = "ddim"):
        super().__init__(preset)
        from ..predictor import LatencyPredictor

        if encoder not in ENCODERS:
            raise RcaiError(f"unknown predictor encoder {encoder!r}; known: {', '.join(ENCODERS)}")
        self.predictor = LatencyPredictor.load(predictor)
        self.counters = CounterCostModel(preset)
        self.batch = batch
        self.encoder = encoder
        self.sampler_ms = float((self.predictor.meta.get("sampler_ms") or {}).get(sampler, 0.0))
        self.loop_scale = float(self.predictor.meta.get("loop_scale") or 1.0)

    def graph(self, arch: Mapping[str, str]) -> onnx.ModelProto:
        from ..predictor.arch_graph import subnet_onnx

        return subnet_onnx(self.preset, arch, self.batch)

    def step_ms(self, archs: Sequence[Mapping[str, str]]) -> np.ndarray:
        """Predicted latency of one denoising step of each subnet."""
        return ENCODERS[self.encoder](self, archs)

    def estimate_many(self, archs: Sequence[Mapping[str, str]], steps: int = 1) -> list[Cost]:
        step_ms = self.step_ms(archs)
        out = []
        for a, ms in zip(archs, step_ms):
            c = self.counters.estimate(a, steps)
            out.append(Cost(latency_ms=float(ms) * self.loop_scale + self.sampler_ms, flops=c.flops, params=c.params, memory_bytes=c.memory_bytes, steps=steps,
                            sampler_ms=self.sampler_ms))
        return out

    def estimate(self, arch: Mapping[str, str], steps: int = 1) -> Cost:
        return self.estimate_many([arch], steps)[0]


ENCODERS = {  # how the predictor gets each subnet's graph
    "arch": lambda m, archs: m.predictor.predict_archs(m.preset, archs, batch=m.batch),
    "onnx": lambda m, archs: m.predictor.predict([m.graph(a) for a in archs]),
}


def calibrate_predictor(predictor: str | Path, table: str | Path, out: str | Path | None = None) -> float:
    """Fit the predictor's `loop_scale` to the whole loops a calibrated table was fitted on (its
    meta: each calibration subnet's per-step loop cost without the sampler): the median of measured /
    predicted call. Stored in the predictor file (`out`, default in place); returns the scale."""
    from ..predictor import LatencyPredictor
    from .table import CostTable

    t = CostTable.load(table)
    cal = t.calibration
    if cal is None or cal.target != "loop" or not cal.measured:
        raise RcaiError(f"{table}: not calibrated on whole loops (rcai profile --calibrate N)")
    from ..presets import get_preset

    model = PredictorCostModel(get_preset(t.meta["preset"]), predictor, batch=int(t.meta.get("batch", 1)))
    pred = model.step_ms([m["arch"] for m in cal.measured])
    scale = float(np.median([m["measured_ms"] / p for m, p in zip(cal.measured, pred)]))
    p = LatencyPredictor.load(predictor)
    p.meta["loop_scale"] = scale
    p.meta["loop_scale_from"] = {"table": str(table), "date": t.meta.get("date"), "subnets": len(cal.measured)}
    p.save(out or predictor)
    return scale
