"""GNN latency predictor: encoding, dataset validation, training, fine-tuning, file format, metrics, CLI."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from rcai.errors import RcaiError
from rcai.predictor import ops
from rcai.predictor.batch import collate
from rcai.predictor.dataset import cache_path, load_dataset
from rcai.predictor.graph import FEATURE_VERSION, NUMERIC_FEATURES, encode_onnx
from rcai.stats import accuracy as evaluate
from rcai.predictor.model import aggregate
from rcai.predictor.predictor import LatencyPredictor, train_predictor
from rcai.predictor.train import PredictorTrainConfig
from helpers import run_cli  # noqa: E402

FAST = PredictorTrainConfig(epochs=30, patience=10, min_val=4, finetune_epochs=30)


def feat(d, node: int, name: str) -> float:
    return float(torch.expm1(d.x[node, ops.N_OPS + NUMERIC_FEATURES.index(name)]))


def op_of(d, node: int) -> str:
    k = int(d.x[node, : ops.N_OPS].argmax())
    return ops.OP_VOCAB[k] if k < len(ops.OP_VOCAB) else "other"


def _w(name, shape, weights_as_inputs):
    if weights_as_inputs:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape), None
    return None, helper.make_tensor(name, TensorProto.FLOAT, shape, np.zeros(shape, np.float32).ravel())


def hand_model(weights_as_inputs: bool = False, extra_node=None) -> onnx.ModelProto:
    """X -> Conv3x3(3->4) -> Relu -> Add(relu, conv) -> Conv1x1/2(4->8) -> GAP -> Flatten -> Gemm(8->10).
    The first conv's weight goes through an Identity (as torch exports shared weights)."""
    ws = {"W1": [4, 3, 3, 3], "B1": [4], "W2": [8, 4, 1, 1], "W3": [10, 8]}
    ins, inits = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 8, 8])], []
    for n, s in ws.items():
        vi, init = _w(n, s, weights_as_inputs)
        ins += [vi] if vi else []
        inits += [init] if init else []
    nodes = [
        helper.make_node("Identity", ["W1"], ["W1c"]),
        helper.make_node("Conv", ["X", "W1c", "B1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r"]),
        helper.make_node("Add", ["r", "c1"], ["a"]),
        helper.make_node("Conv", ["a", "W2"], ["c2"], kernel_shape=[1, 1], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "W3"], ["Y"], transB=1),
    ]
    out = "Y"
    if extra_node is not None:
        nodes.append(extra_node)
        out = extra_node.output[0]
    g = helper.make_graph(nodes, "hand", ins, [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])


def test_encode_hand_built_graph():
    d = encode_onnx(hand_model())
    assert [op_of(d, k) for k in range(d.num_nodes)] == ["Conv", "Relu", "Add", "Conv", "GlobalAveragePool", "Flatten", "Gemm"]
    edges = sorted(map(tuple, d.edge_index.t().tolist()))
    assert edges == [(0, 1), (0, 2), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
    assert feat(d, 0, "kernel_h") == pytest.approx(3) and feat(d, 0, "kernel_w") == pytest.approx(3)
    assert feat(d, 0, "c_in") == pytest.approx(3) and feat(d, 0, "c_out") == pytest.approx(4)
    assert feat(d, 0, "flops") == pytest.approx(2 * 4 * 64 * 27, rel=1e-4)
    assert feat(d, 0, "params") == pytest.approx(4 * 27 + 4, rel=1e-4)
    assert feat(d, 3, "stride") == pytest.approx(2) and feat(d, 3, "out_spatial") == pytest.approx(16)
    assert feat(d, 3, "c_out") == pytest.approx(8) and feat(d, 2, "data_inputs") == pytest.approx(2)
    assert feat(d, 6, "flops") == pytest.approx(2 * 10 * 8, rel=1e-4)
    assert d.g.shape == (1, 6) and math.expm1(d.g[0, 4]) == pytest.approx(7)


def test_weights_as_graph_inputs_encode_like_initializers():
    a, b = encode_onnx(hand_model(False)), encode_onnx(hand_model(True))
    assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)


def test_torch_export_without_params_matches_with_params(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 8, 3, groups=8, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 64, 5)).eval()
    paths = []
    for params in (True, False):
        paths.append(tmp_path / f"m{params}.onnx")
        torch.onnx.export(net, (torch.randn(1, 3, 8, 8),), str(paths[-1]), dynamo=False, export_params=params)
    a, b = encode_onnx(paths[0]), encode_onnx(paths[1])
    assert paths[1].stat().st_size < paths[0].stat().st_size / 2
    assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)
    assert [op_of(b, k) for k in range(b.num_nodes)][:3] == ["Conv", "Relu", "Conv"]
    assert feat(b, 2, "depthwise") == pytest.approx(1) and feat(b, 2, "groups") == pytest.approx(8)


def test_unknown_op_is_encoded_in_other_bucket():
    custom = helper.make_node("FancyOp", ["Y"], ["Z"], domain="com.example")
    d = encode_onnx(hand_model(extra_node=custom))
    assert d.num_nodes == 8 and op_of(d, 7) == "other"
    assert (6, 7) in map(tuple, d.edge_index.t().tolist())


def test_non_onnx_and_missing_files(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_text("not a model\n" * 10)
    with pytest.raises(RcaiError, match="not an ONNX model"):
        encode_onnx(bad)
    with pytest.raises(RcaiError, match="file not found"):
        encode_onnx(tmp_path / "nope.onnx")


def test_aggregation_gradient_matches_dense():
    d = encode_onnx(hand_model())
    b = collate([d, d])
    x = torch.randn(b.op.shape[0], 5, requires_grad=True)
    (aggregate(x, b.fwd, b.bwd) ** 2).sum().backward()
    g, x.grad = x.grad.clone(), None
    ((b.fwd.to_dense() @ x) ** 2).sum().backward()
    assert torch.allclose(g, x.grad) and torch.equal(b.bwd.to_dense(), b.fwd.to_dense().t())


def test_metrics_known_case():
    r = evaluate([1, 2, 3, 4], [1, 2.1, 5, 2.5])
    assert r["n"] == 4
    assert r["spearman"] == pytest.approx(0.8) and r["kendall"] == pytest.approx(4 / 6)
    assert r["acc_5"] == 0.5 and r["acc_10"] == 0.5
    assert r["rmse_ms"] == pytest.approx(math.sqrt((0.01 + 4 + 2.25) / 4))
    assert r["mape"] == pytest.approx((0.1 / 2.1 + 0.4 + 0.6) / 4)


# ---------------------------------------------------------------- datasets and training

def conv_chain(depth: int, width: int, kernel: int, size: int) -> onnx.ModelProto:
    """A weightless (weights as graph inputs) chain of conv+relu layers with a residual Add."""
    ins = [helper.make_tensor_value_info("x0", TensorProto.FLOAT, [1, 3, size, size])]
    nodes, c, prev = [], 3, "x0"
    for i in range(depth):
        ins.append(helper.make_tensor_value_info(f"w{i}", TensorProto.FLOAT, [width, c, kernel, kernel]))
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], kernel_shape=[kernel] * 2, pads=[kernel // 2] * 4))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev, c = f"r{i}", width
        if i > 0:
            nodes.append(helper.make_node("Add", [prev, f"r{i - 1}"], [f"a{i}"]))
            prev = f"a{i}"
    g = helper.make_graph(nodes, "chain", ins, [helper.make_tensor_value_info(prev, TensorProto.FLOAT, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def synthetic_latency(depth, width, kernel, size) -> float:
    """A made-up but structured 'device': ms grows with FLOPs plus a per-op overhead."""
    flops = sum(2 * width * size * size * (3 if i == 0 else width) * kernel * kernel for i in range(depth))
    return 0.05 * (3 * depth - 1) + flops / 2e7


def make_dataset(folder: Path, n: int, seed: int, scale: float = 1.0, device: str | None = None) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(n):
        cfg = (int(rng.integers(1, 6)), int(rng.choice([4, 8, 16, 24])), int(rng.choice([1, 3, 5])), int(rng.choice([8, 16])))
        name = f"m{seed}_{k}.onnx"
        onnx.save(conv_chain(*cfg), str(folder / name))
        row = {"model": name, "latency_ms": f"{scale * synthetic_latency(*cfg):.6f}"}
        rows.append(row | ({"device": device} if device else {}))
    csv_path = folder / "data.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return csv_path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ds")
    csv_path = make_dataset(folder, 48, seed=1, device="dev_a")
    return csv_path, train_predictor(csv_path, cfg=FAST)


def test_train_save_load_identical_and_learns(trained, tmp_path):
    csv_path, pred = trained
    assert pred.targets == ["dev_a"] and pred.meta["feature_version"] == FEATURE_VERSION
    assert cache_path(csv_path).is_file()  # graphs cached for the next run
    test_csv = make_dataset(tmp_path / "test", 30, seed=2)
    ds = load_dataset(test_csv)
    p1 = pred.predict(ds.models)
    path = pred.save(tmp_path / "p.pt")
    loaded = LatencyPredictor.load(path)
    p2 = loaded.predict([onnx.load(str(m)) for m in ds.models])  # in-memory ModelProtos too
    assert np.array_equal(p1, p2)
    assert loaded.meta["train_data"]["models"] == 48
    r = evaluate(p1, ds.latency_ms[:, 0])
    assert r["spearman"] > 0.9, r  # structured synthetic latencies are learnable


def test_batching_does_not_change_predictions(trained, tmp_path):
    _, pred = trained
    ds = load_dataset(make_dataset(tmp_path / "b", 12, seed=6))
    one_by_one = np.array([pred.predict([g])[0] for g in ds.graphs])
    assert np.allclose(pred.predict(ds.graphs, max_nodes=20), one_by_one, rtol=1e-5)
    assert np.allclose(pred.predict(ds.graphs), one_by_one, rtol=1e-5)


def test_training_is_deterministic(trained):
    csv_path, pred = trained
    again = train_predictor(csv_path, cfg=FAST)
    ds = load_dataset(csv_path)
    assert np.array_equal(pred.predict(ds.graphs), again.predict(ds.graphs))


def test_init_finetune_moves_toward_new_device(trained, tmp_path):
    _, base = trained
    new_csv = make_dataset(tmp_path / "new", 10, seed=3, scale=3.0, device="dev_b")
    tuned = train_predictor(new_csv, init=base, cfg=FAST)
    assert tuned.targets == ["dev_b"] and tuned.meta["init"]["targets"] == ["dev_a"]
    ds = load_dataset(make_dataset(tmp_path / "held", 20, seed=4))
    ratio = np.log(tuned.predict(ds.graphs) / base.predict(ds.graphs))
    assert abs(np.median(ratio) - math.log(3)) < 0.25, np.median(ratio)
    err_new = np.abs(np.log(tuned.predict(ds.graphs) / (3 * ds.latency_ms[:, 0])))
    err_base = np.abs(np.log(base.predict(ds.graphs) / (3 * ds.latency_ms[:, 0])))
    assert err_new.mean() < err_base.mean() / 2


def test_wrong_feature_version_is_an_error(trained, tmp_path):
    _, pred = trained
    path = pred.save(tmp_path / "p.pt")
    blob = torch.load(path, weights_only=True)
    blob["feature_version"] = FEATURE_VERSION + 1
    torch.save(blob, path)
    with pytest.raises(RcaiError, match="feature version"):
        LatencyPredictor.load(path)
    path.write_bytes(b"junk")
    with pytest.raises(RcaiError, match="not a readable predictor"):
        LatencyPredictor.load(path)


@pytest.mark.parametrize("row, message", [
    ({"model": "missing.onnx", "latency_ms": "1.0"}, r"line 3 \(missing.onnx\): model file not found"),
    ({"model": "text.onnx", "latency_ms": "1.0"}, r"line 3 \(text.onnx\): .*not an ONNX model"),
    ({"model": "ok.onnx", "latency_ms": "-2"}, r"line 3 \(ok.onnx\): latency_ms must be a positive"),
    ({"model": "ok.onnx", "latency_ms": ""}, r"line 3 \(ok.onnx\): latency_ms is missing"),
    ({"model": "ok.onnx", "latency_ms": "nan"}, r"line 3 \(ok.onnx\): latency_ms must be a positive"),
    ({"model": "ok.onnx", "latency_ms": "0"}, r"line 3 \(ok.onnx\): latency_ms must be a positive"),
])
def test_bad_rows_name_the_line(tmp_path, row, message):
    onnx.save(conv_chain(1, 4, 3, 8), str(tmp_path / "ok.onnx"))
    (tmp_path / "text.onnx").write_text("hello")
    p = tmp_path / "d.csv"
    p.write_text(f"model,latency_ms\nok.onnx,1.5\n{row['model']},{row['latency_ms']}\n")
    with pytest.raises(RcaiError, match=message):
        load_dataset(p)


def test_missing_column(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("model,ms\nok.onnx,1.5\n")
    with pytest.raises(RcaiError, match="missing column.*latency_ms"):
        load_dataset(p)


def test_cli_train_eval_predict(tmp_path, monkeypatch, capsys):
    csv_path = make_dataset(tmp_path / "ds", 16, seed=5)
    out = tmp_path / "predictors" / "t.pt"
    cli = lambda *a: run_cli(monkeypatch, capsys, *a)
    code, stdout, err = cli("predictor", "train", "--latency-data", str(csv_path), "--out", str(out), "--epochs", "3", "--json")
    assert code == 0, err
    assert json.loads(stdout)["targets"] == ["data"] and out.is_file()
    code, stdout, err = cli("predictor", "eval", "--predictor", str(out), "--latency-data", str(csv_path), "--json")
    assert code == 0, err
    assert json.loads(stdout)["results"]["data"]["n"] == 16
    code, stdout, err = cli("predict", str(tmp_path / "ds" / "m5_0.onnx"), "--predictor", str(out), "--json")
    assert code == 0 and json.loads(stdout)[0]["latency_ms"] > 0, err
    (tmp_path / "bad.csv").write_text("model,latency_ms\nnope.onnx,1\n")
    code, _, err = cli("predictor", "train", "--latency-data", str(tmp_path / "bad.csv"), "--out", str(out))
    assert code == 2 and err.strip().count("\n") == 0 and "line 2 (nope.onnx): model file not found" in err
    code, _, err = cli("predict", str(tmp_path / "ds" / "m5_0.onnx"), "--predictor", str(out), "--head", "gpu")
    assert code == 2 and "no target 'gpu'" in err


def test_rows_without_their_onnx_file_encode_from_the_subnet_json(tmp_path):
    """A shipped latency dataset has subnets/*.json but no models/ (exports are not committed): the row
    is encoded from its subnet by the architecture encoder, the same graph as the export's (failed
    before: 'model file not found', so `rcai predictor train` did not run on a fresh clone)."""
    from rcai.predictor.arch_graph import subnet_onnx
    from rcai.presets import get_preset
    from rcai.space.space import SearchSpace
    from rcai.space.subnet import SubnetSpec
    import random

    preset = get_preset("micro")
    space = SearchSpace.of(preset)
    archs = [space.base_arch(), space.random_arch(random.Random(1))]
    (tmp_path / "subnets").mkdir()
    lines = ["model,latency_ms,subnet"]
    for i, a in enumerate(archs):
        SubnetSpec(preset, a).save(tmp_path / "subnets" / f"{i}.json")
        lines.append(f"models/{i}.onnx,{1.5 + i},subnets/{i}.json")
    (tmp_path / "dataset.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(tmp_path / "dataset.csv")
    assert len(ds) == 2 and ds.latency_ms[:, 0].tolist() == [1.5, 2.5]
    for g, a, i in zip(ds.graphs, archs, range(2)):
        onnx.save(subnet_onnx(preset, a), tmp_path / f"{i}.onnx")
        ref = encode_onnx(tmp_path / f"{i}.onnx")
        assert torch.equal(g.x, ref.x) and torch.equal(g.edge_index, ref.edge_index) and torch.equal(g.g, ref.g)
    (tmp_path / "subnets" / "1.json").unlink()  # neither the export nor the subnet: one line naming both
    with pytest.raises(RcaiError, match=r"line 3 \(models/1.onnx\): model file not found \(nor its subnet subnets/1.json\)"):
        load_dataset(tmp_path / "dataset.csv")


def test_the_readme_predictor_train_line_runs_on_the_shipped_dataset(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    line = next(ln for ln in (root / "README.md").read_text().splitlines() if ln.startswith("rcai predictor train"))
    args = line.split("#")[0].split()[1:]
    args[args.index("--out") + 1] = str(tmp_path / "p.pt")  # not over the shipped predictor
    done = subprocess.run([sys.executable, "-m", "rcai", *args, "--epochs", "1", "--json"], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert res["train_data"]["models"] == 480 and res["training"]["train"] + res["training"]["val"] == 480


def test_op_counts_readout_is_optional_and_files_without_it_load(tmp_path):
    """ModelConfig.op_counts: the readout also sees log(1 + count of each op type); predictor files
    written before it existed (no such key) load as op_counts=False."""
    from rcai.predictor.model import LatencyGNN, ModelConfig

    assert ModelConfig.from_json('{"hidden": 32, "layers": 3, "dropout": 0.0}').op_counts is False
    d1, d2 = encode_onnx(conv_chain(2, 8, 3, 8)), encode_onnx(conv_chain(3, 8, 3, 8))
    torch.manual_seed(0)
    m = LatencyGNN(ModelConfig(op_counts=True))
    assert m.readout[0][0].in_features == LatencyGNN(ModelConfig()).readout[0][0].in_features + ops.N_OPS
    b = collate([d1, d2])
    counts = torch.log1p(b.pool @ torch.nn.functional.one_hot(b.op, ops.N_OPS).float())
    assert counts[0, ops.OP_INDEX["Conv"]] == pytest.approx(math.log(3)) and counts[1, ops.OP_INDEX["Add"]] == pytest.approx(math.log(3))
    pred = LatencyPredictor(m.eval(), {"targets": ["x"]})
    path = pred.save(tmp_path / "p.pt")
    again = LatencyPredictor.load(path)
    assert again.model.cfg.op_counts and np.array_equal(again.predict([d1, d2]), pred.predict([d1, d2]))


def test_cli_op_counts(tmp_path, monkeypatch, capsys):
    csv_path = make_dataset(tmp_path / "ds", 10, seed=7)
    out = tmp_path / "p.pt"
    cli = lambda *a: run_cli(monkeypatch, capsys, *a)
    code, _, err = cli("predictor", "train", "--latency-data", str(csv_path), "--out", str(out), "--op-counts", "--epochs", "1", "--json")
    assert code == 0, err
    assert LatencyPredictor.load(out).model.cfg.op_counts
    code, _, err = cli("predictor", "train", "--latency-data", str(csv_path), "--out", str(tmp_path / "q.pt"), "--init", str(out), "--op-counts")
    assert code == 2 and "--op-counts shapes a new predictor" in err
