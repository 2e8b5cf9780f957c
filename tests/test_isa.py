"""The CPU's ISA (liccs.core.isa) on recorded /proc/cpuinfo sets, and what it decides: the bf16 engines skipped
with the CPU's reason, ONNX Runtime's int8 weight bits, the doctor's ISA line, the manifest's device info."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from liccs.core import isa
from liccs.core.doctor import isa_info
from liccs.core.manifest import device_info
from liccs.engines import ENGINES, EngineUnavailable, available_engines, get_engine
from liccs.engines.ort import _int8_source, int8_weight_bits
from liccs.export.graphs import GraphSpec, TensorSpec
from liccs.export.quantize import Int8OnnxFromOnnx
from liccs.profiling.device import environment

RECORDED = Path(__file__).parent / "cpuinfo"
BF16_ENGINES = ("ov-cpu-bf16", "torch-cpu-bf16")
EMULATED = "has no AVX-512 BF16 or AMX-BF16: bf16 would run emulated, slower than fp32"


def recorded(name: str) -> isa.Isa:
    flags, model = isa.read_cpuinfo(RECORDED / f"{name}.txt")
    assert flags is not None
    return isa.parse_flags(flags, model)


@pytest.mark.parametrize("name, features, native, bits", [
    ("epyc-avx2", ["AVX2"], {"fp32"}, 7),
    ("ice-lake", ["AVX2", "AVX-512F", "AVX-512 VNNI"], {"fp32", "int8"}, 8),
    ("sapphire-rapids", list(isa.FEATURES.values()), {"fp32", "bf16", "int8", "fp16"}, 8),
])
def test_recorded_flag_sets_parse_to_their_features_and_precisions(name, features, native, bits):
    cpu = recorded(name)
    assert cpu.features == features and cpu.known
    assert {p for p in ("fp32", "bf16", "int8", "fp16") if cpu.native(p)} == native
    assert cpu.int8_weight_bits == bits
    assert cpu.as_dict() == {"isa": ", ".join(features), "native_precisions": ", ".join(
        p for p in ("fp32", "bf16", "int8", "fp16") if p in native), "ort_int8_weight_bits": bits}


def test_the_reasons_name_the_cpu_and_what_it_lacks():
    epyc, ice = recorded("epyc-avx2"), recorded("ice-lake")
    assert epyc.model == "AMD EPYC" and ice.model == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    assert epyc.missing("bf16") == f"this CPU (AMD EPYC) {EMULATED}"
    assert "VNNI" in epyc.missing("int8") and "7-bit" in epyc.missing("int8")
    assert ice.missing("bf16") and ice.missing("int8") is None and ice.missing("fp32") is None
    assert isa.parse_flags("avx2 avx512_bf16").missing("bf16") is None  # Cooper Lake / Zen 4: no AMX needed
    assert isa.parse_flags(["AVX2"]).missing("bf16") == f"this CPU {EMULATED}"  # no model: no parentheses
    with pytest.raises(ValueError, match="unknown precision"):
        epyc.missing("fp8")


def test_the_doctor_line_says_what_is_native_and_the_int8_weight_bits():
    assert recorded("epyc-avx2").line() == ("AMD EPYC: AVX2; native: fp32; not native: bf16 (no AVX-512 BF16/"
                                            "AMX-BF16), int8 (no VNNI/AMX-INT8); ONNX Runtime int8 uses 7-bit weights")
    spr = recorded("sapphire-rapids").line()
    assert "AMX-BF16, AMX-INT8; native: fp32, bf16, int8; ONNX Runtime int8 uses 8-bit weights" in spr
    assert "not native" not in spr


def test_unreadable_cpuinfo_means_fp32_only(tmp_path, monkeypatch):
    assert isa.read_cpuinfo(tmp_path / "absent") == (None, None)
    (tmp_path / "arm").write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")
    assert isa.read_cpuinfo(tmp_path / "arm") == (["fp", "asimd", "bf16", "i8mm"], None)
    monkeypatch.setattr(isa, "CPUINFO", tmp_path / "absent")
    isa.this_cpu.cache_clear()
    try:
        cpu = isa.this_cpu()
        assert not cpu.known and "could not be read" in cpu.missing("bf16") and cpu.int8_weight_bits == 7
        assert cpu.line().startswith("unknown") and cpu.as_dict()["isa"] == "unknown"
    finally:
        isa.this_cpu.cache_clear()


def test_this_machine_is_read():
    cpu = isa.this_cpu()
    assert cpu.known and cpu.model  # Linux CI
    assert set(cpu.flags) <= set(isa.FEATURES)


@pytest.fixture(params=["epyc-avx2", "ice-lake", "sapphire-rapids"])
def cpu(request, monkeypatch) -> isa.Isa:
    """The detected ISA monkeypatched to a recorded CPU's."""
    got = recorded(request.param)
    monkeypatch.setattr(isa, "this_cpu", lambda: got)
    return got


@pytest.mark.parametrize("engine", BF16_ENGINES)
def test_a_bf16_engine_is_skipped_with_its_reason_where_the_cpu_lacks_bf16(engine, cpu):
    spec = ENGINES.get(engine)
    assert spec.precision == "bf16" and spec.device == "cpu" and spec.native == "bf16"
    reason = spec.unavailable_reason()
    if cpu.native("bf16"):
        assert reason is None or "openvino" in reason  # only a missing package can stop it there
        return
    assert reason == f"engine {engine} is skipped: this CPU ({cpu.model}) {EMULATED}"
    assert engine not in available_engines()
    with pytest.raises(EngineUnavailable, match=f"{engine} is skipped"):
        get_engine(engine)


def test_the_isa_never_stops_an_fp32_or_int8_engine(cpu):
    for name in ("torch", "ort-cpu", "ort-cpu-int8"):
        assert ENGINES.get(name).native == "" and ENGINES.get(name).unavailable_reason() is None


def test_ort_int8_weight_bits_follow_vnni(cpu, tmp_path):
    assert int8_weight_bits() == (8 if cpu.native("int8") else 7)
    step = _int8_source("ort-cpu-int8", lambda: None, [{"x": np.zeros((1, 3, 8, 8), np.float32)}], None)
    assert isinstance(step, Int8OnnxFromOnnx) and step.reduce_range == (not cpu.native("int8"))
    assert "VNNI" in ENGINES.get("ort-cpu-int8").extra["int8_weights"]


def test_ov_bf16_engine_asks_openvino_for_bf16(cpu):
    ov, ov_bf16 = ENGINES.get("ov-cpu"), ENGINES.get("ov-cpu-bf16")
    assert ov.extra["inference_precision"] == "f32" and ov_bf16.extra["inference_precision"] == "bf16"
    if ov_bf16.available:
        assert ov_bf16.make_runner("model.onnx").precision == "bf16"
        assert ov.make_runner("model.onnx").precision == "f32"


def _tiny_graph() -> GraphSpec:
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1)).eval()
    return GraphSpec("tiny", "conv", conv, (TensorSpec("x", 3),), ("y",))


def test_torch_cpu_bf16_runs_autocast_on_the_cpu_where_bf16_is_native(monkeypatch):
    """Run here under a Sapphire Rapids ISA (emulated on this CPU, but the same numbers): bf16 rounding only."""
    spr = recorded("sapphire-rapids")
    monkeypatch.setattr(isa, "this_cpu", lambda: spr)
    graph = _tiny_graph()
    x = torch.rand(1, 3, 16, 16)
    with get_engine("torch-cpu-bf16").make_runner(graph) as r:
        y = r.infer({"x": x})["y"]
    ref = graph.module(x)
    assert y.dtype == torch.float32 and y.device.type == "cpu"
    assert 0 < (y - ref).abs().max().item() < 0.05  # bf16 compute (7-bit mantissa), not fp32


def test_doctor_isa_line_both_ways(monkeypatch):
    for name, expect in (("epyc-avx2", "bf16 engines skipped"), ("sapphire-rapids", "native: fp32, bf16, int8")):
        cpu = recorded(name)
        monkeypatch.setattr(isa, "this_cpu", lambda cpu=cpu: cpu)
        line = isa_info()
        assert line.startswith(cpu.line()) and expect in line
        assert ("bf16 engines skipped" in line) == (name == "epyc-avx2")


def test_manifest_device_info_records_the_isa_and_the_engines_view():
    info = device_info()
    assert info["isa"] == ", ".join(isa.this_cpu().features) and info["native_precisions"].startswith("fp32")
    assert info["ort_int8_weight_bits"] in (7, 8)
    assert "CPUExecutionProvider" in info["onnxruntime_providers"]
    ov = isa.engine_view()["openvino"]
    assert (info["openvino_capabilities"] is None) == (ov == {"installed": False})
    if "capabilities" in ov:
        assert "FP32" in info["openvino_capabilities"]
    env = environment()  # every timing row: the ISA, but not the engines' view (no OpenVINO import per timing)
    assert env["isa"] == info["isa"] and "openvino_capabilities" not in env
