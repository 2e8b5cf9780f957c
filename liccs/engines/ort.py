"""ONNX Runtime engines: ``ort-cpu``, ``ort-cpu-int8`` (static QDQ), ``ort-cuda``, ``ort-cuda-fp16``,
``ort-trt-fp16`` (TensorRT execution provider).

``make_runner(artifact, ...)`` takes an ONNX file, a build step returning one (:class:`OnnxFromTorch`,
:class:`Int8OnnxFromOnnx`), or a GraphSpec (exported on activation). ``ort-cpu-int8`` quantizes an fp32 graph
with the ``calibration`` feeds given (real-image inputs) unless the file already holds Q/DQ nodes, in 8-bit
weights where the CPU has VNNI or AMX-INT8 and 7-bit ones elsewhere (:func:`int8_weight_bits`);
``ort-cuda-fp16`` converts an fp32 graph to fp16 weights and compute (float32 I/O).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from liccs.core import isa
from liccs.core.errors import InputError
from liccs.core.paths import cache_dir
from liccs.engines.arrays import like_feed, to_numpy
from liccs.engines.base import ENGINES, Array, EngineSpec, Runner, TensorMeta
from liccs.export.cache import ArtifactCache
from liccs.export.errors import ArtifactError
from liccs.export.onnx import OnnxFromTorch, load_onnx
from liccs.export.quantize import Fp16OnnxFromOnnx, Int8OnnxFromOnnx

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
              "tensor(bool)": "bool"}
GPU_HINT = "pip uninstall onnxruntime && pip install 'liccs[gpu]' (onnxruntime-gpu, on a machine with an NVIDIA GPU)"


def _ort_errors() -> tuple[type[BaseException], ...]:
    from onnxruntime.capi import onnxruntime_pybind11_state as s

    return tuple(getattr(s, n) for n in ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError",
                                          "RuntimeException", "InvalidProtobuf", "ModelLoaded", "NotImplemented",
                                          "InvalidGraph", "EPFail") if hasattr(s, n))


class OrtRunner(Runner):
    """An ONNX file in an ONNX Runtime ``InferenceSession`` with the given execution providers.

    Args:
        model: ONNX path, or a zero-argument build step returning an Artifact (or a path).
        providers: execution providers in priority order (names or (name, options) pairs).
        value_ranges: input name → (lo, hi) that feeds must respect (e.g. images: (0, 1)).
        threads: intra-op threads (0: ONNX Runtime's default).
        spinning: whether idle intra-op threads busy-wait for work (ONNX Runtime's default). Between calls
            they spin for tens of ms of CPU after ``run`` returns, which takes a core from whatever CPU work
            (torch, other sessions) the caller does next; ``False`` parks them instead.
    """

    def __init__(self, model: Any, providers: Sequence[Any] = ("CPUExecutionProvider",), name: str = "ort-cpu",
                 value_ranges: Mapping[str, tuple[float, float]] | None = None, threads: int = 0,
                 spinning: bool = True) -> None:
        super().__init__(name)
        self._source, self.providers = model, list(providers)
        self.value_ranges, self.threads, self.spinning = dict(value_ranges or {}), threads, spinning
        self.path: Path | None = None
        self.artifact: Any = None
        self._session: Any = None

    def _resolve(self) -> Path:
        src = self._source
        if callable(src):
            src = src()
        self.artifact = src if hasattr(src, "meta") else None  # what built the file (exporter, ...), when known
        return Path(getattr(src, "path", src))

    def activate_impl(self) -> None:
        """Open an ONNX Runtime session on the file with the providers and threads (spinning off unless asked)."""
        import onnxruntime as ort

        self.path = self._resolve()
        if not self.path.is_file():
            raise ArtifactError(f"{self.name}: ONNX file {self.path} does not exist")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.log_severity_level = 3
        if not self.spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(self.path), opts, providers=self.providers)
        except _ort_errors() as e:
            raise ArtifactError(f"{self.name}: ONNX Runtime cannot load {self.path} (truncated, corrupt or "
                                f"unsupported): {str(e).splitlines()[0]}") from None
        self.active_providers = self._session.get_providers()

    def get_input_metadata_impl(self) -> Mapping[str, TensorMeta]:
        """The session's inputs (dtype, static dimensions), with the value ranges given."""
        out = {}
        for i in self._session.get_inputs():
            dtype = _ORT_TYPES.get(i.type)
            if dtype is None:
                raise ArtifactError(f"{self.name}: input {i.name!r} of {self.path} has unsupported type {i.type}")
            shape = tuple(d if isinstance(d, int) and d > 0 else None for d in i.shape)
            out[i.name] = TensorMeta(dtype, shape, value_range=self.value_ranges.get(i.name))
        return out

    def infer_impl(self, feed: dict[str, Array]) -> dict[str, Array]:
        """Run the session on the feed as numpy arrays; outputs in the kind of the feed."""
        arrays = {k: np.ascontiguousarray(to_numpy(v)) for k, v in feed.items()}
        try:
            outs = self._session.run(None, arrays)
        except _ort_errors() as e:
            raise InputError(f"{self.name}: ONNX Runtime failed on {self.path} with inputs "
                             f"{ {k: (a.dtype.name, a.shape) for k, a in arrays.items()} }: "
                             f"{str(e).splitlines()[0]}") from None
        names = [o.name for o in self._session.get_outputs()]
        return like_feed(dict(zip(names, outs)), feed)

    def deactivate_impl(self) -> None:
        """Drop the session."""
        self._session = None


def has_qdq(path: Path) -> bool:
    """True when an ONNX file already holds QuantizeLinear/DequantizeLinear nodes."""
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in load_onnx(path, check=False).graph.node)


def onnx_source(artifact: Any, cache: ArtifactCache | None, exporter: str) -> Any:
    """A GraphSpec becomes its OnnxFromTorch step; paths and steps pass through."""
    if hasattr(artifact, "module") and hasattr(artifact, "inputs"):
        return OnnxFromTorch(artifact, cache, exporter)
    return artifact


def value_ranges_of(artifact: Any, value_ranges: Mapping[str, tuple[float, float]] | None) -> dict[str, Any]:
    """The input value ranges a runner checks: ``value_ranges`` if given, else the GraphSpec's own."""
    if value_ranges is not None:
        return dict(value_ranges)
    return {t.name: t.value_range for t in getattr(artifact, "inputs", ()) if t.value_range}


def _factory(name: str, providers: Sequence[Any], variant: str | None = None):
    def make_runner(artifact: Any, *, cache: ArtifactCache | None = None, exporter: str = "auto",
                    calibration: Sequence[Mapping[str, np.ndarray]] | None = None,
                    value_ranges: Mapping[str, tuple[float, float]] | None = None, threads: int = 0,
                    spinning: bool = True, keep_fp32: int | tuple[int, ...] = 0, **_: Any) -> OrtRunner:
        source = onnx_source(artifact, cache, exporter)
        if variant == "int8":
            source = _int8_source(name, source, calibration, cache, keep_fp32)
        elif variant == "fp16":
            source = Fp16OnnxFromOnnx(source, cache)
        return OrtRunner(source, providers, name, value_ranges_of(artifact, value_ranges), threads, spinning)

    return make_runner


def int8_weight_bits() -> int:
    """The weight bits ``ort-cpu-int8`` quantizes to on this CPU: 8 with VNNI/AMX-INT8, else 7 (``reduce_range``:
    without VNNI ONNX Runtime's uint8 × int8 kernels saturate 16-bit sums; :mod:`liccs.export.quantize`)."""
    return isa.this_cpu().int8_weight_bits


def _int8_source(name: str, source: Any, calibration: Any, cache: ArtifactCache | None,
                 keep_fp32: int | tuple[int, ...] = 0) -> Any:
    if not callable(source) and has_qdq(Path(source)):
        return source
    if not calibration:
        raise InputError(f"{name} quantizes an fp32 graph with calibration feeds from real images: pass "
                         f"calibration=[{{input: array}}, ...] (or an ONNX file that already has Q/DQ nodes)")
    return Int8OnnxFromOnnx(source, calibration, cache, keep_fp32=keep_fp32, reduce_range=int8_weight_bits() == 7)


def _trt_ep_options() -> dict[str, Any]:
    d = cache_dir() / "ort-trt-ep"
    return {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(d),
            "trt_timing_cache_enable": True, "trt_timing_cache_path": str(d)}


_CPU = ("CPUExecutionProvider",)
#: what ``ort-cpu-int8``'s spec records of its weights (the artifact key's ``reduce_range`` says which were built)
INT8_WEIGHTS = "8-bit where the CPU has VNNI (AVX-VNNI, AVX-512 VNNI) or AMX-INT8, else 7-bit (reduce_range)"
_CUDA = ("CUDAExecutionProvider", "CPUExecutionProvider")
for _name, _prec, _dev, _prov, _variant, _needs in (
    ("ort-cpu", "fp32", "cpu", _CPU, None, ()),
    ("ort-cpu-int8", "int8", "cpu", _CPU, "int8", ()),
    ("ort-cuda", "fp32", "cuda", _CUDA, None, ("CUDAExecutionProvider",)),
    ("ort-cuda-fp16", "fp16", "cuda", _CUDA, "fp16", ("CUDAExecutionProvider",)),
):
    ENGINES.register(_name, EngineSpec(_name, "onnxruntime", _prec, _dev, _factory(_name, _prov, _variant),
                                       requires=("onnxruntime",), needs_cuda=_dev == "cuda", providers=_needs,
                                       install_hint=GPU_HINT if _dev == "cuda" else "pip install onnxruntime",
                                       extra={"artifact": "onnx"}
                                       | ({"int8_weights": INT8_WEIGHTS} if _prec == "int8" else {}), replica=True,
                                       fp32_twin="ort-cpu" if _prec == "int8" else ""))


def _trt_factory():
    base = _factory("ort-trt-fp16", ())

    def make_runner(artifact: Any, **kw: Any) -> OrtRunner:
        runner = base(artifact, **kw)
        runner.providers = [("TensorrtExecutionProvider", _trt_ep_options()), *_CUDA]
        return runner

    return make_runner


ENGINES.register("ort-trt-fp16", EngineSpec(
    "ort-trt-fp16", "onnxruntime", "fp16", "cuda", _trt_factory(), requires=("onnxruntime", "tensorrt"),
    needs_cuda=True, providers=("TensorrtExecutionProvider", "CUDAExecutionProvider"),
    install_hint=GPU_HINT + " and TensorRT (pip install 'liccs[tensorrt]')", extra={"artifact": "onnx"},
    replica=True))
