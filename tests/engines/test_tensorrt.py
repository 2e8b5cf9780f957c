"""The trt-* engines and TrtRunner.

Without TensorRT (this machine): registration, availability reasons, the lazy import, dtype mapping, and the
runner's metadata and feed checks over a fake deserialized engine (the fake proves liccs' side only).
With TensorRT and a GPU: the ``tensorrt``/``gpu`` tests build real engines and compare with onnxruntime.
"""

from __future__ import annotations

import enum
import importlib.util
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import liccs.engines.tensorrt as te
import liccs.export.tensorrt as tx
from liccs.engines.base import ENGINES, EngineUnavailable, TensorMeta, available_engines, get_engine
from liccs.errors import InputError
from liccs.paths import PROJECT_ROOT

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
PROFILE = {"x": ((1, 3, 64, 64), (2, 3, 128, 128), (8, 3, 256, 256))}
real = [pytest.mark.tensorrt, pytest.mark.gpu]


def tiny_onnx(path: Path, seed: int = 0) -> Path:
    """Conv(3→4, 3×3, pad 1) + Relu with dynamic N/H/W."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((4, 3, 3, 3)) * 0.2).astype(np.float32)
    b = (rng.standard_normal(4) * 0.1).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, "H", "W"])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture()
def tiny(tmp_path) -> Path:
    return tiny_onnx(tmp_path / "tiny.onnx")


def fake_runtime_trt(version: str = "10.8.0.43") -> types.ModuleType:
    """A stand-in ``tensorrt`` whose Runtime yields an engine with input x [N,3,H,W] and output y."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
    trt.DataType = enum.IntEnum("DataType", ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "FP8", "BF16",
                                             "INT64", "INT4"])

    class ILogger:
        Severity = enum.IntEnum("Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4})

        def __init__(self) -> None:
            pass

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return ["x", "y"][i]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name == "x" else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return trt.DataType.FLOAT

        def get_tensor_shape(self, name):
            return (-1, 3, -1, -1) if name == "x" else (-1, 4, -1, -1)

        def get_tensor_profile_shape(self, name, index):
            return [list(s) for s in PROFILE[name]]

        def create_execution_context(self):
            return object()

    class Runtime:
        def __init__(self, logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, data):
            if bytes(data).startswith(b"FAKEPLAN"):
                return Engine()
            self.logger.log(ILogger.Severity.ERROR, "Serialization assertion magicTagRead == kMAGIC_TAG failed")
            return None

    trt.ILogger, trt.Runtime = ILogger, Runtime
    return trt


@pytest.fixture()
def fake_gpu_trt(monkeypatch):
    trt = fake_runtime_trt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(te.torch.cuda, "is_available", lambda: True)
    return trt


# --- registry and availability --------------------------------------------------------------------


@pytest.mark.parametrize("precision", PRECISIONS)
def test_trt_engines_are_registered(precision):
    spec = ENGINES.get(f"trt-{precision}")
    assert (spec.backend, spec.precision, spec.device) == ("tensorrt", precision, "cuda")
    assert spec.requires == ("tensorrt",) and spec.needs_cuda
    assert "pip install 'liccs[tensorrt]'" in spec.install_hint


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available(),
                    reason="TensorRT and a GPU are present: the engines are available")
@pytest.mark.parametrize("precision", PRECISIONS)
def test_trt_engines_report_unavailable_with_reason(precision):
    name = f"trt-{precision}"
    reason = ENGINES.get(name).unavailable_reason()
    assert reason and name in reason and ("'tensorrt'" in reason or "CUDA GPU" in reason)
    with pytest.raises(EngineUnavailable, match=name):
        get_engine(name)
    assert name not in available_engines()


def test_importing_the_engine_module_does_not_import_tensorrt(tmp_path):
    # A `tensorrt` package that fails loudly when executed; looking it up (torch does) is fine.
    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "__init__.py").write_text("raise AssertionError('tensorrt imported at import time')\n")
    code = textwrap.dedent("""
        import sys
        import liccs.engines.tensorrt, liccs.export.tensorrt
        from liccs.engines.base import ENGINES
        assert "trt-fp16" in ENGINES and "tensorrt" not in sys.modules
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PROJECT_ROOT)])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=PROJECT_ROOT, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_make_runner_builds_from_onnx_or_loads_an_engine(tiny, tmp_path):
    runner = ENGINES.get("trt-fp16").make_runner(tiny, profile=PROFILE, workspace_bytes=1 << 28)
    assert isinstance(runner, te.TrtRunner) and runner.name == "trt-fp16"
    step = runner._engine_source
    assert isinstance(step, tx.EngineFromOnnx) and step.precision == "fp16" and step.workspace_bytes == 1 << 28
    assert ENGINES.get("trt-fp32").make_runner(tmp_path / "m.engine")._engine_source == tmp_path / "m.engine"
    with pytest.raises(InputError, match="apply to an ONNX file"):
        ENGINES.get("trt-fp32").make_runner(tmp_path / "m.engine", profile=PROFILE)


# --- dtype mapping and metadata -------------------------------------------------------------------


@pytest.mark.parametrize("name, dtype", [("FLOAT", torch.float32), ("HALF", torch.float16), ("BF16", torch.bfloat16),
                                         ("INT8", torch.int8), ("INT32", torch.int32), ("INT64", torch.int64),
                                         ("BOOL", torch.bool), ("UINT8", torch.uint8)])
def test_dtype_mapping_both_ways(name, dtype):
    trt = fake_runtime_trt()
    assert te.torch_dtype(trt.DataType[name]) is dtype and te.TORCH_TO_TRT[dtype] == name


def test_unknown_trt_dtype_is_named():
    with pytest.raises(tx.TensorRTError, match="INT4 has no torch equivalent"):
        te.torch_dtype(fake_runtime_trt().DataType.INT4)


def test_tensor_meta_static_and_dynamic():
    assert te.tensor_meta(torch.float16, (1, 3, 32, 32)) == TensorMeta("float16", (1, 3, 32, 32))
    meta = te.tensor_meta(torch.float32, (-1, 3, -1, -1), PROFILE["x"])
    assert meta == TensorMeta("float32", (None, 3, None, None), (1, 3, 64, 64), (8, 3, 256, 256))
    with pytest.raises(tx.TensorRTError, match="no profile"):
        te.tensor_meta(torch.float32, (-1, 3, 8, 8))


# --- the runner over a fake deserialized engine (liccs' side only) ---------------------------------


def test_runner_reports_the_profile_and_refuses_shapes_outside_it(fake_gpu_trt):
    runner = te.TrtRunner(b"FAKEPLAN", name="trt-fp32")
    meta = runner.input_metadata()
    assert meta == {"x": TensorMeta("float32", (None, 3, None, None), (1, 3, 64, 64), (8, 3, 256, 256))}
    runner.check_feed({"x": np.zeros((2, 3, 64, 200), np.float32)})
    with pytest.raises(InputError, match=r"input 'x' shape \(1, 3, 512, 512\) is outside the engine's profile"):
        runner.check_feed({"x": np.zeros((1, 3, 512, 512), np.float32)})
    with pytest.raises(InputError, match=r"input 'x' shape \(9, 3, 64, 64\) is outside"):
        runner.check_feed({"x": torch.zeros(9, 3, 64, 64)})
    with pytest.raises(InputError, match="input 'x' must be float32, got float64"):
        runner.check_feed({"x": np.zeros((1, 3, 64, 64))})
    with pytest.raises(InputError, match=r"missing \['x'\]"):
        runner.check_feed({"image": np.zeros((1, 3, 64, 64), np.float32)})
    runner.deactivate()


def test_runner_names_the_engine_file_it_cannot_load(fake_gpu_trt, tmp_path):
    with pytest.raises(tx.EngineFileError, match="engine <engine bytes> cannot be deserialized.*magicTag"):
        te.TrtRunner(b"not an engine").activate()
    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"not an engine either")
    with pytest.raises(tx.EngineFileError, match=f"engine {bad} cannot be deserialized"):
        te.TrtRunner(bad).activate()
    with pytest.raises(tx.EngineFileError, match="does not exist"):
        te.TrtRunner(tmp_path / "missing.engine").activate()


def test_runner_without_tensorrt_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(EngineUnavailable, match=r"pip install 'liccs\[tensorrt\]'"):
        te.TrtRunner(b"FAKEPLAN").activate()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_runner_without_gpu_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_runtime_trt())
    with pytest.raises(EngineUnavailable, match="CUDA GPU"):
        te.TrtRunner(b"FAKEPLAN").activate()


# --- real TensorRT (skipped here; run on a machine with TensorRT and a GPU) ------------------------


def _reference(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("precision, atol", [("fp32", 1e-4), ("fp16", 2e-2), ("bf16", 1e-1)])
def test_real_engine_matches_onnxruntime_on_two_shapes(precision, atol, tiny, tmp_path):
    if precision == "bf16" and torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("bf16 needs compute capability 8.0 or newer")
    rng = np.random.default_rng(0)
    step = tx.EngineFromOnnx(tiny, precision, PROFILE, cache_root=tmp_path, workspace_bytes=1 << 28)
    with ENGINES.get(f"trt-{precision}").make_runner(step) as runner:
        meta = runner.input_metadata()["x"]
        assert (meta.min_shape, meta.max_shape) == (PROFILE["x"][0], PROFILE["x"][2])
        for shape in [(1, 3, 64, 64), (3, 3, 128, 192)]:
            x = rng.random(shape, dtype=np.float32)
            got = runner.infer({"x": x})["y"]
            assert isinstance(got, np.ndarray) and got.shape == (shape[0], 4, *shape[2:])
            np.testing.assert_allclose(got, _reference(tiny, x), atol=atol, rtol=atol)
        out = runner.infer({"x": torch.rand(2, 3, 64, 64, device="cuda")})["y"]
        assert out.is_cuda and out.shape == (2, 4, 64, 64)
        with pytest.raises(InputError, match="input 'x' shape .* outside the engine's profile"):
            runner.infer({"x": np.zeros((1, 3, 512, 512), np.float32)})


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_real_cache_hit_rebuild_and_corrupt_files(tmp_path):
    model = tiny_onnx(tmp_path / "m.onnx")
    first = tx.EngineFromOnnx(model, "fp32", PROFILE, cache_root=tmp_path / "c")
    data = first()
    assert not first.cache_hit and first.timing_cache_path(*_device_args()).is_file()
    again = tx.EngineFromOnnx(model, "fp32", PROFILE, cache_root=tmp_path / "c")
    assert again() == data and again.cache_hit
    tiny_onnx(model, seed=1)
    changed = tx.EngineFromOnnx(model, "fp32", PROFILE, cache_root=tmp_path / "c")
    changed()
    assert not changed.cache_hit and changed.key != first.key
    truncated = tmp_path / "t.engine"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(tx.EngineFileError, match=str(truncated)):
        te.TrtRunner(truncated).activate()
    first.path.write_bytes(data[:100])  # behind the sidecar's back: caught before TensorRT sees it
    with pytest.raises(tx.EngineFileError, match="truncated or corrupt"):
        te.TrtRunner(first.path).activate()


def _device_args() -> tuple[str, str, str]:
    import tensorrt as trt

    return (trt.__version__, *tx.cuda_device_identity())


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_real_int8_from_symmetric_qdq(tiny, tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(1)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"x": rng.random((1, 3, 64, 64), dtype=np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.it, None)

    qdq = tmp_path / "q.onnx"
    quantize_static(str(tiny), str(qdq), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    x = rng.random((2, 3, 128, 128), dtype=np.float32)
    with ENGINES.get("trt-int8").make_runner(qdq, profile=PROFILE, cache_root=tmp_path / "c") as runner:
        got = runner.infer({"x": x})["y"]
    assert np.abs(got - _reference(qdq, x)).max() < 0.05  # same Q/DQ scales; rounding may differ by a step


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_real_int8_calibration_on_tensorrt_10(tiny, tmp_path, shared_data):
    import tensorrt as trt

    if tx.trt_major(trt) >= 11:
        pytest.skip("TensorRT 11 removed implicit INT8 calibration")
    step = tx.EngineFromOnnx(tiny, "int8", PROFILE, calibration_images=shared_data / "kodak",
                             calibration_max_images=8, cache_root=tmp_path)
    x = tx.CalibrationBatches(shared_data / "kodak", (2, 3, 128, 128), max_images=2).__iter__().__next__()
    with te.TrtRunner(step, name="trt-int8") as runner:
        got = runner.infer({"x": x})["y"]
    assert np.abs(got - _reference(tiny, x)).max() < 0.1
    assert Path(str(step.path)[: -len(".engine")] + ".calib").is_file()
