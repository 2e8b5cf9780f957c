"""liccs's own part of the TensorRT build (liccs.export.tensorrt), on real ONNX files and without TensorRT.

The precision plan per TensorRT version, Q/DQ detection, profiles from the ONNX inputs, the engine cache key, and
the errors when tensorrt or polygraphy is missing or when Polygraphy fails. Builds and runs with a real TensorRT
are in tests/engines/test_tensorrt.py (marked ``tensorrt`` and ``gpu``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import liccs.export.tensorrt as tx
from liccs.core.errors import EngineUnavailable, InputError
from liccs.core.paths import PROJECT_ROOT
from liccs.export.cache import ArtifactCache, key_digest
from liccs.export.errors import ArtifactError
from liccs.export.onnx import load_onnx, onnx_inputs

PROFILE = {"x": ((1, 3, 64, 64), (2, 3, 128, 128), (8, 3, 256, 256))}


def tiny_onnx(path: Path, seed: int = 0, static: bool = False, op: str = "Relu", domain: str = "") -> Path:
    """Conv(3→4, 3×3, pad 1) then ``op`` (from ``domain``), input x [N, 3, H, W] (or static [1, 3, 32, 32])."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((4, 3, 3, 3)) * 0.2).astype(np.float32)
    b = (rng.standard_normal(4) * 0.1).astype(np.float32)
    dims_in, dims_out = ([1, 3, 32, 32], [1, 4, 32, 32]) if static else (["N", 3, "H", "W"], ["N", 4, "H", "W"])
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node(op, ["c"], ["y"], domain=domain)],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims_in)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims_out)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def qdq_onnx(src: Path, dst: Path) -> Path:
    """A symmetric int8 Q/DQ model of ``src`` (what TensorRT accepts) from onnxruntime's static quantization."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(1)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"x": rng.random((1, 3, 64, 64), dtype=np.float32)} for _ in range(4)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    return dst


@pytest.fixture()
def tiny(tmp_path) -> Path:
    return tiny_onnx(tmp_path / "tiny.onnx")


# --- the precision plan -----------------------------------------------------------------------------


def test_plans_on_tensorrt_10():
    fp32 = tx.precision_plan("fp32", "10.8.0.43", qdq=False)
    assert (fp32.strongly_typed, fp32.flags, fp32.calibrate) == (False, {}, False)
    assert tx.precision_plan("fp16", "10.8.0.43", qdq=False).flags == {"fp16": True}
    assert tx.precision_plan("bf16", "10.16.1", qdq=False).flags == {"bf16": True}
    calibrated = tx.precision_plan("int8", "10.8.0.43", qdq=False)
    assert calibrated.flags == {"int8": True} and calibrated.calibrate and "deprecated" in calibrated.note
    explicit = tx.precision_plan("int8", "10.8.0.43", qdq=True)
    assert (explicit.strongly_typed, explicit.flags, explicit.calibrate) == (True, {}, False)


def test_plans_on_tensorrt_11():
    fp32 = tx.precision_plan("fp32", "11.4.0", qdq=False)
    assert fp32.strongly_typed and fp32.flags == {} and not fp32.calibrate
    explicit = tx.precision_plan("int8", "11.0.0.1", qdq=True)
    assert explicit.strongly_typed and explicit.flags == {} and not explicit.calibrate
    for low in ("fp16", "bf16"):
        with pytest.raises(tx.TensorRTError, match=f"no {low} flag.*m.onnx.*modelopt.onnx.autocast.*'fp32'"):
            tx.precision_plan(low, "11.4.0", qdq=False, where="m.onnx")
    with pytest.raises(tx.TensorRTError, match="no implicit INT8 calibration.*m.onnx has no Q/DQ.*Symmetric"):
        tx.precision_plan("int8", "11.4.0", qdq=False, where="m.onnx")


@pytest.mark.parametrize("version", ["10.8.0", "11.4.0"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_a_qdq_graph_builds_only_as_int8(version, precision):
    with pytest.raises(tx.TensorRTError, match="q.onnx holds Q/DQ nodes.*'int8'"):
        tx.precision_plan(precision, version, qdq=True, where="q.onnx")


@pytest.mark.parametrize("precision, version, error, message", [
    ("int4", "10.8.0", InputError, "precision must be one of"),
    ("fp16", "8.6.1", tx.TensorRTError, "unsupported; liccs builds with TensorRT 10"),
    ("fp32", "nightly", tx.TensorRTError, "'nightly' is unsupported"),
])
def test_plan_refuses_unknown_precisions_and_old_tensorrt(precision, version, error, message):
    with pytest.raises(error, match=message):
        tx.precision_plan(precision, version, qdq=False)


# --- Q/DQ detection and profiles on real ONNX files ------------------------------------------------


def test_qdq_detection_on_real_graphs(tiny, tmp_path):
    assert not tx.has_qdq(load_onnx(tiny))
    assert tx.has_qdq(load_onnx(qdq_onnx(tiny, tmp_path / "q.onnx")))


def test_profile_from_a_real_onnx(tiny, tmp_path):
    inputs = onnx_inputs(load_onnx(tiny))
    assert inputs == {"x": ("N", 3, "H", "W")}
    assert tx.resolve_profile(inputs, PROFILE) == PROFILE
    lists = {"x": [list(s) for s in PROFILE["x"]]}  # what liccs.engines.tensorrt.trt_profile gives
    assert tx.resolve_profile(inputs, lists) == PROFILE
    static = onnx_inputs(load_onnx(tiny_onnx(tmp_path / "s.onnx", static=True)))
    assert tx.resolve_profile(static, None) == {"x": ((1, 3, 32, 32),) * 3}


@pytest.mark.parametrize("profile, message", [
    ({}, r"input 'x' of m.onnx has dynamic shape \('N', 3, 'H', 'W'\)"),
    ({**PROFILE, "y": PROFILE["x"]}, r"names \['y'\]: no inputs of m.onnx \['x'\]"),
    ({"x": ((1, 3, 64), (1, 3, 64), (1, 3, 64))}, "m.onnx gives it rank 4"),
    ({"x": ((1, 4, 64, 64), (1, 4, 64, 64), (1, 4, 64, 64))}, "dimension 1 of input 'x' is fixed at 3 in m.onnx"),
    ({"x": ((1, 3, 128, 128), (1, 3, 64, 64), (1, 3, 256, 256))}, "min <= opt <= max"),
    ({"x": ((0, 3, 64, 64), (1, 3, 64, 64), (1, 3, 64, 64))}, "1 <= min"),
    ({"x": "1x3x64x64"}, r"must be \(min, opt, max\)"),
])
def test_profile_errors_name_the_input_and_the_file(tiny, profile, message):
    with pytest.raises(InputError, match=message):
        tx.resolve_profile(onnx_inputs(load_onnx(tiny)), profile, where="m.onnx")


# --- the engine cache key ---------------------------------------------------------------------------

KEY = dict(onnx_sha256="ab" * 32, precision="fp16", profile=PROFILE, trt_version="10.8.0.43",
           gpu="NVIDIA H200", compute_capability="9.0")


def test_cache_key_is_stable_and_json():
    assert key_digest(tx.engine_key(**KEY)) == key_digest(tx.engine_key(**dict(reversed(list(KEY.items())))))
    assert tx.engine_key(**KEY)["profile"] == {"x": [[1, 3, 64, 64], [2, 3, 128, 128], [8, 3, 256, 256]]}


@pytest.mark.parametrize("field, value", [
    ("onnx_sha256", "cd" * 32), ("precision", "bf16"),
    ("profile", {"x": ((1, 3, 64, 64), (2, 3, 128, 128), (8, 3, 512, 512))}),
    ("trt_version", "10.9.0.34"), ("gpu", "NVIDIA A100-SXM4-80GB"), ("compute_capability", "8.0"),
])
def test_cache_key_changes_with_each_input(field, value, tmp_path):
    cache = ArtifactCache(tmp_path)
    base = cache.path_for("tensorrt", "m.fp16", tx.engine_key(**KEY), ".engine")
    assert cache.path_for("tensorrt", "m.fp16", tx.engine_key(**{**KEY, field: value}), ".engine") != base


def test_cache_key_changes_with_build_options():
    assert key_digest(tx.engine_key(**KEY, workspace=1 << 30)) != key_digest(tx.engine_key(**KEY, workspace=2 << 30))


# --- missing packages and Polygraphy's failures ----------------------------------------------------


def test_missing_tensorrt_names_the_extra(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    with pytest.raises(EngineUnavailable, match=r"tensorrt.*pip install 'liccs\[tensorrt\]'") as e:
        tx.EngineFromOnnx(tiny, "fp16", PROFILE)()
    assert "polygraphy" in str(e.value) and "NVIDIA GPU" in str(e.value)


def test_missing_polygraphy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # tensorrt there, polygraphy not
    monkeypatch.setitem(sys.modules, "polygraphy.backend.trt", None)
    with pytest.raises(EngineUnavailable, match=r"polygraphy.*pip install 'liccs\[tensorrt\]'"):
        tx.require_tensorrt()


def test_without_polygraphy_liccs_imports_and_says_what_to_install(tmp_path):
    # a `tensorrt` that imports and a `polygraphy` that fails to: importing liccs must touch neither
    for name, body in (("tensorrt", "__version__ = '10.8.0'\n"), ("polygraphy", "raise ImportError('no polygraphy')")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(body)
    code = textwrap.dedent("""
        import sys
        import liccs, liccs.engines, liccs.engines.tensorrt, liccs.export.tensorrt as tx
        assert "polygraphy" not in sys.modules and "tensorrt" not in sys.modules
        try:
            tx.require_tensorrt()
        except Exception as e:
            print(type(e).__name__, e)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PROJECT_ROOT)])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=PROJECT_ROOT, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("EngineUnavailable") and "no polygraphy" in out.stdout
    assert "pip install 'liccs[tensorrt]'" in out.stdout


def test_a_missing_onnx_is_named_before_anything_is_built(tmp_path):
    pytest.importorskip("tensorrt", reason="without tensorrt the build stops earlier (see above)")
    pytest.importorskip("polygraphy", reason="without polygraphy the build stops earlier (see above)")
    with pytest.raises(ArtifactError, match="missing.onnx does not exist"):
        tx.EngineFromOnnx(tmp_path / "missing.onnx", "fp32", cache=ArtifactCache(tmp_path))()


def test_polygraphy_failures_quote_tensorrt_and_name_the_file():
    pytest.importorskip("polygraphy", reason="polygraphy is part of liccs[tensorrt]")
    from polygraphy.logger import G_LOGGER

    before = G_LOGGER.use_python_logging_system
    with pytest.raises(tx.TensorRTError) as e:
        with tx.trt_failure("TensorRT cannot parse /m/model.onnx"):
            G_LOGGER.error("In node 3 (Conv): INVALID_NODE: kernel weights must be constant")
            G_LOGGER.critical("Could not parse ONNX correctly")
    assert str(e.value).startswith("TensorRT cannot parse /m/model.onnx: ")
    assert "kernel weights must be constant" in str(e.value) and str(e.value).endswith("Could not parse ONNX correctly")
    assert str(e.value).count("Could not parse ONNX correctly") == 1
    assert G_LOGGER.use_python_logging_system == before
    with pytest.raises(KeyError):  # anything but Polygraphy's exception passes through unchanged
        with tx.trt_failure("x"):
            raise KeyError("k")


def test_int8_without_qdq_or_feeds_is_refused_before_building(tiny, tmp_path):
    trt = pytest.importorskip("tensorrt", reason="the plan needs the installed TensorRT's version")
    pytest.importorskip("polygraphy", reason="without polygraphy the build stops earlier (see above)")
    message = "no implicit INT8" if int(trt.__version__.split(".")[0]) >= 11 else "calibration feeds or a Q/DQ ONNX"
    with pytest.raises(tx.TensorRTError, match=f"{message}"):
        tx.EngineFromOnnx(tiny, "int8", PROFILE, cache=ArtifactCache(tmp_path))()
