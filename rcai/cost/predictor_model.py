"""The GNN predictor behind the cost-model interface: whole-subnet latency from its ONNX graph.

Search uses it to rank candidate subnets and to check the budget. Graphs are exported in memory
without weights, the same form as the predictor's training data (rcai.cost.archs)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import onnx
import torch

from ..onnx_export import DENOISER_INPUTS, DENOISER_OUTPUTS, denoiser_inputs, onnx_bytes
from ..space.presets import Preset
from ..space.subnet import SubnetSpec
from .model import Cost, CostModel, CounterCostModel


class PredictorCostModel(CostModel):
    name = "predictor"

    def __init__(self, preset: Preset, predictor: str | Path, batch: int = 1):
        super().__init__(preset)
        from ..predictor import LatencyPredictor

        self.predictor = LatencyPredictor.load(predictor)
        self.counters = CounterCostModel(preset)
        self.batch = batch

    def graph(self, arch: Mapping[str, str]) -> onnx.ModelProto:
        torch.manual_seed(0)
        model = SubnetSpec(self.preset, dict(arch)).build().eval()
        data = onnx_bytes(model, denoiser_inputs(self.preset, self.batch), DENOISER_INPUTS, DENOISER_OUTPUTS, export_params=False)
        return onnx.load_from_string(data)

    def estimate_many(self, archs: Sequence[Mapping[str, str]], steps: int = 1) -> list[Cost]:
        step_ms = self.predictor.predict([self.graph(a) for a in archs])
        out = []
        for a, ms in zip(archs, step_ms):
            c = self.counters.estimate(a, steps)
            out.append(Cost(latency_ms=float(ms), flops=c.flops, params=c.params, memory_bytes=c.memory_bytes, steps=steps))
        return out

    def estimate(self, arch: Mapping[str, str], steps: int = 1) -> Cost:
        return self.estimate_many([arch], steps)[0]
