"""What the cost table and the GNN predictor said a subnet's sampling loop would take, next to the
measurement: loop estimate = per-step estimate x steps; error % = (estimate - measured) / measured."""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import onnx

from ..errors import RcaiError
from .sidecar import DeploySidecar

@dataclass
class Estimate:
    source: str  # "table" | "predictor"
    path: str
    step_ms: float  # one denoiser call
    loop_ms: float  # step_ms x steps
    loop_error_pct: float | None = None  # vs the measured whole loop
    step_error_pct: float | None = None  # vs the measured per-step median
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def compare(self, measured_loop_ms: float, measured_step_ms: float) -> "Estimate":
        self.loop_error_pct = error_pct(self.loop_ms, measured_loop_ms)
        self.step_error_pct = error_pct(self.step_ms, measured_step_ms)
        return self


def error_pct(estimate: float, measured: float) -> float:
    return 100.0 * (estimate - measured) / measured


def _need_subnet(side: DeploySidecar, what: str) -> None:
    if not side.choices:
        raise RcaiError(f"{what}: needs the subnet's choices, which only the sidecar has (no sidecar here)")


def table_estimate(table_path: str | Path, side: DeploySidecar, steps: int, batch: int = 1, force: bool = False) -> Estimate:
    """Sum of the table's op latencies (+ its per-call overhead) for the sidecar's subnet, x steps.
    The table must be for the same preset and batch (force: use it anyway, noted)."""
    from ..cost.model import TableCostModel
    from ..cost.table import CostTable

    _need_subnet(side, "--table")
    table = CostTable.load(table_path)
    note = []
    tb = table.meta.get("batch")
    if tb is not None and tb != batch:
        if not force:
            raise RcaiError(f"{table_path}: table was measured at batch {tb}, the bench runs batch {batch}")
        note.append(f"table batch {tb} != bench batch {batch}")
    cost = TableCostModel(side.preset, table, force=force).estimate(side.choices, steps=steps)
    if table.meta.get("threads") is not None:
        note.append(f"table threads {table.meta['threads']}")
    return Estimate("table", str(table_path), cost.latency_ms, cost.loop_ms, note="; ".join(note))


def load_predictor(path: str | Path) -> Any:
    """`LatencyPredictor.load(path)`, with a one-line RcaiError for a missing file."""
    if not Path(path).is_file():
        raise RcaiError(f"{path}: predictor file not found")
    from ..predictor import LatencyPredictor

    return LatencyPredictor.load(path)


def predictor_graph(side: DeploySidecar, onnx_path: str | Path, batch: int, workdir: Path) -> tuple[onnx.ModelProto | Path, str]:
    """The graph the predictor sees: like its training data (rcai.cost.archs: graph only, fixed
    batch), re-exported from the subnet; the deployed file itself if there are no subnet choices."""
    if side.choices:
        from ..onnx_export import DENOISER_INPUTS, DENOISER_OUTPUTS, denoiser_inputs, export_onnx

        model = side.subnet.build().eval()
        path = export_onnx(model, denoiser_inputs(side.preset, batch), DENOISER_INPUTS, workdir / "graph.onnx", DENOISER_OUTPUTS, export_params=False)
        return path, f"graph-only re-export at batch {batch}"
    model = onnx.load(str(onnx_path))
    for v in list(model.graph.input) + list(model.graph.output):
        dims = v.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = batch
    return onnx.shape_inference.infer_shapes(model), f"deployed file, batch fixed to {batch}"


def _first_number(out: Any) -> float:
    if hasattr(out, "tolist"):
        out = out.tolist()
    while isinstance(out, (list, tuple)):
        out = out[0]
    return float(out)


def predictor_estimate(predictor_path: str | Path, side: DeploySidecar, onnx_path: str | Path, steps: int, batch: int = 1) -> Estimate:
    pred = load_predictor(predictor_path)
    with tempfile.TemporaryDirectory(prefix="rcai-pred-") as tmp:
        graph, note = predictor_graph(side, onnx_path, batch, Path(tmp))
        step_ms = _first_number(pred.predict([graph]))
    return Estimate("predictor", str(predictor_path), step_ms, step_ms * steps, note=note)
