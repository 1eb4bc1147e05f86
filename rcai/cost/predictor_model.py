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
from ..space.presets import Preset
from .model import Cost, CostModel, CounterCostModel


class PredictorCostModel(CostModel):
    """Per step: the predicted network call plus the sampler's own per-step cost where the predictor's
    file carries it (meta `sampler_ms`, copied from its latency dataset's meta.json at training)."""

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
            out.append(Cost(latency_ms=float(ms) + self.sampler_ms, flops=c.flops, params=c.params, memory_bytes=c.memory_bytes, steps=steps,
                            sampler_ms=self.sampler_ms))
        return out

    def estimate(self, arch: Mapping[str, str], steps: int = 1) -> Cost:
        return self.estimate_many([arch], steps)[0]


ENCODERS = {  # how the predictor gets each subnet's graph
    "arch": lambda m, archs: m.predictor.predict_archs(m.preset, archs, batch=m.batch),
    "onnx": lambda m, archs: m.predictor.predict([m.graph(a) for a in archs]),
}
