"""The trt-* engines and TrtRunner (liccs.engines.tensorrt).

Without TensorRT: registration, why the engines are unavailable, what ``make_runner`` builds or loads, and the
runner's errors. With tensorrt, polygraphy and a GPU (marked ``tensorrt`` and ``gpu``, skipped otherwise): real
engines built from real ONNX files, compared with onnxruntime, cached, rebuilt and refused when corrupt.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import liccs.engines.tensorrt as te
import liccs.export.tensorrt as tx
from liccs.core.errors import InputError
from liccs.engines.base import ENGINES, EngineUnavailable, available_engines, get_engine
from liccs.export.cache import Artifact, ArtifactCache
from tests.export.test_tensorrt_export import PROFILE, qdq_onnx, tiny_onnx

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
HAVE_TRT = all(importlib.util.find_spec(m) is not None for m in ("tensorrt", "polygraphy"))
real = pytest.mark.skipif(not (HAVE_TRT and torch.cuda.is_available()),
                          reason="needs tensorrt and polygraphy (pip install 'liccs[tensorrt]') and a CUDA GPU")


@pytest.fixture()
def tiny(tmp_path) -> Path:
    return tiny_onnx(tmp_path / "tiny.onnx")


def _major() -> int:
    import tensorrt as trt

    return int(trt.__version__.split(".")[0])


def _reference(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


# --- registry, availability, what make_runner does ----------------------------------------------------


@pytest.mark.parametrize("precision", PRECISIONS)
def test_trt_engines_are_registered(precision):
    spec = ENGINES.get(f"trt-{precision}")
    assert (spec.backend, spec.precision, spec.device) == ("tensorrt", precision, "cuda")
    assert spec.requires == ("tensorrt", "polygraphy") and spec.needs_cuda
    assert "pip install 'liccs[tensorrt]'" in spec.install_hint


@pytest.mark.skipif(HAVE_TRT and torch.cuda.is_available(), reason="TensorRT and a GPU are here: engines available")
@pytest.mark.parametrize("precision", PRECISIONS)
def test_trt_engines_report_why_they_are_unavailable(precision):
    name = f"trt-{precision}"
    reason = ENGINES.get(name).unavailable_reason()
    assert reason and name in reason and ("liccs[tensorrt]" in reason or "CUDA GPU" in reason)
    with pytest.raises(EngineUnavailable, match=name):
        get_engine(name)
    assert name not in available_engines()


def test_make_runner_builds_onnx_and_loads_engines(tiny, tmp_path):
    cache = ArtifactCache(tmp_path)
    runner = ENGINES.get("trt-fp16").make_runner(tiny, profile=PROFILE, cache=cache, workspace_bytes=1 << 28)
    step = runner.engine_source
    assert isinstance(runner, te.TrtRunner) and runner.name == "trt-fp16"
    assert isinstance(step, tx.EngineFromOnnx) and (step.onnx, step.precision, step.profile) == (tiny, "fp16", PROFILE)
    assert step.cache is cache and step.workspace_bytes == 1 << 28

    def onnx_step() -> Artifact:  # what OnnxFromTorch returns
        return Artifact(tiny, {})

    built = ENGINES.get("trt-int8").make_runner(onnx_step, name="trt-int8:g", profile=PROFILE).engine_source
    assert isinstance(built, tx.EngineFromOnnx) and built.onnx is onnx_step and built.precision == "int8"
    engine = tmp_path / "m.engine"
    assert ENGINES.get("trt-fp32").make_runner(engine).engine_source == engine
    assert ENGINES.get("trt-fp32").make_runner(step).engine_source is step  # a build step is not built twice
    with pytest.raises(InputError, match="apply to an ONNX file"):
        ENGINES.get("trt-fp32").make_runner(engine, profile=PROFILE)
    with pytest.raises(TypeError, match="threads"):
        ENGINES.get("trt-fp32").make_runner(tiny, threads=2)


def test_runner_without_tensorrt_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(EngineUnavailable, match=r"tensorrt.*pip install 'liccs\[tensorrt\]'"):
        te.TrtRunner(b"plan").activate()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_runner_without_a_gpu_says_so(monkeypatch):
    pytest.importorskip("polygraphy", reason="without polygraphy the runner stops earlier (see above)")
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # importable: the GPU check is next
    runner = te.TrtRunner(b"plan", name="trt-fp32:g")
    with pytest.raises(EngineUnavailable, match="trt-fp32:g: TensorRT needs a CUDA GPU"):
        runner.activate()
    assert not runner.is_active


# --- real TensorRT -------------------------------------------------------------------------------------


@pytest.mark.tensorrt
@pytest.mark.gpu
@real
@pytest.mark.parametrize("precision, atol", [("fp32", 1e-4), ("fp16", 2e-2), ("bf16", 1e-1)])
def test_real_engine_matches_onnxruntime(precision, atol, tiny, tmp_path):
    if precision != "fp32" and _major() >= 11:
        pytest.skip("TensorRT 11 has no fp16/bf16 flags (the plan refuses them, tested in tests/export)")
    if precision == "bf16" and torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("bf16 needs compute capability 8.0 or newer")
    rng = np.random.default_rng(0)
    make = ENGINES.get(f"trt-{precision}").make_runner
    with make(tiny, profile=PROFILE, cache=ArtifactCache(tmp_path), workspace_bytes=1 << 28) as runner:
        meta = runner.input_metadata()["x"]
        assert (meta.dtype, meta.shape) == ("float32", (None, 3, None, None))
        assert (meta.min_shape, meta.max_shape) == (PROFILE["x"][0], PROFILE["x"][2])
        for shape in [(1, 3, 64, 64), (3, 3, 128, 192)]:
            x = rng.random(shape, dtype=np.float32)
            got = runner.infer({"x": x})["y"]
            assert isinstance(got, np.ndarray) and got.shape == (shape[0], 4, *shape[2:])
            np.testing.assert_allclose(got, _reference(tiny, x), atol=atol, rtol=atol)
        a = torch.rand(2, 3, 64, 64, device="cuda")
        out_a = runner.infer({"x": a})["y"]
        kept = out_a.clone()
        runner.infer({"x": torch.rand(2, 3, 64, 64, device="cuda")})  # must not overwrite the first output
        assert out_a.is_cuda and out_a.shape == (2, 4, 64, 64) and torch.equal(out_a, kept)
        np.testing.assert_allclose(out_a.cpu().numpy(), _reference(tiny, a.cpu().numpy()), atol=atol, rtol=atol)
        host = runner.infer({"x": torch.rand(1, 3, 64, 64)})["y"]  # a CPU tensor: a CUDA tensor back
        assert isinstance(host, torch.Tensor) and host.is_cuda
        with pytest.raises(InputError, match=r"input 'x' shape \(1, 3, 512, 512\) is outside the engine's profile"):
            runner.infer({"x": np.zeros((1, 3, 512, 512), np.float32)})
        assert runner.inference_time is not None and runner.inference_time > 0


@pytest.mark.tensorrt
@pytest.mark.gpu
@real
def test_real_cache_hit_rebuild_and_corrupt_files(tmp_path):
    model, cache = tiny_onnx(tmp_path / "m.onnx"), ArtifactCache(tmp_path / "c")
    first = tx.EngineFromOnnx(model, "fp32", PROFILE, cache=cache)()
    assert not first.cached and first.path.stat().st_size > 0
    assert list((tmp_path / "c" / "tensorrt").glob("timing-*.cache"))  # Polygraphy saved the timing cache
    again = tx.EngineFromOnnx(model, "fp32", PROFILE, cache=cache)()
    assert again.cached and again.path == first.path
    tiny_onnx(model, seed=1)  # other weights: another engine
    changed = tx.EngineFromOnnx(model, "fp32", PROFILE, cache=cache)()
    assert not changed.cached and changed.path != first.path
    data = first.path.read_bytes()
    first.path.write_bytes(data[:100])  # behind the sidecar's back: the cache rebuilds it
    tiny_onnx(model, seed=0)
    rebuilt = tx.EngineFromOnnx(model, "fp32", PROFILE, cache=cache)()
    assert not rebuilt.cached and rebuilt.path == first.path and rebuilt.path.stat().st_size > 100
    truncated = tmp_path / "t.engine"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(tx.TensorRTError, match=f"cannot load engine {truncated}"):
        te.TrtRunner(truncated).activate()
    with pytest.raises(tx.TensorRTError, match="cannot load engine <engine bytes>"):
        te.TrtRunner(b"not an engine").activate()


@pytest.mark.tensorrt
@pytest.mark.gpu
@real
def test_real_parse_failure_names_the_onnx(tmp_path):
    bad = tiny_onnx(tmp_path / "custom.onnx", op="NoSuchOp", domain="liccs.test")
    with pytest.raises(tx.TensorRTError, match=f"TensorRT cannot parse {bad}: .*NoSuchOp"):
        tx.EngineFromOnnx(bad, "fp32", PROFILE, cache=ArtifactCache(tmp_path))()


@pytest.mark.tensorrt
@pytest.mark.gpu
@real
def test_real_int8_from_symmetric_qdq(tiny, tmp_path):
    qdq = qdq_onnx(tiny, tmp_path / "q.onnx")
    x = np.random.default_rng(1).random((2, 3, 128, 128), dtype=np.float32)
    with ENGINES.get("trt-int8").make_runner(qdq, profile=PROFILE, cache=ArtifactCache(tmp_path)) as runner:
        got = runner.infer({"x": x})["y"]
    assert np.abs(got - _reference(qdq, x)).max() < 0.05  # the same Q/DQ scales; rounding may differ by a step


@pytest.mark.tensorrt
@pytest.mark.gpu
@real
def test_real_int8_calibration_on_tensorrt_10(tiny, tmp_path, kodak_crop):
    if _major() >= 11:
        pytest.skip("TensorRT 11 removed implicit INT8 calibration")
    feeds = [{"x": kodak_crop.numpy()}, {"x": kodak_crop.flip(-1).numpy()}]  # real pixels, [1, 3, 75, 117]
    step = tx.EngineFromOnnx(tiny, "int8", PROFILE, calibration=feeds, cache=ArtifactCache(tmp_path))
    x = np.ascontiguousarray(kodak_crop[..., :64, :64].numpy())
    with te.TrtRunner(step, name="trt-int8") as runner:
        got = runner.infer({"x": x})["y"]
    assert np.abs(got - _reference(tiny, x)).max() < 0.1
