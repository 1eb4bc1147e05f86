"""Jetson specifics on recorded tegrastats lines of several JetPack versions, nvpmodel output and the
energy arithmetic. No Jetson is reachable from here: on hardware this is unverified."""
from __future__ import annotations

import os
import stat
import sys

import pytest

from rcai.errors import RcaiError
from rcai.targets.jetson import energy_per_inference_mj, jetson_facts, measure_energy, parse_nvpmodel, parse_tegrastats

# JetPack 4.6 (L4T 32.7), Jetson Nano 4 GB: mW without unit, POM_5V_IN is the board input.
JP4_NANO = ("RAM 2039/3964MB (lfb 25x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
            "CPU [12%@1479,5%@1479,8%@1479,4%@1479] EMC_FREQ 3%@1600 GR3D_FREQ 0%@921 APE 25 PLL@31C CPU@33.5C "
            "PMIC@100C GPU@32C AO@40C thermal@32.75C POM_5V_IN 3306/3306 POM_5V_GPU 0/0 POM_5V_CPU 614/614")
# JetPack 4.6, Xavier NX: cores switched off, GR3D without a clock, VDD_IN.
JP4_XAVIER_NX = ("RAM 1622/7765MB (lfb 1136x4MB) SWAP 0/3883MB (cached 0MB) CPU [2%@1190,0%@1190,0%@1190,0%@1190,off,off] "
                 "EMC_FREQ 0% GR3D_FREQ 0% AO@32C GPU@32.5C PMIC@100C AUX@31.5C CPU@33C thermal@32.2C "
                 "VDD_IN 4306/4306 VDD_CPU_GPU_CV 491/491 VDD_SOC 1351/1351")
# JetPack 5.1 (L4T 35), AGX Orin: timestamp, mW units, GPU clocks per GPC, disabled sensors at -256C, no total rail.
JP5_AGX_ORIN = ("08-21-2023 10:12:41 RAM 2822/30536MB (lfb 6497x4MB) SWAP 0/15268MB (cached 0MB) "
                "CPU [1%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] "
                "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305,305] VIC_FREQ 729 APE 174 CV0@-256C CPU@45.5C Tboard@32C "
                "SOC2@42.375C Tdiode@33.5C SOC0@42.875C CV1@-256C GPU@-256C tj@45.5C SOC1@42.25C CV2@-256C "
                "VDD_GPU_SOC 2382mW/2382mW VDD_CPU_CV 397mW/397mW VIN_SYS_5V0 3226mW/3226mW NC 0mW/0mW "
                "VDDQ_VDD2_1V8AO 303mW/303mW NC 0mW/0mW")
# JetPack 6.0 (L4T 36), Orin Nano: lower-case sensor names, VDD_IN with units, current/average differ.
JP6_ORIN_NANO = ("11-21-2024 09:00:00 RAM 3301/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) "
                 "CPU [3%@1510,1%@1510,0%@1510,2%@1510,0%@729,0%@729] GR3D_FREQ 99%@[624] cpu@48.468C soc2@47.156C "
                 "soc0@47.5C gpu@48.093C tj@48.468C soc1@46.968C VDD_IN 7967mW/4967mW VDD_CPU_GPU_CV 2595mW/595mW "
                 "VDD_SOC 1430mW/1430mW")


def test_tegrastats_jetpack4_nano():
    s = parse_tegrastats(JP4_NANO)
    assert (s.ram_used_mb, s.ram_total_mb) == (2039, 3964)
    assert s.rails_mw == {"POM_5V_IN": 3306.0, "POM_5V_GPU": 0.0, "POM_5V_CPU": 614.0}
    assert s.total_mw == 3306.0 and (s.gpu_load_pct, s.gpu_freq_mhz) == (0, 921)
    assert s.cpu_load_pct == [12, 5, 8, 4] and s.temps_c["CPU"] == 33.5 and s.stamp is None


def test_tegrastats_jetpack4_xavier_nx():
    s = parse_tegrastats(JP4_XAVIER_NX)
    assert s.total_mw == 4306.0 and s.rails_mw["VDD_SOC"] == 1351.0
    assert s.cpu_load_pct == [2, 0, 0, 0] and s.gpu_load_pct == 0 and s.gpu_freq_mhz is None


def test_tegrastats_jetpack5_agx_orin_sums_its_rails():
    s = parse_tegrastats(JP5_AGX_ORIN)
    assert "NC" not in s.rails_mw and s.total_mw == 2382 + 397 + 3226 + 303
    assert s.stamp == "08-21-2023 10:12:41" and s.gpu_freq_mhz == 305 and len(s.cpu_load_pct) == 12
    assert "GPU" not in s.temps_c and s.temps_c["tj"] == 45.5  # -256C: sensor off


def test_tegrastats_jetpack6_orin_nano_uses_the_current_reading():
    s = parse_tegrastats(JP6_ORIN_NANO)
    assert s.total_mw == 7967.0 and s.rails_mw["VDD_CPU_GPU_CV"] == 2595.0  # current, not the running average
    assert (s.gpu_load_pct, s.gpu_freq_mhz) == (99, 624) and s.ram_total_mb == 7620


def test_tegrastats_rejects_other_text():
    with pytest.raises(RcaiError, match="not a tegrastats line"):
        parse_tegrastats("bash: tegrastats: command not found")


def test_energy_per_inference():
    samples = [parse_tegrastats(JP6_ORIN_NANO), parse_tegrastats(JP4_XAVIER_NX)]
    mean_mw = (7967 + 4306) / 2
    assert energy_per_inference_mj(samples, 2.0, 100) == pytest.approx(mean_mw * 2.0 / 100)
    assert energy_per_inference_mj(samples, 2.0, 100, idle_mw=4000) == pytest.approx((mean_mw - 4000) * 2.0 / 100)
    with pytest.raises(RcaiError, match="no power rails"):
        energy_per_inference_mj([], 1.0, 1)
    with pytest.raises(RcaiError):
        energy_per_inference_mj(samples, 0.0, 1)


def _fake_tegrastats(folder):
    """A stand-in for the tegrastats binary (it exists only on a Jetson) replaying a recorded line."""
    fake = folder / "tegrastats"
    fake.write_text(f"#!{sys.executable}\nimport sys, time\nwhile True:\n    print({JP6_ORIN_NANO!r}, flush=True)\n"
                    "    time.sleep(int(sys.argv[2]) / 1000)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def test_measure_energy_reads_tegrastats_output(tmp_path):
    fake = _fake_tegrastats(tmp_path)
    r = measure_energy(lambda: sum(range(1000)), seconds=0.5, interval_ms=50, binary=str(fake))
    assert r["samples"] >= 2 and r["inferences"] > 10 and r["mean_power_w"] == pytest.approx(7.967)
    assert r["energy_mj"] == pytest.approx(7967 * r["seconds"] / r["inferences"])
    with pytest.raises(RcaiError, match="tegrastats not found"):
        measure_energy(lambda: None, 0.1, binary=str(tmp_path / "missing"))


def test_nvpmodel_and_facts(tmp_path):
    assert parse_nvpmodel("NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n") == {"power_mode": "MAXN", "power_mode_id": 0}
    assert parse_nvpmodel("NV Power Mode: 15W\n2\n") == {"power_mode": "15W", "power_mode_id": 2}
    assert jetson_facts(tmp_path) == {}  # not a Jetson
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_text("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref\n")
    facts = jetson_facts(tmp_path)
    assert facts["l4t_release"].startswith("R35 (release), REVISION: 4.1")


def test_energy_request_through_the_worker(tmp_path, monkeypatch):
    """The remote target's energy pass: the real worker process runs the model under (stand-in) tegrastats."""
    import torch

    from rcai.targets import get_target

    bindir = tmp_path / "bin"
    bindir.mkdir()
    _fake_tegrastats(bindir)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    path = tmp_path / "net.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3), (torch.zeros(1, 3, 16, 16),), str(path), input_names=["x"], dynamo=False)
    remote = get_target("remote", transport="local", remote_dir=str(tmp_path / "host"), target="onnxruntime",
                        target_settings={"threads": 1})
    e = remote.energy(path, seconds=0.4)
    remote.close()
    assert e["inferences"] > 10 and e["mean_power_w"] == pytest.approx(7.967)
    assert e["energy_mj"] == pytest.approx(7967 * e["seconds"] / e["inferences"])
