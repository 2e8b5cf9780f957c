"""ONNX → ONNX variants for ONNX Runtime: int8 (static QDQ, calibrated on real inputs) and fp16.

:class:`Int8OnnxFromOnnx` runs onnxruntime's pre-processing (shape inference, graph optimization) and
``quantize_static`` in QDQ format (int8 weights per channel, uint8 activations, MinMax calibration by
default, weights in 7 bits: ``reduce_range``, see below) over calibration feeds the caller computes from real
images (:func:`liccs.export.graphs.stage_feeds`).
:class:`Fp16OnnxFromOnnx` converts weights and compute to float16 and keeps float32 inputs and outputs.
``reduce_range`` (default on): ONNX Runtime's integer kernels for uint8 × int8 on x86 CPUs without VNNI (AVX2, AVX-512)
add pairs of products in 16 bits with saturation, so with 8-bit weights the engine computes another function than
the QDQ graph defines (measured on this 2-core AVX2 EPYC: the mini CIFAR ResNet's int8 logits 0.35 from the graph's
own QDQ semantics, 5% of top-1 predictions changed on random inputs; with 7-bit weights 0.015 and none). 7-bit
weights are what ONNX Runtime's documentation recommends there; they make the deployed graph compute the same
function on every CPU, which parity and the differentiable replica (:mod:`liccs.engines.replica`) rely on. Where the
CPU has VNNI (AVX-VNNI, AVX-512 VNNI) or AMX-INT8 nothing saturates, and ``ort-cpu-int8`` asks for 8-bit weights
(:attr:`liccs.core.isa.Isa.int8_weight_bits`); the choice is in the artifact's key (``reduce_range``) and meta
(``weight_bits``), so a graph built for one kind of CPU is never taken for the other's.
Both are cached like every artifact (key: source file sha256, settings, calibration data, onnxruntime version).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from liccs.export.cache import Artifact, ArtifactCache, file_sha256
from liccs.export.errors import ExportError
from liccs.export.onnx import load_onnx

log = logging.getLogger(__name__)

Feed = Mapping[str, np.ndarray]
COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
OnnxSource = Path | str | Callable[[], Artifact]


def resolve_onnx(source: OnnxSource) -> tuple[Path, str]:
    """(path, label) of an ONNX source: a file, or a build step returning an :class:`Artifact`."""
    if callable(source):
        art = source()
        return art.path, art.key.get("graph", art.path.stem)
    path = Path(source)
    load_onnx(path, check=False)  # clear error on a missing/corrupt file
    return path, path.stem


def compute_nodes(path: Path | str) -> list[str]:
    """Names of the compute nodes (:data:`COMPUTE_OPS`) of an ONNX graph in graph order: what ``keep_fp32``
    indexes (quantization keeps these nodes and their order)."""
    return [n.name for n in load_onnx(Path(path), check=False).graph.node if n.op_type in COMPUTE_OPS]


def value_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Every tensor's shape in a shape-inferred ONNX model (inputs, intermediates, outputs, initializers); an
    unknown dimension is 0."""
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*model.graph.input, *model.graph.value_info, *model.graph.output]}
    return shapes | {t.name: list(t.dims) for t in model.graph.initializer}


def compute_macs(path: Path | str, input_shapes: Mapping[str, Sequence[int]]) -> list[int]:
    """Multiply-adds of each compute node of an ONNX graph (fp32 or QDQ) at ``input_shapes``, in graph order
    (ONNX shape inference with the inputs made static)."""
    model = load_onnx(Path(path), check=False)
    for inp in model.graph.input:
        if inp.name in input_shapes:
            dims = inp.type.tensor_type.shape.dim
            for d, v in zip(dims, input_shapes[inp.name]):
                d.ClearField("dim_param")
                d.dim_value = int(v)
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = value_shapes(model)
    macs = []
    for n in model.graph.node:
        if n.op_type not in COMPUTE_OPS:
            continue
        w = shapes.get(n.input[1])
        edge = shapes.get(n.output[0] if n.op_type != "ConvTranspose" else n.input[0])
        if not w or not edge or 0 in w or 0 in edge:
            raise ExportError(f"{path}: no static shape for compute node {n.name!r} at inputs {dict(input_shapes)}")
        per = int(np.prod(w[1:])) if n.op_type in ("Conv", "ConvTranspose") else int(w[0])
        macs.append(int(np.prod(edge)) * per)  # Conv: out × (C_in/g·k·k); ConvTranspose: in × (C_out/g·k·k)
    return macs


def feeds_digest(feeds: Sequence[Feed]) -> str:
    """sha256 over the calibration feeds (names, dtypes, shapes and bytes): part of an int8 artifact's key."""
    h = hashlib.sha256()
    for feed in feeds:
        for k in sorted(feed):
            a = np.ascontiguousarray(feed[k])
            h.update(f"{k}|{a.dtype}|{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: Sequence[Feed]) -> None:
        self._it = iter([{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in f.items()} for f in feeds])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # onnxruntime calls it with some calibrators
        pass


class Int8OnnxFromOnnx:
    """Build step: fp32 ONNX → static QDQ int8 ONNX, calibrated on ``feeds`` (real-image inputs).

    Args:
        source: an ONNX path or a step returning one (e.g. :class:`~liccs.export.onnx.OnnxFromTorch`).
        feeds: calibration inputs, one dict per batch (name → float32 array).
        cache: the artifact cache.
        per_channel: per-output-channel weight scales (recommended for convolutions).
        method: ``minmax``, ``entropy`` or ``percentile`` (onnxruntime's calibration methods).
        reduce_range: 7-bit weights (see the module docstring); False for 8 bits on CPUs with VNNI.
        keep_fp32: compute nodes (Conv, ConvTranspose, Gemm, MatMul, in graph order) that stay in fp32: an int k
            keeps the first k (where a codec's synthesis takes the latents, 8-bit activations lose the most), a
            tuple keeps those indices (negative ones count from the last, e.g. ``(-1,)`` for an analysis's output
            layer).

    Only the compute nodes are quantized (``op_types_to_quantize``): they are where int8 pays; quantizing the
    element-wise ops between them too (onnxruntime's default) adds rounding without speed, and puts 8-bit
    activations where a kept fp32 layer would otherwise run on fp32 inputs (measured on the mini q8 codec with
    every compute node kept: 65% of its rate in RD cost from the element-wise ops of its GDNs alone).
    """

    def __init__(self, source: OnnxSource, feeds: Sequence[Feed], cache: ArtifactCache | None = None, *,
                 per_channel: bool = True, method: str = "minmax", reduce_range: bool = True,
                 keep_fp32: int | tuple[int, ...] = 0) -> None:
        if not feeds:
            raise ExportError("int8 calibration needs at least one feed of real inputs")
        if not isinstance(keep_fp32, int):
            keep_fp32 = tuple(sorted(set(int(i) for i in keep_fp32)))
        self.source, self.feeds, self.cache = source, list(feeds), cache or ArtifactCache()
        self.per_channel, self.method, self.reduce_range = per_channel, method, reduce_range
        self.keep_fp32 = keep_fp32

    def __call__(self) -> Artifact:
        """The QDQ int8 ONNX from the cache, calibrated and quantized by onnxruntime when missing."""
        path, label = resolve_onnx(self.source)
        key = {"kind": "ort-int8", "onnx_sha256": file_sha256(path), "per_channel": self.per_channel,
               "method": self.method, "format": "QDQ", "reduce_range": self.reduce_range, "activations": "QUInt8",
               **({"keep_fp32": list(self.keep_fp32) if isinstance(self.keep_fp32, tuple) else self.keep_fp32}
                  if self.keep_fp32 else {}),
               "weights": "QInt8", "op_types": list(COMPUTE_OPS),
               "calibration": feeds_digest(self.feeds), "onnxruntime": md.version("onnxruntime"), "device": "cpu"}
        return self.cache.get_or_build("ort-int8", label + ".int8", key, ".onnx",
                                       lambda tmp: self._build(path, tmp))

    def _build(self, src: Path, dst: Path) -> dict[str, Any]:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                   "percentile": CalibrationMethod.Percentile}
        if self.method not in methods:
            raise ExportError(f"int8 calibration method {self.method!r} is not one of {sorted(methods)}")
        with tempfile.TemporaryDirectory() as d:
            pre = Path(d) / "pre.onnx"
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            compute = compute_nodes(pre)
            keep = self.keep_fp32
            if isinstance(keep, tuple):
                bad = [i for i in keep if not -len(compute) <= i < len(compute)]
                if bad:
                    raise ExportError(f"{src}: keep_fp32 indices {bad} out of range: the graph has {len(compute)} "
                                      f"compute nodes")
                excluded = [compute[i] for i in keep]
            else:
                excluded = compute[:keep]
            quantize_static(str(pre), str(dst), _Reader(self.feeds), quant_format=QuantFormat.QDQ,
                            nodes_to_exclude=excluded, op_types_to_quantize=list(COMPUTE_OPS),
                            per_channel=self.per_channel, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=methods[self.method],
                            reduce_range=self.reduce_range)
        load_onnx(dst)
        return {"source": str(src), "calibration_batches": len(self.feeds), "method": self.method,
                "per_channel": self.per_channel, "reduce_range": self.reduce_range,
                "weight_bits": 7 if self.reduce_range else 8,
                "keep_fp32": list(self.keep_fp32) if isinstance(self.keep_fp32, tuple) else self.keep_fp32}


class Fp16OnnxFromOnnx:
    """Build step: fp32 ONNX → float16 weights and compute, float32 inputs/outputs (for ``ort-cuda-fp16``)."""

    def __init__(self, source: OnnxSource, cache: ArtifactCache | None = None) -> None:
        self.source, self.cache = source, cache or ArtifactCache()

    def __call__(self) -> Artifact:
        """The float16 ONNX from the cache, converted when missing."""
        path, label = resolve_onnx(self.source)
        key = {"kind": "ort-fp16", "onnx_sha256": file_sha256(path), "keep_io_types": True,
               "onnxruntime": md.version("onnxruntime")}
        return self.cache.get_or_build("ort-fp16", label + ".fp16", key, ".onnx", lambda tmp: self._build(path, tmp))

    @staticmethod
    def _build(src: Path, dst: Path) -> dict[str, Any]:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
        from onnxruntime.transformers.onnx_model import OnnxModel

        model = OnnxModel(convert_float_to_float16(load_onnx(src), keep_io_types=True))
        model.topological_sort()  # the converter appends its input casts after their consumers
        onnx.save(model.model, str(dst))
        load_onnx(dst)
        return {"source": str(src)}
