"""`rcai predictor train|eval` and `rcai predict`: the GNN latency predictor."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ..errors import RcaiError
from .common import JsonOpt, LatencyDataOpt, out as stdout, print_json
from .main import app

predictor_app = typer.Typer(help="GNN latency predictor: train on measured ONNX models, evaluate.",
                            no_args_is_help=True)
app.add_typer(predictor_app, name="predictor")


@predictor_app.command("train")
def train_cmd(
    latency_data: Path = LatencyDataOpt(),
    out: Path = typer.Option(..., "--out", "-o", help="Predictor file to write, e.g. predictors/NAME.pt."),
    init: Optional[Path] = typer.Option(None, "--init", help="Adapt this predictor (few samples of a new device or family of networks)."),
    shots: Optional[int] = typer.Option(None, "--shots", help="With --init: adapt on K rows of the data (seeded); the other rows score it."),
    adapt: str = typer.Option("auto", "--adapt", help="With --init: zero | level | head | full, or auto (cross-validation within the shots)."),
    op_counts: bool = typer.Option(False, "--op-counts", help="New predictor: the readout also sees the count of each op type (benchmarks/results/predictor_foreign.md)."),
    seed: int = typer.Option(0, "--seed"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Max epochs (fixed epochs when fine-tuning few samples)."),
    as_json: bool = JsonOpt,
) -> None:
    """Train a predictor (one output per device in the CSV) and save it."""
    from ..io import refuse_special
    from ..predictor.predictor import train_predictor
    from ..predictor.train import PredictorTrainConfig

    refuse_special(out)  # before training, not after
    cfg = PredictorTrainConfig(seed=seed)
    if epochs is not None:
        if epochs < 0:
            raise RcaiError(f"--epochs: must be >= 0, got {epochs}")
        cfg = dataclasses.replace(cfg, epochs=max(1, epochs), finetune_epochs=epochs)
    if init is None and (shots is not None or adapt != "auto"):
        raise RcaiError("--shots and --adapt adapt a predictor: give it with --init")
    if init is not None and op_counts:
        raise RcaiError("--op-counts shapes a new predictor; an adapted one keeps the --init predictor's")
    from ..predictor.model import ModelConfig

    pred = train_predictor(latency_data, init=init, cfg=cfg, model_cfg=ModelConfig(op_counts=op_counts), progress=not as_json,
                           shots=shots, method=adapt)
    pred.save(out)
    summary = {"out": str(out), "targets": pred.targets, "training": pred.meta["training"],
               "train_data": pred.meta["train_data"]}
    if as_json:
        print_json(summary)
        return
    t = pred.meta["training"]
    a = t.get("adaptation")
    if a is None:
        stdout.print(f"wrote {out}: targets {', '.join(pred.targets)}; {t['train']} train / {t['val']} validation "
                     f"models, {t.get('epochs_run', 0)} epochs")
        return
    cv = ", ".join(f"{m} {v:.1f} %" for m, v in a["cv_rms_pct"].items() if v == v)
    stdout.print(f"wrote {out}: targets {', '.join(pred.targets)}; adapted on {a['shots']} shots by [bold]{a['method']}[/]")
    stdout.print(f"  cross-validation ({a['folds']} folds), rms log error: {cv or 'n/a'}")
    stdout.print(f"  why: {a['reason']}")
    for dev, h in a.get("holdout", {}).items():
        z, d = h["zero"], h["adapted"]
        stdout.print(f"  the other {h['n']} rows ({dev}): zero-shot Spearman {z['spearman']:.3f} Acc±10 {z['acc_10']:.0%}; "
                     f"adapted Spearman {d['spearman']:.3f} Acc±10 {d['acc_10']:.0%}")


def _targets_for(pred, devices: list[str], head: Optional[str], where: str) -> dict[str, str]:
    """dataset device -> predictor target (its output head, named after a device)."""
    if head is not None:
        pred.head(head)
        return {d: head for d in devices}
    out = {}
    for d in devices:
        if d in pred.targets:
            out[d] = d
        elif len(pred.targets) == 1 and (d == "" or len(devices) == 1):
            out[d] = pred.targets[0]
        else:
            raise RcaiError(f"{where}: device {d!r} is not a target of the predictor "
                            f"({', '.join(pred.targets)}); pass --head")
    return out


@predictor_app.command("eval")
def eval_cmd(
    predictor: Path = typer.Option(..., "--predictor", help="Predictor file."),
    latency_data: Path = LatencyDataOpt(),
    head: Optional[str] = typer.Option(None, "--head", help="The predictor's output head (named after the device it learnt) for every row."),
    as_json: bool = JsonOpt,
) -> None:
    """Accuracy on a dataset: n, spearman, kendall, acc_5, acc_10, rmse_ms, mape."""
    import numpy as np

    from ..predictor.dataset import load_dataset
    from ..stats import accuracy as evaluate
    from ..predictor.predictor import LatencyPredictor

    pred = LatencyPredictor.load(predictor)
    ds = load_dataset(latency_data, progress=not as_json)
    mapping = _targets_for(pred, ds.devices, head, str(latency_data))
    logp = pred.predict_log(ds.graphs)
    results = {}
    for j, dev in enumerate(ds.devices):
        rows = np.isfinite(ds.latency_ms[:, j])
        p = np.exp(logp[rows, pred.head(mapping[dev])])
        results[dev or mapping[dev]] = evaluate(p, ds.latency_ms[rows, j])
    if as_json:
        print_json({"predictor": str(predictor), "latency_data": str(latency_data), "results": results})
        return
    table = Table("device", "n", "spearman", "kendall", "acc_5", "acc_10", "rmse_ms", "mape")
    for dev, r in results.items():
        table.add_row(dev, str(r["n"]), f"{r['spearman']:.4f}", f"{r['kendall']:.4f}", f"{r['acc_5']:.1%}",
                      f"{r['acc_10']:.1%}", f"{r['rmse_ms']:.4g}", f"{r['mape']:.1%}")
    stdout.print(table)


@app.command("predict")
def predict_cmd(
    models: List[Path] = typer.Argument(..., help="ONNX model file(s); weights are not needed"),
    predictor: Path = typer.Option(..., "--predictor", help="Predictor file."),
    head: Optional[str] = typer.Option(None, "--head", help="The predictor's output head (named after the device it learnt; for multi-device predictors)."),
    as_json: bool = JsonOpt,
) -> None:
    """Predicted latency (ms) of ONNX models on the predictor's target."""
    from ..predictor.predictor import LatencyPredictor

    pred = LatencyPredictor.load(predictor)
    tgt = pred.targets[pred.head(head)]
    ms = pred.predict(models, tgt)
    rows = [{"model": str(m), "target": tgt, "latency_ms": float(v)} for m, v in zip(models, ms)]
    if as_json:
        print_json(rows)
    else:
        for r in rows:
            stdout.print(f"{r['model']}: {r['latency_ms']:.4g} ms on {tgt}")
