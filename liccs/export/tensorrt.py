"""ONNX → TensorRT engine (:class:`EngineFromOnnx`) and a serialized engine from a file (:class:`EngineFromPath`).

Written against the TensorRT 10.x Python API (docs.nvidia.com/deeplearning/tensorrt, "Python API" 10.0–10.16)
and the 10.x → 11.x migration guide (11.0–11.4): 11.x makes every network strongly typed and removes
``BuilderFlag.FP16/BF16/INT8`` and the INT8 calibrators. What each precision does:

- ``fp32``: a plain network; ``BuilderFlag.TF32`` is cleared (TensorRT enables it by default) unless ``tf32=True``.
- ``fp16``/``bf16``: on 10.x ``BuilderFlag.FP16``/``BF16`` (weak typing). An ONNX already in fp16/bf16 is
  built strongly typed (10.x and 11.x). On 11.x an fp32 ONNX is refused with a clear error (convert it with
  ModelOpt AutoCast first), since the flags no longer exist.
- ``int8``: a QDQ ONNX (explicit quantization, symmetric int8, e.g. onnxruntime's ``quantize_static`` with
  ``ActivationSymmetric``/``WeightSymmetric``) is built strongly typed, the route documented for 10.x and the
  only one in 11.x. Without Q/DQ nodes, 10.x calibrates with an ``IInt8EntropyCalibrator2`` over a folder
  of images (implicit quantization, deprecated since 10.1; layers without int8 kernels stay fp32); 11.x
  refuses with a clear error.

Engines are cached under :func:`liccs.paths.cache_dir` / ``tensorrt`` keyed by the ONNX hash, precision,
shape profile, build options, TensorRT version, GPU name and compute capability; a JSON sidecar holds the
key and the engine's sha256, so a truncated or foreign file is never taken for a valid one.
``import tensorrt`` happens inside functions only. None of this has run against a real TensorRT here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from liccs.errors import EngineUnavailable, ImageReadError, InputError, LiccsError
from liccs.fileio import atomic_write_bytes, json_digest
from liccs.paths import cache_dir

log = logging.getLogger("liccs.tensorrt")

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
ENGINE_FORMAT = 1  # bump when the build recipe or the cache layout changes: every key changes with it
INSTALL_HINT = ("install it with `pip install 'liccs[tensorrt]'` (the `tensorrt` wheel fetches its libraries from "
                "NVIDIA's index, pypi.nvidia.com; use tensorrt-cu12 or tensorrt-cu13 to match torch.version.cuda); "
                "TensorRT needs an NVIDIA GPU")


class TensorRTError(LiccsError):
    """A TensorRT build or load that failed; the message names the ONNX or engine file."""


class OnnxFileError(TensorRTError):
    """An ONNX file that is missing, truncated or not ONNX."""


class EngineFileError(TensorRTError):
    """A serialized engine that is missing, empty, truncated or corrupt."""


class EngineVersionError(EngineFileError):
    """An engine built by another TensorRT version or for another GPU."""


def import_tensorrt(need_builder: bool = True) -> ModuleType:
    """``import tensorrt``, or :class:`~liccs.errors.EngineUnavailable` saying how to install it."""
    try:
        import tensorrt as trt
    except (ImportError, OSError) as e:  # OSError: the wheel is there but libnvinfer cannot be loaded
        raise EngineUnavailable(f"TensorRT cannot be imported ({type(e).__name__}: {e}); {INSTALL_HINT}") from None
    if need_builder and not hasattr(trt, "Builder"):
        raise EngineUnavailable(f"this `tensorrt` ({getattr(trt, '__version__', '?')}) has no builder (a lean or "
                                f"dispatch runtime?); building engines needs the full package: {INSTALL_HINT}")
    return trt


def trt_major(trt: ModuleType) -> int:
    """The major version of a loaded ``tensorrt`` module (10, 11, ...)."""
    return int(str(trt.__version__).split(".")[0])


# --- shape profiles -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeRange:
    """The min/opt/max shapes of one input in an optimization profile (``IOptimizationProfile.set_shape``)."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @classmethod
    def of(cls, value: ShapeRange | Sequence[Sequence[int]], name: str) -> ShapeRange:
        """A range from ``ShapeRange`` or ``(min, opt, max)`` shapes; anything else names the input."""
        if isinstance(value, ShapeRange):
            return value
        try:
            lo, opt, hi = value
            return cls(tuple(int(d) for d in lo), tuple(int(d) for d in opt), tuple(int(d) for d in hi))
        except (TypeError, ValueError):
            raise InputError(f"profile of input {name!r} must be (min, opt, max) shapes, got {value!r}") from None

    def as_list(self) -> list[list[int]]:
        return [list(self.min), list(self.opt), list(self.max)]


Profile = dict[str, ShapeRange]


def image_profile(name: str = "x", batch: tuple[int, int, int] = (1, 1, 8),
                  size: tuple[int, int, int] = (64, 512, 1088), channels: int = 3,
                  multiple: int | None = 64) -> Profile:
    """A profile for one NCHW image input: ``batch`` and square ``size`` as (min, opt, max).

    With ``multiple``, every size must be a multiple of it (codecs need sides that are multiples of 64).
    """
    if multiple and any(s % multiple for s in size):
        raise InputError(f"profile sizes {size} of input {name!r} must be multiples of {multiple}")
    (b0, b1, b2), (s0, s1, s2) = batch, size
    return {name: ShapeRange((b0, channels, s0, s0), (b1, channels, s1, s1), (b2, channels, s2, s2))}


def _fmt(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def resolve_profile(inputs: Mapping[str, tuple[int | None, ...]], profile: Mapping[str, Any] | None,
                    where: str = "the model") -> Profile:
    """Check a user profile against the model's inputs (None = dynamic dimension); static inputs are filled in.

    Every dynamic input needs a range; ranks must match, static dimensions must stay fixed, and
    min <= opt <= max must hold everywhere. Errors name the input and ``where`` (the ONNX file).
    """
    given = dict(profile or {})
    unknown = sorted(set(given) - set(inputs))
    if unknown:
        raise InputError(f"profile names input(s) {unknown} that {where} does not have; its inputs are {list(inputs)}")
    out: Profile = {}
    for name, shape in inputs.items():
        if name not in given:
            if any(d is None for d in shape):
                raise InputError(f"input {name!r} of {where} has dynamic shape {_fmt(shape)}; "
                                 f"give its (min, opt, max) shapes in the profile")
            out[name] = ShapeRange(tuple(shape), tuple(shape), tuple(shape))  # type: ignore[arg-type]
            continue
        r = ShapeRange.of(given[name], name)
        for label, s in (("min", r.min), ("opt", r.opt), ("max", r.max)):
            if len(s) != len(shape):
                raise InputError(f"profile {label} shape {s} of input {name!r} has rank {len(s)}; "
                                 f"{where} gives it shape {_fmt(shape)}")
            if any(d < 1 for d in s):
                raise InputError(f"profile {label} shape {s} of input {name!r} has a dimension below 1")
        for i, want in enumerate(shape):
            if want is not None and not r.min[i] == r.opt[i] == r.max[i] == want:
                raise InputError(f"dimension {i} of input {name!r} is fixed at {want} in {where}; the profile "
                                 f"gives {r.min[i]}/{r.opt[i]}/{r.max[i]}")
        if not all(a <= b <= c for a, b, c in zip(r.min, r.opt, r.max)):
            raise InputError(f"profile of input {name!r} needs min <= opt <= max in every dimension; "
                             f"got {r.min}, {r.opt}, {r.max}")
        out[name] = r
    return out


# --- the ONNX side --------------------------------------------------------------------------------

_FLOAT_TYPES = {1: "float32", 10: "float16", 16: "bfloat16"}  # onnx.TensorProto element types
_QUANT_ZERO_POINT_TYPES = {3, 17, 18, 19, 20, 22}  # INT8, the FLOAT8 variants, INT4


@dataclass(frozen=True)
class OnnxInfo:
    """What the build plan needs from an ONNX graph, read without TensorRT."""

    path: Path
    inputs: dict[str, tuple[int | None, ...]]
    float_types: frozenset[str]  # float element types of initializers, constants and inputs
    qdq_nodes: int  # QuantizeLinear + DequantizeLinear nodes
    qdq_problems: tuple[str, ...]  # why TensorRT would refuse those Q/DQ nodes (empty: fine)


def load_onnx_proto(path: str | Path) -> Any:
    """The ``ModelProto`` of ``path`` without external data; a missing or corrupt file names the file."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise OnnxFileError(f"ONNX file {path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError) as e:
        raise OnnxFileError(f"ONNX file {path} cannot be read (truncated or not ONNX): {e}") from None
    if not model.graph.node or not model.graph.output:
        raise OnnxFileError(f"ONNX file {path} is empty or not an ONNX model (no nodes or no outputs)")
    return model


def inspect_onnx(path: str | Path) -> OnnxInfo:
    """Inputs (None = dynamic dim), float types, and Q/DQ nodes with what TensorRT would refuse in them."""
    from onnx import numpy_helper

    model = load_onnx_proto(path)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    for n in g.node:  # Constant nodes hold tensors too (zero points, scales)
        if n.op_type == "Constant" and n.output:
            inits.update({n.output[0]: a.t for a in n.attribute if a.name == "value"})
    inputs = {i.name: tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                            for d in i.type.tensor_type.shape.dim)
              for i in g.input if i.name not in inits}
    # weights and inputs decide (a stray Cast to fp16 does not make an fp32 model an fp16 one)
    types = {t.data_type for t in inits.values()} | {i.type.tensor_type.elem_type for i in g.input}
    problems: list[str] = []
    qdq = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    for n in qdq:
        label = f"{n.op_type} {n.name or n.output[0]!r}"
        if n.domain not in ("", "ai.onnx"):
            problems.append(f"{label} is in domain {n.domain!r} (TensorRT parses only the standard ONNX ops)")
        if len(n.input) < 3 or not n.input[2]:
            continue  # no zero point: 0, fine
        zp = inits.get(n.input[2])
        if zp is None:
            problems.append(f"{label} has a computed zero point (TensorRT needs a constant 0)")
        elif zp.data_type not in _QUANT_ZERO_POINT_TYPES:
            problems.append(f"{label} quantizes to element type {zp.data_type} (TensorRT's quantized types are "
                            f"int8/fp8/int4; an int32 bias needs QuantizeBias=False)")
        elif np.any(numpy_helper.to_array(zp).astype(np.float32) != 0):
            problems.append(f"{label} has a non-zero zero point (TensorRT supports symmetric quantization only)")
    return OnnxInfo(Path(path), inputs, frozenset(_FLOAT_TYPES[t] for t in types if t in _FLOAT_TYPES),
                    len(qdq), tuple(problems))


def onnx_digest(path: str | Path) -> str:
    """sha256 of the ONNX file and of every external-data file it references."""
    model = load_onnx_proto(path)
    path = Path(path)
    h = hashlib.sha256()
    _hash_file(path, h)
    locations = sorted({e.value for t in model.graph.initializer if t.data_location == 1  # EXTERNAL
                        for e in t.external_data if e.key == "location"})
    for loc in locations:
        ext = path.parent / loc
        if not ext.is_file():
            raise OnnxFileError(f"ONNX file {path} references external data {loc!r}, which does not exist")
        h.update(loc.encode())
        _hash_file(ext, h)
    return h.hexdigest()


def _hash_file(path: Path, h: Any) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


# --- the build plan (pure: which flags, which network mode) ----------------------------------------


@dataclass(frozen=True)
class BuildPlan:
    """How a precision is realized on a given TensorRT: network mode, builder flags, calibration."""

    precision: str
    strongly_typed: bool
    set_flags: tuple[str, ...]  # BuilderFlag member names
    clear_flags: tuple[str, ...]
    calibrate: bool  # implicit INT8 calibration (10.x only)
    route: str  # one line for logs and the cache sidecar


def plan_build(precision: str, onnx: OnnxInfo, *, trt_version: str, builder_flags: Sequence[str],
               network_flags: Sequence[str], has_calibrator: bool, calibration_given: bool,
               tf32: bool = False) -> BuildPlan:
    """Choose the build route for ``precision`` from what this TensorRT offers (see the module docstring)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    flags, where = set(builder_flags), onnx.path
    strong_ok = "STRONGLY_TYPED" in network_flags
    clear = ("TF32",) if "TF32" in flags and not tf32 else ()
    extra = ("TF32",) if tf32 and "TF32" in flags else ()
    weak = "FP16" in flags  # 10.x; gone in 11.x, where every network is strongly typed
    if precision == "fp32":
        return BuildPlan(precision, not weak, extra, clear, False, "fp32")
    if precision in ("fp16", "bf16"):
        low, flag = {"fp16": ("float16", "FP16"), "bf16": ("bfloat16", "BF16")}[precision]
        if low in onnx.float_types and (strong_ok or not weak):
            return BuildPlan(precision, True, extra, clear, False, f"strongly typed ({low} ONNX)")
        if flag in flags:
            return BuildPlan(precision, False, (flag, *extra), clear, False, f"BuilderFlag.{flag} (weak typing)")
        raise TensorRTError(
            f"TensorRT {trt_version} has no BuilderFlag.{flag} (removed in 11.0: networks are strongly typed) and "
            f"{where} holds no {low} tensors; convert it first, e.g. `python -m modelopt.onnx.autocast "
            f"--onnx_path {where} --output_path <out>.onnx --low_precision_type {precision[:2]}16 --keep_io_types`, "
            f"and build from that file")
    # int8
    if onnx.qdq_nodes:
        if onnx.qdq_problems:
            shown = "; ".join(onnx.qdq_problems[:3]) + (f"; and {len(onnx.qdq_problems) - 3} more"
                                                          if len(onnx.qdq_problems) > 3 else "")
            raise TensorRTError(
                f"{where} has Q/DQ nodes TensorRT cannot build: {shown}. Quantize with onnxruntime's quantize_static("
                f"..., quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, "
                f"extra_options={{'ActivationSymmetric': True, 'WeightSymmetric': True, 'QuantizeBias': False}})")
        if strong_ok or not weak:
            return BuildPlan(precision, True, extra, clear, False, "explicit quantization (QDQ, strongly typed)")
        return BuildPlan(precision, False, ("INT8", *extra), clear, False, "explicit quantization (QDQ, INT8 flag)")
    if not calibration_given:
        raise TensorRTError(f"int8 needs either a QDQ ONNX (explicit quantization) or calibration images; {where} "
                            f"has no Q/DQ nodes and no calibration images were given")
    if not (has_calibrator and "INT8" in flags):
        raise TensorRTError(f"TensorRT {trt_version} has no implicit INT8 calibration (removed in 11.0); build "
                            f"from a QDQ ONNX of {where} instead (symmetric int8, e.g. from onnxruntime's "
                            f"quantize_static with ActivationSymmetric/WeightSymmetric)")
    return BuildPlan(precision, False, ("INT8", *extra), clear, True,
                     "implicit INT8 calibration (IInt8EntropyCalibrator2, deprecated since TensorRT 10.1)")


# --- cache key, atomic files, device identity -------------------------------------------------------


def engine_cache_key(fields: Mapping[str, Any]) -> str:
    """A short, stable hash of the key fields (their JSON with sorted keys)."""
    return json_digest(fields, 24)


def key_fields(*, onnx_sha256: str, precision: str, profile: Profile, trt_version: str, gpu_name: str,
               compute_capability: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Everything an engine depends on; a change of any field gives a new key, hence a rebuild."""
    return {"format": ENGINE_FORMAT, "onnx_sha256": onnx_sha256, "precision": precision,
            "profile": {k: v.as_list() for k, v in profile.items()}, "tensorrt": trt_version,
            "gpu": gpu_name, "compute_capability": compute_capability, "options": dict(options)}


def cuda_device_identity() -> tuple[str, str]:
    """(GPU name, compute capability "8.6") of the current CUDA device; EngineUnavailable without one."""
    if not torch.cuda.is_available():
        raise EngineUnavailable("TensorRT needs a CUDA GPU; none is visible (torch.cuda.is_available() is False)")
    dev = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(dev)
    return torch.cuda.get_device_name(dev), f"{major}.{minor}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


class EngineBytes(bytes):
    """Serialized engine bytes that remember their file (``source``) and sidecar (``meta``) for errors."""

    source: str
    meta: dict[str, Any]

    def __new__(cls, data: bytes, source: str, meta: dict[str, Any] | None = None) -> EngineBytes:
        obj = super().__new__(cls, data)
        obj.source, obj.meta = source, dict(meta or {})
        return obj


def _sidecar(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".json")


def write_engine(engine_path: Path, data: bytes, meta: Mapping[str, Any]) -> Path:
    """Write the engine, then its sidecar (key, sha256, size): a crash in between leaves no valid-looking pair."""
    atomic_write_bytes(engine_path, data)
    full = {**meta, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    atomic_write_bytes(_sidecar(engine_path), (json.dumps(full, indent=2, default=str) + "\n").encode())
    return engine_path


def read_cached_engine(engine_path: Path, key: str) -> EngineBytes | None:
    """The cached engine if file and sidecar agree with ``key`` and the bytes are intact, else None (a miss)."""
    side = _sidecar(engine_path)
    if not (engine_path.is_file() and side.is_file()):
        return None
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError):
        log.warning("engine cache sidecar %s is unreadable; rebuilding", side)
        return None
    data = engine_path.read_bytes()
    intact = meta.get("size") == len(data) and meta.get("sha256") == hashlib.sha256(data).hexdigest()
    if meta.get("key") != key or not intact:
        log.warning("cached engine %s does not match its sidecar or key; rebuilding", engine_path)
        return None
    return EngineBytes(data, str(engine_path), meta)


# --- calibration data (pure) and the TensorRT calibrator around it ----------------------------------


def fit_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 ``[3, H, W]`` → float ``[3, height, width]`` in [0, 1]: scaled to cover, then centre-cropped."""
    x = image.float().div(255.0).unsqueeze(0) if image.dtype == torch.uint8 else image.unsqueeze(0).float()
    h, w = x.shape[-2:]
    scale = max(height / h, width / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
    top, left = (nh - height) // 2, (nw - width) // 2
    return x[0, :, top:top + height, left:left + width]


class CalibrationBatches:
    """Fixed-shape float32 ``[B, 3, H, W]`` batches in [0, 1] from a folder or :class:`~liccs.data.ImageSource`.

    Images are scaled to cover H × W and centre-cropped; unreadable ones are skipped and listed in
    ``failures``; an incomplete last batch is dropped (TensorRT calibrates at one fixed shape).
    """

    def __init__(self, source: Any, shape: Sequence[int], max_images: int | None = None) -> None:
        from liccs.data import ImageSource, open_source

        self.source: ImageSource = source if isinstance(source, ImageSource) else open_source(source)
        if len(shape) != 4 or shape[1] != 3:
            raise InputError(f"calibration over images needs an NCHW input with 3 channels, got shape {tuple(shape)}")
        self.shape = tuple(int(d) for d in shape)
        n = len(self.source) if max_images is None else min(max_images, len(self.source))
        self.indices = list(range(n))
        if n < self.shape[0]:
            raise InputError(f"calibration needs at least {self.shape[0]} images (one batch of shape {self.shape}); "
                             f"the source has {n}")
        self.failures: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.indices) // self.shape[0]

    def identity(self) -> list[str]:
        """What the calibration depends on (image locations and shape), for the engine cache key."""
        return [str(self.shape)] + [self.source.describe(i)[1] for i in self.indices]

    def __iter__(self) -> Iterator[np.ndarray]:
        b, _, h, w = self.shape
        batch: list[torch.Tensor] = []
        self.failures = []
        for i in self.indices:
            try:
                batch.append(fit_image(self.source.read(i), h, w))
            except ImageReadError as e:
                self.failures.append((self.source.describe(i)[1], str(e)))
                continue
            if len(batch) == b:
                yield np.ascontiguousarray(torch.stack(batch).numpy(), dtype=np.float32)
                batch = []


def make_entropy_calibrator(trt: ModuleType, batches: CalibrationBatches, cache_file: Path | None) -> Any:
    """A ``trt.IInt8EntropyCalibrator2`` (10.x Python API; deprecated in 10.1, removed in 11.0) over ``batches``.

    Batches go to the GPU as torch tensors; the pointer list follows ``get_batch(names)``. With explicit-batch
    networks ``get_batch_size`` is 1 and the batch shape comes from the calibration profile.
    """
    base = trt.IInt8EntropyCalibrator2

    class EntropyCalibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)  # required for pybind trampolines (TensorRT Python docs)
            self._it = iter(batches)
            self._held: torch.Tensor | None = None
            self.batches_used = 0

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            arr = next(self._it, None)
            if arr is None:
                return None
            self._held = torch.from_numpy(arr).to("cuda")
            torch.cuda.synchronize()
            self.batches_used += 1
            return [int(self._held.data_ptr())] * len(names)

        def read_calibration_cache(self) -> bytes | None:
            return cache_file.read_bytes() if cache_file is not None and cache_file.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            if cache_file is not None:
                atomic_write_bytes(cache_file, bytes(cache))

    return EntropyCalibrator()


# --- logging ------------------------------------------------------------------------------------------


class LogCollector:
    """Keeps TensorRT's messages (severity names as ``trt.ILogger.Severity`` spells them) for error reports."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    def add(self, severity: str, msg: str) -> None:
        if severity in ("INTERNAL_ERROR", "ERROR"):
            log.error("TensorRT: %s", msg)
        elif severity == "WARNING":
            log.warning("TensorRT: %s", msg)
        else:
            log.debug("TensorRT: %s", msg)
            return
        self.records.append((severity, msg))

    @property
    def errors(self) -> list[str]:
        return [m for s, m in self.records if s in ("INTERNAL_ERROR", "ERROR")]

    def clear(self) -> None:
        self.records.clear()

    def summary(self, n: int = 5) -> str:
        errs = self.errors
        return "; ".join(errs[-n:]) if errs else "TensorRT logged no error"


def make_logger(trt: ModuleType) -> Any:
    """A ``trt.ILogger`` subclass (10.x Python API) that feeds a :class:`LogCollector` (``.collector``)."""

    class CollectingLogger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.collector = LogCollector()

        def log(self, severity: Any, msg: str) -> None:
            self.collector.add(getattr(severity, "name", str(severity)), msg)

    return CollectingLogger()


def member_names(enum: Any) -> list[str]:
    """Member names of a pybind11 enum such as ``trt.BuilderFlag`` (``__members__``)."""
    return list(getattr(enum, "__members__", {}))


def deserialize_engine(trt: ModuleType, runtime: Any, collector: LogCollector, data: bytes, source: str) -> Any:
    """``runtime.deserialize_cuda_engine`` with clear errors naming ``source`` (version, device, corruption)."""
    collector.clear()
    engine = runtime.deserialize_cuda_engine(bytes(data))
    if engine is not None:
        return engine
    text = collector.summary()
    low = text.lower()
    if "version" in low and ("compatible" in low or "tag" in low):
        raise EngineVersionError(f"engine {source} was built by another TensorRT than this one ({trt.__version__}); "
                                 f"rebuild it from its ONNX. TensorRT said: {text}")
    if "incompatible device" in low or ("compute" in low and "expecting" in low):
        raise EngineVersionError(f"engine {source} was built for another GPU; rebuild it on this one. "
                                 f"TensorRT said: {text}")
    raise EngineFileError(f"engine {source} cannot be deserialized (truncated, corrupt or not a TensorRT engine). "
                          f"TensorRT said: {text}")



# --- the build steps --------------------------------------------------------------------------------


def installed_tensorrt_version() -> str | None:
    """``tensorrt.__version__`` when TensorRT imports, else None."""
    try:
        import tensorrt as trt
    except (ImportError, OSError):
        return None
    return str(getattr(trt, "__version__", "")) or None


def _parser_error(err: Any) -> str:
    """One ``IParserError`` (10.x OnnxParser.get_error) as text: node, operator and description."""
    desc = err.desc() if hasattr(err, "desc") else str(err)
    node = err.node() if hasattr(err, "node") else -1
    op = err.node_operator() if hasattr(err, "node_operator") else ""
    return f"node {node} ({op}): {desc}" if node is not None and node >= 0 else str(desc)


class EngineFromOnnx:
    """Lazy build step: ONNX file → serialized TensorRT engine (:class:`EngineBytes`), cached under its key.

    Args:
        onnx_path: the graph: fp32, already fp16/bf16-typed, or QDQ (symmetric int8) for ``int8``.
        precision: ``fp32`` | ``fp16`` | ``bf16`` | ``int8`` (per-version routes: see the module docstring).
        profile: ``{input: (min, opt, max) shapes}`` for every dynamic input (see :func:`image_profile`).
        workspace_bytes: limit of ``MemoryPoolType.WORKSPACE``.
        calibration_images: folder or ImageSource for implicit int8 calibration (10.x, ONNX without Q/DQ);
            batches have the profile's opt shape.
        calibration_max_images: use at most this many images.
        timing_cache: tactic timing-cache file, reused and updated after each build; None: one per
            TensorRT version and GPU under the cache folder; False: none.
        cache: read and write the engine cache.
        cache_root: the engine cache folder (default ``cache_dir() / "tensorrt"``).
        tf32: allow TF32 math (off, so that fp32 means fp32).

    After a call: ``path`` (the cached engine file or None), ``cache_hit``, ``key``, ``plan``, ``build_seconds``.
    """

    def __init__(self, onnx_path: str | Path, precision: str = "fp32", profile: Mapping[str, Any] | None = None, *,
                 workspace_bytes: int = 4 << 30, calibration_images: Any = None,
                 calibration_max_images: int | None = 64, timing_cache: str | Path | bool | None = None,
                 cache: bool = True, cache_root: str | Path | None = None, tf32: bool = False) -> None:
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if workspace_bytes <= 0:
            raise InputError(f"workspace_bytes must be positive, got {workspace_bytes}")
        self.onnx_path, self.precision, self.profile = Path(onnx_path), precision, dict(profile or {})
        self.workspace_bytes, self.tf32 = int(workspace_bytes), tf32
        self.calibration_images, self.calibration_max_images = calibration_images, calibration_max_images
        self.timing_cache, self.cache = timing_cache, cache
        self.cache_root = Path(cache_root) if cache_root is not None else None
        self.path: Path | None = None
        self.cache_hit = False
        self.key: str | None = None
        self.plan: BuildPlan | None = None
        self.build_seconds: float | None = None

    def _root(self) -> Path:
        return self.cache_root if self.cache_root is not None else cache_dir() / "tensorrt"

    def timing_cache_path(self, trt_version: str, gpu: str, cc: str) -> Path | None:
        """The timing-cache file in use (timing caches are specific to a TensorRT version and a GPU)."""
        if self.timing_cache is False:
            return None
        if self.timing_cache not in (None, True):
            return Path(self.timing_cache)  # type: ignore[arg-type]
        return self._root() / f"timing-trt{trt_version}-{_slug(gpu)}-sm{cc}.cache"

    def __call__(self) -> EngineBytes:
        trt = import_tensorrt()
        gpu, cc = cuda_device_identity()
        info = inspect_onnx(self.onnx_path)
        where = str(self.onnx_path)
        profile = resolve_profile(info.inputs, self.profile, where=where)
        plan = plan_build(self.precision, info, trt_version=trt.__version__,
                          builder_flags=member_names(trt.BuilderFlag),
                          network_flags=member_names(trt.NetworkDefinitionCreationFlag),
                          has_calibrator=hasattr(trt, "IInt8EntropyCalibrator2"),
                          calibration_given=self.calibration_images is not None, tf32=self.tf32)
        batches = None
        if plan.calibrate:
            if len(profile) != 1:
                raise InputError(f"calibration over images needs a graph with one input; {where} has {list(profile)}")
            batches = CalibrationBatches(self.calibration_images, next(iter(profile.values())).opt,
                                         self.calibration_max_images)
        options = {"workspace_bytes": self.workspace_bytes, "tf32": self.tf32, "route": plan.route,
                   "strongly_typed": plan.strongly_typed, "flags": sorted(plan.set_flags),
                   "calibration": batches.identity() if batches is not None else None}
        fields = key_fields(onnx_sha256=onnx_digest(self.onnx_path), precision=self.precision, profile=profile,
                            trt_version=trt.__version__, gpu_name=gpu, compute_capability=cc, options=options)
        self.plan, self.key, self.cache_hit = plan, engine_cache_key(fields), False
        engine_path = self._root() / f"{_slug(self.onnx_path.stem)}.{self.precision}.{self.key}.engine"
        if self.cache:
            hit = read_cached_engine(engine_path, self.key)
            if hit is not None:
                self.path, self.cache_hit = engine_path, True
                return hit
        t0 = time.perf_counter()
        data = self._build(trt, info, profile, plan, batches, engine_path, (gpu, cc))
        self.build_seconds = time.perf_counter() - t0
        meta = {"key": self.key, "fields": fields, "onnx": where, "route": plan.route,
                "build_seconds": round(self.build_seconds, 3), "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if not self.cache:
            return EngineBytes(data, f"<engine built from {where}>", meta)
        self.path = write_engine(engine_path, data, meta)
        return EngineBytes(data, str(engine_path), meta)

    def _build(self, trt: ModuleType, info: OnnxInfo, profile: Profile, plan: BuildPlan,
               batches: CalibrationBatches | None, engine_path: Path, device: tuple[str, str]) -> bytes:
        """Parse, configure and build (TensorRT 10.x Python API; the 11.x subset when flags are absent)."""
        where = str(self.onnx_path)
        logger = make_logger(trt)
        builder = trt.Builder(logger)
        net_flags = 0
        if plan.strongly_typed and "STRONGLY_TYPED" in member_names(trt.NetworkDefinitionCreationFlag):
            net_flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # harmless on 11.x
        network = builder.create_network(net_flags)  # explicit batch is the only mode since 10.0
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(where):  # resolves external data beside the file
            errors = [_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
            raise TensorRTError(f"TensorRT cannot parse {where}: {'; '.join(errors) or logger.collector.summary()}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_bytes)
        for flag in plan.clear_flags:
            config.clear_flag(getattr(trt.BuilderFlag, flag))
        for flag in plan.set_flags:
            config.set_flag(getattr(trt.BuilderFlag, flag))
        dynamic = [n for n, shape in info.inputs.items() if any(d is None for d in shape)]
        if dynamic:
            opt_profile = builder.create_optimization_profile()
            for name in dynamic:
                r = profile[name]
                opt_profile.set_shape(name, r.min, r.opt, r.max)
            if config.add_optimization_profile(opt_profile) < 0:
                raise TensorRTError(f"TensorRT refused the shape profile {profile} for {where}: "
                                    f"{logger.collector.summary()}")
        if plan.calibrate:
            assert batches is not None
            with warnings.catch_warnings():  # the calibration API is deprecated since 10.1; the route says so
                warnings.simplefilter("ignore", DeprecationWarning)
                if dynamic:  # calibration runs at one shape: the profile's opt shape, the batches' shape
                    cal_profile = builder.create_optimization_profile()
                    for name in dynamic:
                        cal_profile.set_shape(name, profile[name].opt, profile[name].opt, profile[name].opt)
                    config.set_calibration_profile(cal_profile)
                calibrator = make_entropy_calibrator(trt, batches, engine_path.with_name(engine_path.stem + ".calib"))
                config.int8_calibrator = calibrator  # `calibrator` stays referenced here until the build is done
        else:
            calibrator = None
        timing_path = self.timing_cache_path(trt.__version__, *device)
        if timing_path is not None:
            self._attach_timing_cache(config, timing_path)
        serialized = builder.build_serialized_network(network, config)
        del calibrator
        if serialized is None:
            raise TensorRTError(f"TensorRT could not build an engine from {where} ({plan.route}): "
                                f"{logger.collector.summary()}")
        timing = config.get_timing_cache() if timing_path is not None else None
        if timing is not None:
            atomic_write_bytes(timing_path, bytes(timing.serialize()))
        if batches is not None and batches.failures:
            log.warning("calibration skipped %d unreadable image(s), e.g. %s", len(batches.failures),
                        batches.failures[0][0])
        return bytes(serialized)  # IHostMemory supports the buffer protocol

    @staticmethod
    def _attach_timing_cache(config: Any, path: Path) -> None:
        """Load ``path`` into the config (``create_timing_cache`` / ``set_timing_cache``); corrupt → start empty."""
        data = path.read_bytes() if path.is_file() else b""
        cache = config.create_timing_cache(data) if data else None
        if data and (cache is None or config.set_timing_cache(cache, ignore_mismatch=False) is False):
            log.warning("timing cache %s is corrupt or from another TensorRT/GPU; starting an empty one", path)
            cache = None
        if cache is None:
            config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)


class EngineFromPath:
    """Lazy load step: engine file → :class:`EngineBytes`, checked before TensorRT ever sees the bytes.

    A missing or empty file raises :class:`EngineFileError`; so does a file whose sidecar (written by
    :class:`EngineFromOnnx`) gives another size or sha256 (truncated or corrupt). A sidecar naming another
    TensorRT version or GPU raises :class:`EngineVersionError`. Engines without a sidecar (built elsewhere)
    are checked by TensorRT when a runner deserializes them (:func:`deserialize_engine`).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __call__(self) -> EngineBytes:
        path = self.path
        if not path.is_file():
            raise EngineFileError(f"engine file {path} does not exist")
        data = path.read_bytes()
        if not data:
            raise EngineFileError(f"engine file {path} is empty")
        side = _sidecar(path)
        if not side.is_file():
            return EngineBytes(data, str(path))
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError) as e:
            raise EngineFileError(f"engine file {path}: its sidecar {side} is unreadable ({e})") from None
        if meta.get("size") != len(data) or meta.get("sha256") != hashlib.sha256(data).hexdigest():
            raise EngineFileError(f"engine file {path} is truncated or corrupt: {len(data)} bytes whose sha256 "
                                  f"differs from the {meta.get('size')} bytes recorded in {side.name}")
        fields = meta.get("fields", {})
        built, here = fields.get("tensorrt"), installed_tensorrt_version()
        if built and here and built != here:
            raise EngineVersionError(f"engine file {path} was built with TensorRT {built}; this is TensorRT {here}. "
                                     f"Rebuild it from its ONNX ({meta.get('onnx', '?')})")
        if fields.get("compute_capability") and torch.cuda.is_available():
            gpu, cc = cuda_device_identity()
            if cc != fields["compute_capability"]:
                raise EngineVersionError(f"engine file {path} was built for {fields.get('gpu')} (compute "
                                         f"{fields['compute_capability']}); this GPU is {gpu} (compute {cc})")
        return EngineBytes(data, str(path), meta)
