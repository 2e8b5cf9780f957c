"""OpenVINO engines: ``ov-cpu`` (fp32), ``ov-cpu-bf16`` (bf16 compute) and ``ov-cpu-int8`` (NNCF post-training
quantization).

``make_runner(artifact, ...)`` takes what the ONNX Runtime engines take (an ONNX file, a build step returning
one, or a GraphSpec exported on activation); OpenVINO reads the ONNX file itself. ``ov-cpu`` compiles with
``INFERENCE_PRECISION_HINT`` f32 (the CPU plugin otherwise picks bf16/f16 where the CPU has them); ``ov-cpu-bf16``
with bf16, and only where the CPU has AVX-512 BF16 or AMX-BF16 (elsewhere it is skipped, saying so: emulated bf16
is slower than fp32; :mod:`liccs.core.isa`).
``ov-cpu-int8`` quantizes the model's compute nodes (convolutions, transposed convolutions, matmuls) with NNCF on
the ``calibration`` feeds given (real-image inputs) and caches the quantized IR (``.xml`` with its ``.bin`` beside
it; key: source sha256, calibration, fp32 layers, openvino and nncf versions); the rest runs in f32, as do the
compute nodes ``keep_fp32`` names (what a deployed codec's int8 fit chooses, :mod:`liccs.engines.int8_fit`).
``openvino`` and ``nncf`` are imported on activation only.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from liccs.core.errors import InputError
from liccs.engines.arrays import like_feed, to_numpy
from liccs.engines.base import ENGINES, Array, EngineSpec, Runner, TensorMeta
from liccs.engines.ort import onnx_source, value_ranges_of
from liccs.export.cache import Artifact, ArtifactCache, file_sha256
from liccs.export.errors import ArtifactError, ExportError
from liccs.export.onnx import load_onnx
from liccs.export.quantize import COMPUTE_OPS, Feed, OnnxSource, feeds_digest, resolve_onnx

INSTALL_HINT = "pip install 'liccs[openvino]'"
#: OpenVINO's op types for the ONNX compute nodes (:data:`~liccs.export.quantize.COMPUTE_OPS`)
OV_COMPUTE_OPS = ("Convolution", "ConvolutionBackpropData", "GroupConvolution", "GroupConvolutionBackpropData",
                  "MatMul")


class OvRunner(Runner):
    """An ONNX file (or OpenVINO IR ``.xml``) compiled by OpenVINO for the CPU.

    Args:
        model: ONNX/IR path, or a zero-argument build step returning an Artifact (or a path).
        name: the runner's name (in errors).
        value_ranges: input name → (lo, hi) that feeds must respect (e.g. images: (0, 1)).
        threads: ``INFERENCE_NUM_THREADS`` (0: OpenVINO's default).
        precision: ``INFERENCE_PRECISION_HINT`` ("f32", "bf16"; None: the plugin's choice).
    """

    def __init__(self, model: Any, name: str = "ov-cpu", value_ranges: Mapping[str, tuple[float, float]] | None = None,
                 threads: int = 0, precision: str | None = "f32") -> None:
        super().__init__(name)
        self._source, self.value_ranges = model, dict(value_ranges or {})
        self.threads, self.precision = threads, precision
        self.path: Path | None = None
        self.artifact: Any = None
        self._compiled: Any = None
        self._request: Any = None

    def _resolve(self) -> Path:
        src = self._source() if callable(self._source) else self._source
        self.artifact = src if hasattr(src, "meta") else None
        return Path(getattr(src, "path", src))

    def activate_impl(self) -> None:
        """Read the model (ONNX or IR) and compile it for the CPU with the latency hint, threads and precision hint."""
        import openvino as ov

        self.path = path = self._resolve()
        if not path.is_file():
            raise ArtifactError(f"{self.name}: model file {path} does not exist")
        if path.suffix != ".xml":
            try:  # a clear error on a truncated/corrupt ONNX file (before OpenVINO tries each of its frontends)
                load_onnx(path, check=False)
            except ArtifactError as e:
                raise ArtifactError(f"{self.name}: {e}") from None
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if self.threads > 0:
            config["INFERENCE_NUM_THREADS"] = self.threads
        if self.precision:
            config["INFERENCE_PRECISION_HINT"] = self.precision
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except RuntimeError as e:
            raise ArtifactError(f"{self.name}: OpenVINO cannot read {path} (truncated, corrupt or unsupported): "
                                f"{_message(e)}") from None
        try:
            self._compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as e:
            raise ArtifactError(f"{self.name}: OpenVINO cannot compile {path} for the CPU: {_message(e)}") from None
        self._request = self._compiled.create_infer_request()

    def get_input_metadata_impl(self) -> Mapping[str, TensorMeta]:
        """The compiled model's inputs (dtype, static dimensions), with the value ranges given."""
        out = {}
        for port in self._compiled.inputs:
            name = port.get_any_name()
            try:
                dtype = np.dtype(port.get_element_type().to_dtype()).name
            except (RuntimeError, TypeError) as e:
                raise ArtifactError(f"{self.name}: input {name!r} of {self.path} has unsupported type "
                                    f"{port.get_element_type()}") from e
            shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
            out[name] = TensorMeta(dtype, shape, value_range=self.value_ranges.get(name))
        return out

    def infer_impl(self, feed: dict[str, Array]) -> dict[str, Array]:
        """One inference request on the feed as numpy arrays; outputs in the kind of the feed."""
        arrays = {k: np.ascontiguousarray(to_numpy(v)) for k, v in feed.items()}
        try:
            res = self._request.infer(arrays)
        except (RuntimeError, TypeError, ValueError) as e:
            raise InputError(f"{self.name}: OpenVINO failed on {self.path} with inputs "
                             f"{ {k: (a.dtype.name, a.shape) for k, a in arrays.items()} }: {_message(e)}") from None
        return like_feed({o.get_any_name(): np.array(res[o]) for o in self._compiled.outputs}, feed)

    def deactivate_impl(self) -> None:
        """Drop the compiled model and its request."""
        self._request = self._compiled = None


def _message(e: BaseException) -> str:
    """The last line of an OpenVINO error (the earlier ones name its C++ source files)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Exception from src/")]
    return lines[-1] if lines else type(e).__name__


class Int8IrFromOnnx:
    """Build step: fp32 ONNX → OpenVINO IR quantized by NNCF on ``feeds`` (real-image inputs), cached.

    The artifact is the ``.xml``; its weights lie beside it in ``.bin`` (sha256 in the sidecar's meta, checked
    on every hit: a changed ``.bin`` rebuilds). Only compute nodes are quantized (as ``ort-cpu-int8`` does, see
    :class:`~liccs.export.quantize.Int8OnnxFromOnnx`); ``keep_fp32`` lists compute nodes (indices into the ONNX
    graph's :func:`~liccs.export.quantize.compute_nodes`, negative from the last) that stay f32 too.
    """

    def __init__(self, source: OnnxSource, feeds: Sequence[Feed], cache: ArtifactCache | None = None, *,
                 preset: str = "mixed", subset_size: int | None = None, keep_fp32: Sequence[int] = ()) -> None:
        if not feeds:
            raise ExportError("int8 calibration needs at least one feed of real inputs")
        self.source, self.feeds, self.cache = source, list(feeds), cache or ArtifactCache()
        self.preset, self.subset_size = preset, subset_size or len(self.feeds)
        self.keep_fp32 = tuple(sorted({int(i) for i in keep_fp32}))

    def __call__(self) -> Artifact:
        """The quantized IR from the cache, built when missing or when its ``.bin`` no longer matches the sidecar."""
        path, label = resolve_onnx(self.source)
        key = {"kind": "ov-int8", "onnx_sha256": file_sha256(path), "preset": self.preset,
               "subset_size": self.subset_size, "calibration": feeds_digest(self.feeds), "op_types": list(COMPUTE_OPS),
               **({"keep_fp32": list(self.keep_fp32)} if self.keep_fp32 else {}),
               "openvino": md.version("openvino"), "nncf": md.version("nncf"), "device": "cpu"}
        args = ("ov-int8", label + ".int8", key, ".xml")
        weights = self.cache.path_for(*args).with_suffix(".bin")
        art = self.cache.get_or_build(*args, lambda tmp: self._build(path, tmp, weights))
        if art.cached and (not weights.is_file() or file_sha256(weights) != art.meta.get("bin_sha256")):
            self.cache.sidecar(art.path).unlink(missing_ok=True)  # a stale .bin: build the entry again
            art = self.cache.get_or_build(*args, lambda tmp: self._build(path, tmp, weights))
        return art

    def _build(self, src: Path, dst: Path, weights: Path) -> dict[str, Any]:
        import nncf
        import openvino as ov

        presets = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
        if self.preset not in presets:
            raise ExportError(f"NNCF preset {self.preset!r} is not one of {sorted(presets)}")
        model = ov.Core().read_model(str(src))
        compute = ov_compute_ops(model, src) if self.keep_fp32 else []
        bad = [i for i in self.keep_fp32 if not -len(compute) <= i < len(compute)]
        if bad:
            raise ExportError(f"{src}: keep_fp32 indices {bad} out of range: the graph has {len(compute)} compute "
                              "nodes")
        others = sorted({op.get_type_name() for op in model.get_ordered_ops()} - set(OV_COMPUTE_OPS))
        scope = nncf.IgnoredScope(names=[compute[i] for i in self.keep_fp32], types=others, validate=False)
        data = nncf.Dataset([{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in f.items()} for f in self.feeds])
        nncf.set_log_level(logging.WARNING)  # its INFO lists every ignored node on stdout
        with contextlib.redirect_stdout(io.StringIO()):  # its progress bars, which no liccs option could turn off
            quantized = nncf.quantize(model, data, preset=presets[self.preset], subset_size=self.subset_size,
                                      ignored_scope=scope)
        ov.save_model(quantized, str(dst), compress_to_fp16=False)
        os.replace(dst.with_suffix(".bin"), weights)  # beside the .xml that atomic_write moves into place next
        return {"source": str(src), "calibration_batches": len(self.feeds), "preset": self.preset,
                "keep_fp32": list(self.keep_fp32), "bin_sha256": file_sha256(weights)}


def ov_compute_ops(model: Any, src: Path) -> list[str]:
    """OpenVINO's names of the ONNX graph ``src``'s compute nodes, in
    :func:`~liccs.export.quantize.compute_nodes` order.

    OpenVINO renames some nodes on import (a ConvTranspose becomes ``ConvolutionBackpropData_N``), so the match is
    by position in topological order, checked by count and by each node's weight size; a graph where the two
    orders differ raises instead of keeping the wrong layers in f32."""
    onnx_model = load_onnx(src, check=False)
    sizes = {t.name: int(np.prod(t.dims)) for t in onnx_model.graph.initializer}
    expected = [sizes.get(n.input[1]) for n in onnx_model.graph.node if n.op_type in COMPUTE_OPS]
    ops = [op for op in model.get_ordered_ops() if op.get_type_name() in OV_COMPUTE_OPS]
    got = [int(np.prod(op.input_value(1).get_shape())) if op.input_value(1).get_partial_shape().is_static else None
           for op in ops]
    if len(ops) != len(expected) or any(e is not None and g is not None and e != g for e, g in zip(expected, got)):
        raise ExportError(f"{src}: OpenVINO's compute nodes (weight sizes {got}) do not line up with the ONNX graph's "
                          f"(weight sizes {expected}); cannot tell which to keep in f32")
    return [op.get_friendly_name() for op in ops]


#: an engine's precision → OpenVINO's ``INFERENCE_PRECISION_HINT`` (int8 graphs keep f32 between their int8 nodes)
OV_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def _factory(engine: str, precision: str):
    def make_runner(artifact: Any, *, cache: ArtifactCache | None = None, exporter: str = "auto",
                    calibration: Sequence[Feed] | None = None,
                    value_ranges: Mapping[str, tuple[float, float]] | None = None, threads: int = 0,
                    name: str | None = None, keep_fp32: Sequence[int] = (), **_: Any) -> OvRunner:
        source = onnx_source(artifact, cache, exporter)
        if precision == "int8":
            if not calibration:
                raise InputError(f"{engine} quantizes an fp32 graph with NNCF on calibration feeds from real images: "
                                 f"pass calibration=[{{input: array}}, ...]")
            source = Int8IrFromOnnx(source, calibration, cache, keep_fp32=keep_fp32)
        return OvRunner(source, name or engine, value_ranges_of(artifact, value_ranges), threads,
                        precision=OV_HINTS[precision])

    return make_runner


for _name, _prec, _requires in (("ov-cpu", "fp32", ("openvino",)), ("ov-cpu-bf16", "bf16", ("openvino",)),
                                ("ov-cpu-int8", "int8", ("openvino", "nncf"))):
    ENGINES.register(_name, EngineSpec(_name, "openvino", _prec, "cpu", _factory(_name, _prec),
                                       requires=_requires, install_hint=INSTALL_HINT,
                                       extra={"artifact": "onnx", "inference_precision": OV_HINTS[_prec]},
                                       native="bf16" if _prec == "bf16" else "", replica=True,
                                       fp32_twin="" if _prec == "fp32" else "ov-cpu",
                                       transposed="four-phase" if _prec == "bf16" else "native"))
