import csv
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from rcai.cost.archs import ArchDatasetConfig, profile_archs
from rcai.cost.check import check_table
from rcai.cost.profile import ProfileConfig, profile_ops
from rcai.targets import TargetSpec
from rcai.cost.table import CostTable
from rcai.model.mixed import MixedOp
from rcai.model.unet import UNet
from rcai.presets import get_preset, list_presets
from rcai.space.space import SearchSpace
from rcai.targets import MeasureConfig

FAST = MeasureConfig(warmup=1, min_repeats=3, max_repeats=5, chunk=3, max_seconds=0.5)


@pytest.mark.parametrize("name", list_presets())
def test_op_enumeration_covers_every_op_of_the_supernet(name):
    preset = get_preset(name)
    with torch.device("meta"):
        net = UNet(preset)
    in_net = {m.spec.key for m in net.modules() if hasattr(m, "spec")}
    listed = {s.key for s in SearchSpace(preset).all_specs()}
    assert in_net == listed
    # and every candidate of every mixed op is there
    for m in net.modules():
        if isinstance(m, MixedOp):
            for op in m.ops.values():
                if hasattr(op, "spec"):
                    assert op.spec.key in listed


def test_profile_table_is_real_and_complete(tmp_path, micro):
    table = profile_ops(ProfileConfig(preset="micro", target=TargetSpec(threads=1), measure=FAST), tmp_path / "t.csv", progress=False)
    loaded = CostTable.load(tmp_path / "t.csv")
    assert set(loaded.rows) == {s.key for s in SearchSpace(micro).all_specs()}
    assert loaded.meta["backend"] == "onnxruntime" and loaded.meta["preset_hash"] == micro.hash
    assert loaded.overhead_ms > 0
    conv = next(r for k, r in loaded.rows.items() if k.startswith("conv3x3"))
    assert conv["median_ms"] > 0 and conv["p10_ms"] <= conv["median_ms"] <= conv["p90_ms"]
    assert conv["flops"] >= conv["flops_torch"] > 0 and conv["flops_mismatch"] == 0
    assert table.rows.keys() == loaded.rows.keys()


SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import rcai.cost.profile as P
    from rcai.targets import MeasureConfig, TargetSpec
    if len(sys.argv) > 2:  # SIGKILL this process right after its Nth row reached the file: a kill at a known point, no polling
        append, n = P.CostTable.append, int(sys.argv[2])
        def append_then_die(self, row):
            append(self, row)
            if len(self.rows) >= n:
                os.kill(os.getpid(), signal.SIGKILL)
        P.CostTable.append = append_then_die
    quick = MeasureConfig(warmup=1, min_repeats=5, max_repeats=10, chunk=5, max_seconds=0.5)
    P.profile_ops(P.ProfileConfig(preset="micro", target=TargetSpec(threads=1), measure=quick, method="sequential"), sys.argv[1], progress=False)
    """
)


def _rows(path):
    with open(path) as f:
        return list(csv.reader(f))[1:]


def test_sequential_profile_resumes_after_kill_without_losing_rows(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "t.csv"
    killed = subprocess.run([sys.executable, str(script), str(out), "3"], capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    before = _rows(out)
    assert len(before) == 3 < len(SearchSpace(_micro()).all_specs())
    subprocess.run([sys.executable, str(script), str(out)], check=True, capture_output=True, timeout=300)
    after = CostTable.load(out)  # the resumed table is valid as a whole
    keys = [r[0] for r in _rows(out)]
    assert len(keys) == len(set(keys))  # nothing measured twice
    assert set(keys) == set(after.rows) == {s.key for s in SearchSpace(_micro()).all_specs()}
    for row in before:
        if len(row) == len(_rows(out)[0]):  # complete rows written before the kill are kept as they were
            assert [str(x) for x in row] in [[str(x) for x in r] for r in _rows(out)]


def _micro():
    return get_preset("micro")


def test_arch_dataset_and_table_check(tmp_path, micro):
    cfg = ProfileConfig(preset="micro", target=TargetSpec(threads=1), measure=FAST)
    table = profile_ops(cfg, tmp_path / "t.csv", progress=False)
    dataset = profile_archs(cfg, ArchDatasetConfig(archs=4, rounds=2), tmp_path / "archs", progress=False)
    with open(dataset) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(float(r["latency_ms"]) > 0 for r in rows)
    assert all((tmp_path / "archs" / r["model"]).exists() and (tmp_path / "archs" / r["subnet"]).exists() for r in rows)
    assert all(len(r["round_ms"].split("|")) == 2 for r in rows)
    res = check_table(table, dataset)
    assert res["table_sum"]["n"] == 4 and "repeatability" in res
    # the first subnet is the base model
    import json

    from rcai.space.space import SearchSpace as S

    assert json.loads((tmp_path / "archs" / rows[0]["subnet"]).read_text())["choices"] == S(micro).base_arch()


def test_skewed_sampling_reaches_the_extremes(micro):
    from collections import Counter

    from rcai.cost.archs import sample_archs
    from rcai.errors import RcaiError

    space = SearchSpace(micro)

    def dominance(archs):  # mean share of the most common op in a subnet
        return sum(Counter(a.values()).most_common(1)[0][1] / len(a) for a in archs) / len(archs)

    uniform, skewed = sample_archs(space, 60, 0, "uniform"), sample_archs(space, 60, 0, "skewed")
    for archs in (uniform, skewed):
        assert archs[0] == space.base_arch() and len({tuple(sorted(a.items())) for a in archs}) == 60
        for a in archs:
            space.validate(a)
    assert dominance(skewed[1:]) > dominance(uniform[1:]) + 0.15
    with pytest.raises(RcaiError, match="unknown sampling"):
        sample_archs(space, 5, 0, "sobol")
