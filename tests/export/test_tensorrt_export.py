"""ONNX → TensorRT build step, tested up to the TensorRT call (TensorRT cannot be installed on this machine).

The fake ``tensorrt`` below only records which builder calls liccs makes; it proves the call sequence and
the cache logic, never that TensorRT accepts them. Real builds are in tests/engines/test_tensorrt.py,
marked ``tensorrt`` and ``gpu``.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import liccs.export.tensorrt as tx
from liccs.engines.base import EngineUnavailable
from liccs.errors import InputError

FAKE_GPU = ("Fake GPU 9000", "8.9")


# --- helpers ------------------------------------------------------------------------------------


def tiny_onnx(path: Path, seed: int = 0, dtype: int = TensorProto.FLOAT, static: bool = False,
              external: bool = False) -> Path:
    """Conv(3→4, 3×3, pad 1) + Relu with dynamic N/H/W (or static 1×3×32×32)."""
    rng = np.random.default_rng(seed)
    npdt = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16}[dtype]
    w = (rng.standard_normal((4, 3, 3, 3)) * 0.2).astype(npdt)
    b = (rng.standard_normal(4) * 0.1).astype(npdt)
    dims_in, dims_out = ([1, 3, 32, 32], [1, 4, 32, 32]) if static else (["N", 3, "H", "W"], ["N", 4, "H", "W"])
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "tiny", [helper.make_tensor_value_info("x", dtype, dims_in)],
        [helper.make_tensor_value_info("y", dtype, dims_out)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if external:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=path.name + ".data", size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


def qdq_onnx(src: Path, dst: Path, symmetric: bool, quantize_bias: bool = False) -> Path:
    """A QDQ model of ``src`` from onnxruntime's static quantization on random calibration data."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    rng = np.random.default_rng(1)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"x": rng.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.it, None)

    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": quantize_bias} if symmetric else {}
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, extra_options=extra)
    return dst


def make_fake_trt(version: str = "10.8.0.43", *, weak: bool = True, calibrators: bool = True,
                  build_ok: bool = True, parse_ok: bool = True) -> types.ModuleType:
    """A stand-in ``tensorrt`` that records calls; ``weak=False`` mimics 11.x (no FP16/BF16/INT8 flags)."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = []
    trt.builders = 0
    rec = trt.calls.append
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", ["TF32", "REFIT", "SPARSE_WEIGHTS"]
                                   + (["FP16", "BF16", "INT8"] if weak else []))
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag",
                                                     {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1})
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})

    class ILogger:
        Severity = enum.IntEnum("Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4})

        def __init__(self) -> None:
            pass

    class Timing:
        def __init__(self, data: bytes) -> None:
            self.data = bytes(data)

        def serialize(self) -> bytes:
            return self.data + b"|timed"

    class Profile:
        def __init__(self) -> None:
            self.shapes = {}

        def set_shape(self, name, lo, opt, hi):
            self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

    class Config:
        def __init__(self) -> None:
            self.int8_calibrator = None
            self.timing = None

        def set_memory_pool_limit(self, pool, size):
            rec(("set_memory_pool_limit", pool.name, size))

        def set_flag(self, flag):
            rec(("set_flag", flag.name))

        def clear_flag(self, flag):
            rec(("clear_flag", flag.name))

        def add_optimization_profile(self, p):
            rec(("add_optimization_profile", dict(p.shapes)))
            return 0

        def set_calibration_profile(self, p):
            rec(("set_calibration_profile", dict(p.shapes)))

        def create_timing_cache(self, data):
            rec(("create_timing_cache", bytes(data)))
            return Timing(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            if cache.data == b"junk":  # what TensorRT does with a cache from another version or GPU
                return False
            self.timing = cache
            return True

        def get_timing_cache(self):
            return self.timing

    class Builder:
        def __init__(self, logger) -> None:
            trt.builders += 1
            self.logger = logger

        def create_network(self, flags):
            rec(("create_network", flags))
            return object()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            trt.last_config = config
            if not build_ok:
                self.logger.log(ILogger.Severity.ERROR,
                                "Error Code 10: Could not find any implementation for node Conv")
                return None
            return b"FAKEPLAN|" + json.dumps(trt.calls, default=str).encode()

    class ParserError:
        def desc(self):
            return "Unsupported ONNX opset"

        def node(self):
            return 0

        def node_operator(self):
            return "Conv"

    class OnnxParser:
        def __init__(self, network, logger) -> None:
            self.num_errors = 0

        def parse_from_file(self, path):
            rec(("parse_from_file", path))
            self.num_errors = 0 if parse_ok else 1
            return parse_ok

        def get_error(self, i):
            return ParserError()

    trt.ILogger, trt.Builder, trt.OnnxParser = ILogger, Builder, OnnxParser
    if calibrators:
        class IInt8EntropyCalibrator2:
            def __init__(self) -> None:
                pass

        trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    return trt


@pytest.fixture()
def fake_trt(monkeypatch):
    """Install a fake 10.x ``tensorrt`` and a fake GPU identity; returns a function to swap in another fake."""

    def install(trt: types.ModuleType) -> types.ModuleType:
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        return trt

    monkeypatch.setattr(tx, "cuda_device_identity", lambda: FAKE_GPU)
    install.default = install(make_fake_trt())
    return install


@pytest.fixture()
def tiny(tmp_path) -> Path:
    return tiny_onnx(tmp_path / "tiny.onnx")


PROFILE = {"x": ((1, 3, 64, 64), (2, 3, 128, 128), (8, 3, 256, 256))}


def info_of(path: Path, **kw) -> tx.OnnxInfo:
    base = tx.inspect_onnx(path)
    return tx.OnnxInfo(**{**base.__dict__, **kw})


# --- TensorRT missing -----------------------------------------------------------------------------


def test_missing_tensorrt_raises_engine_unavailable_with_install_hint(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    with pytest.raises(EngineUnavailable, match=r"pip install 'liccs\[tensorrt\]'") as e:
        tx.EngineFromOnnx(tiny, "fp16", PROFILE)()
    assert "NVIDIA" in str(e.value) and "GPU" in str(e.value)


def test_lean_runtime_without_builder_is_refused_for_building(monkeypatch):
    lean = types.ModuleType("tensorrt")
    lean.__version__ = "10.8.0"
    monkeypatch.setitem(sys.modules, "tensorrt", lean)
    with pytest.raises(EngineUnavailable, match="no builder"):
        tx.import_tensorrt()
    assert tx.import_tensorrt(need_builder=False) is lean


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_no_gpu_raises_engine_unavailable(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt())
    with pytest.raises(EngineUnavailable, match="CUDA GPU"):
        tx.EngineFromOnnx(tiny, "fp32", PROFILE)()


# --- profiles -------------------------------------------------------------------------------------


def test_image_profile_and_multiples():
    p = tx.image_profile("x", batch=(1, 2, 8), size=(64, 512, 1088))
    assert p["x"] == tx.ShapeRange((1, 3, 64, 64), (2, 3, 512, 512), (8, 3, 1088, 1088))
    with pytest.raises(InputError, match="multiples of 64"):
        tx.image_profile("x", size=(64, 500, 1088))


def test_resolve_profile_fills_static_inputs_and_checks_dynamic_ones():
    inputs = {"x": (None, 3, None, None), "scale": (1, 4)}
    out = tx.resolve_profile(inputs, PROFILE, where="m.onnx")
    assert out["scale"] == tx.ShapeRange((1, 4), (1, 4), (1, 4))
    assert out["x"].max == (8, 3, 256, 256)


@pytest.mark.parametrize("profile, message", [
    ({}, r"input 'x' of m.onnx has dynamic shape \(\?, 3, \?, \?\)"),
    ({"x": PROFILE["x"], "y": PROFILE["x"]}, r"input\(s\) \['y'\] that m.onnx does not have"),
    ({"x": ((1, 3, 64), (1, 3, 64), (1, 3, 64))}, "has rank 3"),
    ({"x": ((1, 4, 64, 64), (1, 4, 64, 64), (1, 4, 64, 64))}, "dimension 1 of input 'x' is fixed at 3"),
    ({"x": ((1, 3, 128, 128), (1, 3, 64, 64), (1, 3, 256, 256))}, "min <= opt <= max"),
    ({"x": ((0, 3, 64, 64), (1, 3, 64, 64), (1, 3, 64, 64))}, "below 1"),
    ({"x": "1x3x64x64"}, r"must be \(min, opt, max\) shapes"),
])
def test_resolve_profile_errors_name_the_input(profile, message):
    with pytest.raises(InputError, match=message):
        tx.resolve_profile({"x": (None, 3, None, None)}, profile, where="m.onnx")


# --- ONNX inspection ------------------------------------------------------------------------------


def test_inspect_onnx_reads_inputs_and_types(tiny, tmp_path):
    info = tx.inspect_onnx(tiny)
    assert info.inputs == {"x": (None, 3, None, None)}
    assert info.float_types == {"float32"} and info.qdq_nodes == 0 and not info.qdq_problems
    half = tx.inspect_onnx(tiny_onnx(tmp_path / "half.onnx", dtype=TensorProto.FLOAT16, static=True))
    assert half.inputs == {"x": (1, 3, 32, 32)} and "float16" in half.float_types


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"), (b"", "empty or not an ONNX model"),
    (b"\x00\xffnot onnx" * 20, "truncated or not ONNX"), ("half", "truncated or not ONNX"),
])
def test_bad_onnx_files_name_the_file(tiny, tmp_path, content, message):
    bad = tmp_path / "bad.onnx"
    if content == "half":
        content = tiny.read_bytes()[: len(tiny.read_bytes()) // 2]
    if content is not None:
        bad.write_bytes(content)
    with pytest.raises(tx.OnnxFileError, match=f"{bad}.*{message}"):
        tx.inspect_onnx(bad)


def test_qdq_from_onnxruntime_defaults_is_flagged_and_symmetric_passes(tiny, tmp_path):
    default = tx.inspect_onnx(qdq_onnx(tiny, tmp_path / "asym.onnx", symmetric=False))
    assert default.qdq_nodes and any("non-zero zero point" in p for p in default.qdq_problems)
    with_bias = tx.inspect_onnx(qdq_onnx(tiny, tmp_path / "bias.onnx", symmetric=True, quantize_bias=True))
    assert any("QuantizeBias=False" in p for p in with_bias.qdq_problems)
    sym = tx.inspect_onnx(qdq_onnx(tiny, tmp_path / "sym.onnx", symmetric=True))
    assert sym.qdq_nodes >= 4 and sym.qdq_problems == ()


def test_onnx_digest_follows_the_file_and_its_external_data(tmp_path):
    a = tiny_onnx(tmp_path / "a.onnx", external=True)
    d0 = tx.onnx_digest(a)
    assert d0 == tx.onnx_digest(a)
    data = tmp_path / "a.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[0] ^= 1
    data.write_bytes(bytes(raw))
    assert tx.onnx_digest(a) != d0
    data.unlink()
    with pytest.raises(tx.OnnxFileError, match="a.onnx.data"):
        tx.onnx_digest(a)


# --- build plans ------------------------------------------------------------------------------------

V10 = dict(trt_version="10.8.0", builder_flags=["TF32", "FP16", "BF16", "INT8"],
           network_flags=["EXPLICIT_BATCH", "STRONGLY_TYPED"], has_calibrator=True, calibration_given=False)
V11 = dict(V10, trt_version="11.4.0", builder_flags=["TF32"], has_calibrator=False)


def test_plans_on_tensorrt_10(tiny):
    info = tx.inspect_onnx(tiny)
    fp32 = tx.plan_build("fp32", info, **V10)
    assert (fp32.strongly_typed, fp32.set_flags, fp32.clear_flags) == (False, (), ("TF32",))
    assert tx.plan_build("fp32", info, **{**V10, "tf32": True}).set_flags == ("TF32",)
    assert tx.plan_build("fp16", info, **V10).set_flags == ("FP16",)
    assert tx.plan_build("bf16", info, **V10).set_flags == ("BF16",)
    half = info_of(tiny, float_types=frozenset({"float16"}))
    assert tx.plan_build("fp16", half, **V10).strongly_typed
    calib = tx.plan_build("int8", info, **{**V10, "calibration_given": True})
    assert calib.calibrate and calib.set_flags == ("INT8",) and "deprecated" in calib.route


def test_plans_on_tensorrt_11(tiny):
    info = tx.inspect_onnx(tiny)
    assert tx.plan_build("fp32", info, **V11).strongly_typed
    with pytest.raises(tx.TensorRTError, match=f"no BuilderFlag.FP16.*{tiny}.*modelopt.onnx.autocast"):
        tx.plan_build("fp16", info, **V11)
    half = tx.plan_build("fp16", info_of(tiny, float_types=frozenset({"float32", "float16"})), **V11)
    assert half.strongly_typed and half.set_flags == ()
    with pytest.raises(tx.TensorRTError, match="no implicit INT8 calibration.*QDQ"):
        tx.plan_build("int8", info, **{**V11, "calibration_given": True})


def test_int8_plans_need_symmetric_qdq_or_images(tiny):
    qdq = info_of(tiny, qdq_nodes=6)
    for version in (V10, V11):
        plan = tx.plan_build("int8", qdq, **version)
        assert plan.strongly_typed and "INT8" not in plan.set_flags and not plan.calibrate
    bad = info_of(tiny, qdq_nodes=6, qdq_problems=("QuantizeLinear 'q' has a non-zero zero point",))
    with pytest.raises(tx.TensorRTError, match="ActivationSymmetric"):
        tx.plan_build("int8", bad, **V10)
    with pytest.raises(tx.TensorRTError, match="QDQ ONNX .* or calibration images"):
        tx.plan_build("int8", tx.inspect_onnx(tiny), **V10)
    with pytest.raises(InputError, match="precision must be one of"):
        tx.plan_build("int4", qdq, **V10)


# --- cache key and files ----------------------------------------------------------------------------

BASE_KEY = dict(onnx_sha256="ab" * 32, precision="fp16", profile={"x": tx.ShapeRange.of(PROFILE["x"], "x")},
                trt_version="10.8.0.43", gpu_name="NVIDIA H100", compute_capability="9.0",
                options={"workspace_bytes": 1 << 30, "tf32": False})


def test_cache_key_is_stable():
    k = tx.engine_cache_key(tx.key_fields(**BASE_KEY))
    assert k == tx.engine_cache_key(tx.key_fields(**dict(reversed(list(BASE_KEY.items())))))
    assert len(k) == 24


@pytest.mark.parametrize("field, value", [
    ("onnx_sha256", "cd" * 32), ("precision", "bf16"),
    ("profile", {"x": tx.ShapeRange((1, 3, 64, 64), (2, 3, 128, 128), (8, 3, 512, 512))}),
    ("trt_version", "10.9.0.1"), ("gpu_name", "NVIDIA A100"), ("compute_capability", "8.0"),
    ("options", {"workspace_bytes": 2 << 30, "tf32": False}),
])
def test_cache_key_changes_with_each_field(field, value):
    assert tx.engine_cache_key(tx.key_fields(**{**BASE_KEY, field: value})) != \
        tx.engine_cache_key(tx.key_fields(**BASE_KEY))


def test_engine_cache_files_are_checked_against_key_and_bytes(tmp_path):
    path = tmp_path / "m.fp16.k1.engine"
    tx.write_engine(path, b"PLAN" * 100, {"key": "k1"})
    hit = tx.read_cached_engine(path, "k1")
    assert hit == b"PLAN" * 100 and hit.source == str(path) and hit.meta["key"] == "k1"
    assert tx.read_cached_engine(path, "k2") is None
    path.write_bytes(b"PLAN" * 50)  # truncated behind the sidecar's back
    assert tx.read_cached_engine(path, "k1") is None
    Path(str(path) + ".json").unlink()
    assert tx.read_cached_engine(path, "k1") is None


# --- EngineFromOnnx with the recording fake -------------------------------------------------------


def test_fp32_build_makes_the_expected_calls_and_caches(fake_trt, tiny, tmp_path):
    trt = fake_trt.default
    step = tx.EngineFromOnnx(tiny, "fp32", PROFILE, cache_root=tmp_path / "c", workspace_bytes=1 << 30)
    data = step()
    assert data.startswith(b"FAKEPLAN") and not step.cache_hit and step.path.is_file()
    assert ("create_network", 0) in trt.calls and ("parse_from_file", str(tiny)) in trt.calls
    assert ("set_memory_pool_limit", "WORKSPACE", 1 << 30) in trt.calls
    assert ("clear_flag", "TF32") in trt.calls and not any(c[0] == "set_flag" for c in trt.calls)
    assert ("add_optimization_profile", {"x": PROFILE["x"]}) in trt.calls
    meta = json.loads(Path(str(step.path) + ".json").read_text())
    assert meta["fields"]["gpu"] == FAKE_GPU[0] and meta["fields"]["tensorrt"] == "10.8.0.43"
    timing = step.timing_cache_path("10.8.0.43", *FAKE_GPU)
    assert timing.read_bytes() == b"|timed"

    again = tx.EngineFromOnnx(tiny, "fp32", PROFILE, cache_root=tmp_path / "c", workspace_bytes=1 << 30)
    assert again() == data and again.cache_hit and trt.builders == 1

    fp16 = tx.EngineFromOnnx(tiny, "fp16", PROFILE, cache_root=tmp_path / "c", workspace_bytes=1 << 30)
    fp16()
    assert not fp16.cache_hit and fp16.key != step.key and trt.builders == 2
    assert ("set_flag", "FP16") in trt.calls
    assert ("create_timing_cache", b"|timed") in trt.calls  # the first build's timing cache was reused


def test_unusable_timing_cache_is_replaced(fake_trt, tiny, tmp_path):
    timing = tmp_path / "timing.cache"
    timing.write_bytes(b"junk")
    tx.EngineFromOnnx(tiny, "fp32", PROFILE, cache_root=tmp_path / "c", timing_cache=timing)()
    assert ("create_timing_cache", b"") in fake_trt.default.calls and timing.read_bytes() == b"|timed"


def test_changed_onnx_rebuilds(fake_trt, tmp_path):
    model = tiny_onnx(tmp_path / "m.onnx", seed=0)
    first = tx.EngineFromOnnx(model, "fp32", PROFILE, cache_root=tmp_path / "c")
    first()
    tiny_onnx(model, seed=1)  # new weights, same file name
    second = tx.EngineFromOnnx(model, "fp32", PROFILE, cache_root=tmp_path / "c")
    second()
    assert not second.cache_hit and second.key != first.key and fake_trt.default.builders == 2


def test_corrupt_cached_engine_is_rebuilt(fake_trt, tiny, tmp_path):
    step = tx.EngineFromOnnx(tiny, "fp32", PROFILE, cache_root=tmp_path)
    good = step()
    step.path.write_bytes(good[:10])
    again = tx.EngineFromOnnx(tiny, "fp32", PROFILE, cache_root=tmp_path)
    rebuilt = again()
    assert rebuilt.startswith(b"FAKEPLAN") and not again.cache_hit and fake_trt.default.builders == 2
    assert tx.read_cached_engine(step.path, again.key) == rebuilt


def test_uncached_build_writes_no_engine(fake_trt, tiny, tmp_path):
    step = tx.EngineFromOnnx(tiny, "fp32", PROFILE, cache=False, cache_root=tmp_path / "c", timing_cache=False)
    data = step()
    assert data.source.startswith("<engine built from") and step.path is None and not (tmp_path / "c").exists()


def test_qdq_int8_builds_strongly_typed_without_int8_flag(fake_trt, tiny, tmp_path):
    model = qdq_onnx(tiny, tmp_path / "q.onnx", symmetric=True)
    tx.EngineFromOnnx(model, "int8", PROFILE, cache_root=tmp_path / "c")()
    calls = fake_trt.default.calls
    assert ("create_network", 1 << 1) in calls and ("set_flag", "INT8") not in calls


def test_implicit_int8_calibration_on_tensorrt_10(fake_trt, tiny, tmp_path, shared_data):
    step = tx.EngineFromOnnx(tiny, "int8", PROFILE, calibration_images=shared_data / "kodak",
                             calibration_max_images=4, cache_root=tmp_path)
    step()
    calls = fake_trt.default.calls
    assert ("set_flag", "INT8") in calls
    opt = PROFILE["x"][1]
    assert ("set_calibration_profile", {"x": (opt, opt, opt)}) in calls
    calibrator = fake_trt.default.last_config.int8_calibrator
    assert isinstance(calibrator, fake_trt.default.IInt8EntropyCalibrator2) and calibrator.get_batch_size() == 1
    identity = json.loads(Path(str(step.path) + ".json").read_text())["fields"]["options"]["calibration"]
    assert len(identity) == 5 and "kodak" in identity[1]  # the shape, then the four images: part of the key


def test_tensorrt_11_refuses_weak_precisions_clearly(fake_trt, tiny, tmp_path):
    fake_trt(make_fake_trt("11.4.0.106", weak=False, calibrators=False))
    with pytest.raises(tx.TensorRTError, match="removed in 11.0"):
        tx.EngineFromOnnx(tiny, "fp16", PROFILE, cache_root=tmp_path)()
    trt = fake_trt(make_fake_trt("11.4.0.106", weak=False, calibrators=False))
    tx.EngineFromOnnx(tiny, "fp32", PROFILE, cache_root=tmp_path)()
    assert ("create_network", 1 << 1) in trt.calls


def test_builder_failure_names_the_onnx_and_tensorrts_message(fake_trt, tiny, tmp_path):
    fake_trt(make_fake_trt(build_ok=False))
    with pytest.raises(tx.TensorRTError, match=f"could not build an engine from {tiny}.*Could not find any "
                                               f"implementation for node Conv"):
        tx.EngineFromOnnx(tiny, "fp32", PROFILE, cache_root=tmp_path)()
    assert not list(tmp_path.glob("*.engine"))


def test_parser_failure_names_the_onnx(fake_trt, tiny, tmp_path):
    fake_trt(make_fake_trt(parse_ok=False))
    with pytest.raises(tx.TensorRTError, match=f"cannot parse {tiny}: node 0 \\(Conv\\): Unsupported ONNX opset"):
        tx.EngineFromOnnx(tiny, "fp32", PROFILE, cache_root=tmp_path)()


def test_bad_input_is_refused_before_the_builder_runs(fake_trt, tiny, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(tiny.read_bytes()[:100])
    with pytest.raises(tx.OnnxFileError, match=str(bad)):
        tx.EngineFromOnnx(bad, "fp32", PROFILE, cache_root=tmp_path)()
    with pytest.raises(InputError, match=f"input 'x' of {tiny} has dynamic shape"):
        tx.EngineFromOnnx(tiny, "fp32", None, cache_root=tmp_path)()
    with pytest.raises(InputError, match="precision must be one of"):
        tx.EngineFromOnnx(tiny, "fp8")
    assert fake_trt.default.builders == 0


# --- EngineFromPath and deserialization errors ------------------------------------------------------


def test_engine_from_path_checks_the_file(tmp_path, monkeypatch):
    missing = tmp_path / "none.engine"
    with pytest.raises(tx.EngineFileError, match=f"{missing} does not exist"):
        tx.EngineFromPath(missing)()
    empty = tmp_path / "empty.engine"
    empty.write_bytes(b"")
    with pytest.raises(tx.EngineFileError, match=f"{empty} is empty"):
        tx.EngineFromPath(empty)()
    foreign = tmp_path / "foreign.engine"
    foreign.write_bytes(b"plan built elsewhere")
    assert tx.EngineFromPath(foreign)().source == str(foreign)

    path = tmp_path / "m.engine"
    tx.write_engine(path, b"PLAN" * 64, {"key": "k", "onnx": "m.onnx", "fields": {"tensorrt": "10.8.0.43"}})
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt("10.8.0.43"))
    assert tx.EngineFromPath(path)() == b"PLAN" * 64
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt("10.9.0.34"))
    with pytest.raises(tx.EngineVersionError, match=r"built with TensorRT 10.8.0.43; this is TensorRT 10.9.0.34"):
        tx.EngineFromPath(path)()
    path.write_bytes(b"PLAN" * 10)
    with pytest.raises(tx.EngineFileError, match=f"{path} is truncated or corrupt"):
        tx.EngineFromPath(path)()


class _Runtime:
    def __init__(self, logger, message: str) -> None:
        self.logger, self.message = logger, message

    def deserialize_cuda_engine(self, data):
        self.logger.log(self.logger.Severity.ERROR, self.message)
        return None


@pytest.mark.parametrize("message, error", [
    ("The engine plan file is not compatible with this version of TensorRT, expecting library version 10.9.0.34 "
     "got 10.8.0.43, please rebuild.", tx.EngineVersionError),
    ("Serialization assertion stdVersionRead == kSERIALIZATION_VERSION failed.Version tag does not match.",
     tx.EngineVersionError),
    ("The engine plan file is generated on an incompatible device, expecting compute 8.6 got compute 7.5",
     tx.EngineVersionError),
    ("Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match", tx.EngineFileError),
])
def test_deserialization_errors_are_classified_and_name_the_file(message, error):
    trt = make_fake_trt("10.9.0.34")
    logger = tx.make_logger(trt)
    with pytest.raises(error, match="engine /x/m.engine") as e:
        tx.deserialize_engine(trt, _Runtime(logger, message), logger.collector, b"junk", "/x/m.engine")
    assert message[:40] in str(e.value)


def test_log_collector_keeps_warnings_and_errors():
    c = tx.LogCollector()
    for sev, msg in [("VERBOSE", "v"), ("INFO", "i"), ("WARNING", "w"), ("ERROR", "e1"), ("INTERNAL_ERROR", "e2")]:
        c.add(sev, msg)
    assert c.records == [("WARNING", "w"), ("ERROR", "e1"), ("INTERNAL_ERROR", "e2")]
    assert c.errors == ["e1", "e2"] and c.summary() == "e1; e2"
    c.clear()
    assert c.summary() == "TensorRT logged no error"


# --- calibration data (real images) -----------------------------------------------------------------


def test_fit_image_covers_and_centre_crops():
    img = torch.full((3, 50, 100), 128, dtype=torch.uint8)
    out = tx.fit_image(img, 64, 64)
    assert out.shape == (3, 64, 64) and torch.allclose(out, torch.full_like(out, 128 / 255), atol=1e-3)
    ramp = torch.arange(100, dtype=torch.uint8).repeat(3, 60, 1)
    crop = tx.fit_image(ramp, 60, 50)  # no scaling needed: a centre crop of width 50
    assert crop.shape == (3, 60, 50) and crop[0, 0, 0] == pytest.approx(25 / 255)


def test_calibration_batches_over_kodak(shared_data):
    batches = tx.CalibrationBatches(shared_data / "kodak", (4, 3, 64, 96), max_images=10)
    assert len(batches) == 2
    out = list(batches)
    assert len(out) == 2 and not batches.failures
    for b in out:
        assert b.dtype == np.float32 and b.shape == (4, 3, 64, 96) and b.flags["C_CONTIGUOUS"]
        assert 0.0 <= b.min() and b.max() <= 1.0 and b.std() > 0.05
    assert len(batches.identity()) == 11 and "kodak" in batches.identity()[1]
    assert not np.array_equal(out[0], out[1])


def test_calibration_skips_unreadable_images_and_checks_counts(shared_data, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in sorted((shared_data / "kodak").iterdir())[:5]:
        shutil.copy(p, folder / p.name)
    (folder / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    batches = tx.CalibrationBatches(folder, (2, 3, 32, 32))
    assert len(list(batches)) == 2 and len(batches.failures) == 1 and "zz_broken" in batches.failures[0][0]
    with pytest.raises(InputError, match="at least 8 images"):
        tx.CalibrationBatches(folder, (8, 3, 32, 32))
    with pytest.raises(InputError, match="3 channels"):
        tx.CalibrationBatches(folder, (2, 1, 32, 32))


def test_calibrator_cache_round_trip_without_gpu(tmp_path, shared_data):
    trt = make_fake_trt()
    batches = tx.CalibrationBatches(shared_data / "kodak", (2, 3, 32, 32), max_images=2)
    cal = tx.make_entropy_calibrator(trt, batches, tmp_path / "m.calib")
    assert cal.read_calibration_cache() is None and cal.get_batch_size() == 1
    cal.write_calibration_cache(memoryview(b"TRT-1234-EntropyCalibration2\nx: 3c010a14\n"))
    assert cal.read_calibration_cache().startswith(b"TRT-1234")


@pytest.mark.gpu
def test_calibrator_hands_device_pointers_then_none(tmp_path, shared_data):
    batches = tx.CalibrationBatches(shared_data / "kodak", (2, 3, 32, 32), max_images=4)
    cal = tx.make_entropy_calibrator(make_fake_trt(), batches, None)
    ptrs = [cal.get_batch(["x"]) for _ in range(3)]
    assert ptrs[0][0] > 0 and ptrs[1][0] > 0 and ptrs[2] is None and cal.batches_used == 2


def test_cache_dir_default_is_under_liccs_cache(tmp_cache, fake_trt, tiny):
    step = tx.EngineFromOnnx(tiny, "fp32", PROFILE)
    step()
    assert step.path.parent == Path(os.environ["LICCS_CACHE"]) / "tensorrt"
