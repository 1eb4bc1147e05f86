"""`rcai predictor train|eval` and `rcai predict`: the GNN latency predictor."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import RcaiError
from .main import app

predictor_app = typer.Typer(help="GNN latency predictor: train on measured ONNX models, evaluate.",
                            no_args_is_help=True)
app.add_typer(predictor_app, name="predictor")


@predictor_app.command("train")
def train_cmd(
    data: Path = typer.Option(..., "--data", help="latency dataset CSV (model, latency_ms[, device])"),
    out: Path = typer.Option(..., "--out", help="predictor file to write, e.g. predictors/NAME.pt"),
    init: Optional[Path] = typer.Option(None, "--init", help="adapt this predictor (few samples of a new device)"),
    seed: int = typer.Option(0, "--seed"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="max epochs (fixed epochs when fine-tuning few samples)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Train a predictor (one output per device in the CSV) and save it."""
    from ..io import refuse_special
    from ..predictor.predictor import train_predictor
    from ..predictor.train import TrainConfig

    refuse_special(out)  # before training, not after
    cfg = TrainConfig(seed=seed)
    if epochs is not None:
        if epochs < 0:
            raise RcaiError(f"--epochs: must be >= 0, got {epochs}")
        cfg = dataclasses.replace(cfg, epochs=max(1, epochs), finetune_epochs=epochs)
    pred = train_predictor(data, init=init, cfg=cfg, progress=not as_json)
    pred.save(out)
    summary = {"out": str(out), "targets": pred.targets, "training": pred.meta["training"],
               "train_data": pred.meta["train_data"]}
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        t = pred.meta["training"]
        print(f"wrote {out}: targets {', '.join(pred.targets)}; {t['train']} train / {t['val']} validation "
              f"models, {t.get('epochs_run', 0)} epochs")


def _targets_for(pred, devices: list[str], target: Optional[str], where: str) -> dict[str, str]:
    """dataset device -> predictor target."""
    if target is not None:
        pred.head(target)
        return {d: target for d in devices}
    out = {}
    for d in devices:
        if d in pred.targets:
            out[d] = d
        elif len(pred.targets) == 1 and (d == "" or len(devices) == 1):
            out[d] = pred.targets[0]
        else:
            raise RcaiError(f"{where}: device {d!r} is not a target of the predictor "
                            f"({', '.join(pred.targets)}); pass --target")
    return out


@predictor_app.command("eval")
def eval_cmd(
    predictor: Path = typer.Option(..., "--predictor", help="predictor file"),
    data: Path = typer.Option(..., "--data", help="latency dataset CSV"),
    target: Optional[str] = typer.Option(None, "--target", help="predictor target to use for every row"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Accuracy on a dataset: n, spearman, kendall, acc_5, acc_10, rmse_ms, mape."""
    import numpy as np

    from ..predictor.dataset import load_dataset
    from ..predictor.metrics import evaluate
    from ..predictor.predictor import LatencyPredictor

    pred = LatencyPredictor.load(predictor)
    ds = load_dataset(data, progress=not as_json)
    mapping = _targets_for(pred, ds.devices, target, str(data))
    logp = pred.predict_log(ds.graphs)
    results = {}
    for j, dev in enumerate(ds.devices):
        rows = np.isfinite(ds.latency_ms[:, j])
        p = np.exp(logp[rows, pred.head(mapping[dev])])
        results[dev or mapping[dev]] = evaluate(p, ds.latency_ms[rows, j])
    if as_json:
        print(json.dumps({"predictor": str(predictor), "data": str(data), "results": results}, indent=2))
        return
    table = Table("device", "n", "spearman", "kendall", "acc_5", "acc_10", "rmse_ms", "mape")
    for dev, r in results.items():
        table.add_row(dev, str(r["n"]), f"{r['spearman']:.4f}", f"{r['kendall']:.4f}", f"{r['acc_5']:.1%}",
                      f"{r['acc_10']:.1%}", f"{r['rmse_ms']:.4g}", f"{r['mape']:.1%}")
    Console().print(table)


@app.command("predict")
def predict_cmd(
    models: List[Path] = typer.Argument(..., help="ONNX model file(s); weights are not needed"),
    predictor: Path = typer.Option(..., "--predictor", help="predictor file"),
    target: Optional[str] = typer.Option(None, "--target", help="device (for multi-device predictors)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Predicted latency (ms) of ONNX models on the predictor's target."""
    from ..predictor.predictor import LatencyPredictor

    pred = LatencyPredictor.load(predictor)
    tgt = pred.targets[pred.head(target)]
    ms = pred.predict(models, tgt)
    rows = [{"model": str(m), "target": tgt, "latency_ms": float(v)} for m, v in zip(models, ms)]
    if as_json:
        print(json.dumps(rows if len(rows) > 1 else rows[0], indent=2))
    else:
        for r in rows:
            print(f"{r['model']}: {r['latency_ms']:.4g} ms on {tgt}")
