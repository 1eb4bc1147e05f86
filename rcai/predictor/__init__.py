"""GNN latency predictor: whole-network latency on a target from ONNX graphs (weights not needed).

    from rcai.predictor import LatencyPredictor, train_predictor, encode_onnx, evaluate
    pred = train_predictor("data/cpu.csv")            # CSV: model, latency_ms[, device]
    pred.save("predictors/cpu.pt")
    ms = LatencyPredictor.load("predictors/cpu.pt").predict([onnx_model_or_path, ...])
    ms = LatencyPredictor.load("predictors/cpu-tiny.pt").predict_archs(preset, [arch, ...])  # no export
"""
from .arch_graph import ArchEncoder
from .graph import FEATURE_VERSION, encode_onnx
from ..stats import accuracy as evaluate  # estimate vs measured: rcai/stats.py
from .predictor import LatencyPredictor, train_predictor

__all__ = ["ArchEncoder", "FEATURE_VERSION", "LatencyPredictor", "encode_onnx", "evaluate", "train_predictor"]
