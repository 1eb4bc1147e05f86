"""Targets (backends): the one interface that profiling, predictor data and benchmarks go through.

Importing this package registers every implementation; backend libraries (onnxruntime, torch,
tensorrt) are imported only when a target is created or used.
"""
from .base import MeasureConfig, Prepared, Target, TargetInfo, TimingStats
from .inputs import make_input_pool, normalize_specs, specs_from_onnx
from .measure import interleaved_rounds, measure_callable, measure_loop
from .overhead import export_probe, identity_onnx, measure_call_overhead, prepare_probe
from .registry import get_target, list_targets, register_target
from .spec import TargetSpec, resolve_device

# Implementations register themselves on import (one file each).
from . import onnxruntime, remote, tensorrt, torch_cuda, torch_eager  # noqa: E402,F401  isort: skip

__all__ = [
    "MeasureConfig", "Prepared", "Target", "TargetInfo", "TimingStats",
    "get_target", "list_targets", "register_target", "resolve_device", "TargetSpec",
    "interleaved_rounds", "measure_callable", "measure_loop",
    "make_input_pool", "normalize_specs", "specs_from_onnx",
    "export_probe", "identity_onnx", "measure_call_overhead", "prepare_probe",
]
