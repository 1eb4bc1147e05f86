"""Deployment: export the searched subnet's denoiser to ONNX with a sidecar, rebuild its sampling
loop from the sidecar alone, and benchmark the whole loop on a target."""
from .bench import PSNR_MIN_FP32, BenchConfig, BenchResult, bench_loop
from .engines import Engine, build_engine
from .estimates import estimate_vs_measured, load_estimators
from .compare import compare_loops
from .export import FP32_TOLERANCE, ExportReport, export_subnet_onnx
from .images import lr_input
from .runtime import DeployedModel, PreparedDenoiser, default_steps, read_deployment
from .sidecar import DeploySidecar, TensorSpec, WeightsRef, sidecar_path
from .weights import build_model, load_state, reference_model, run_files

__all__ = [
    "BenchConfig", "BenchResult", "bench_loop", "PSNR_MIN_FP32",
    "Engine", "build_engine", "compare_loops",
    "estimate_vs_measured", "load_estimators",
    "ExportReport", "export_subnet_onnx", "FP32_TOLERANCE",
    "lr_input",
    "DeployedModel", "PreparedDenoiser", "default_steps", "read_deployment",
    "DeploySidecar", "TensorSpec", "WeightsRef", "sidecar_path",
    "build_model", "load_state", "reference_model", "run_files",
]
