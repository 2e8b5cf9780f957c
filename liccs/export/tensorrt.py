"""ONNX → TensorRT engine with NVIDIA Polygraphy's loaders: :class:`EngineFromOnnx`, a cached build step.

liccs adds the precision plan per TensorRT version (:func:`precision_plan`), the profile checked against the ONNX
inputs (:func:`resolve_profile`), the engine cache on the artifact cache (ONNX sha256, precision, profile, TensorRT
version, GPU) and errors naming the ONNX file. tensorrt and polygraphy are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import torch

from liccs.core.errors import EngineUnavailable, InputError, LiccsError
from liccs.core.fileio import json_digest
from liccs.export.cache import Artifact, ArtifactCache, file_sha256
from liccs.export.onnx import load_onnx, onnx_inputs
from liccs.export.quantize import feeds_digest

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
INSTALL_HINT = ("`pip install 'liccs[tensorrt]'` installs tensorrt (from NVIDIA's index, pypi.nvidia.com; tensorrt-cu12"
                " or -cu13 must match torch.version.cuda) and polygraphy; TensorRT needs an NVIDIA GPU")
Shapes = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # (min, opt, max)


class TensorRTError(LiccsError):
    """A TensorRT parse, build, load or run that failed; the message names the ONNX or engine file."""


def require_tensorrt() -> tuple[ModuleType, ModuleType]:
    """``(tensorrt, polygraphy.backend.trt)``, or :class:`EngineUnavailable` saying why and what to install."""
    try:
        import tensorrt as trt  # noqa: I001  (first: the error names tensorrt when both are missing)
        import polygraphy.backend.trt as pt
    except (ImportError, OSError) as e:  # OSError: the wheel is there but libnvinfer cannot be loaded
        raise EngineUnavailable(f"the TensorRT backend cannot be used ({type(e).__name__}: {e}); "
                                f"{INSTALL_HINT}") from None
    return trt, pt


@contextlib.contextmanager
def trt_failure(what: str) -> Iterator[None]:
    """Polygraphy's exception in the block → TensorRTError: ``what``, TensorRT's logged errors, the exception."""
    from polygraphy.exception import PolygraphyException
    from polygraphy.logger import G_LOGGER

    lines: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: lines.append(record.getMessage().strip())  # type: ignore[method-assign]
    old, G_LOGGER.use_python_logging_system = G_LOGGER.use_python_logging_system, True
    logging.getLogger("Polygraphy").addHandler(handler)
    try:
        yield
    except PolygraphyException as e:
        said = [x for x in lines[-4:] if str(e) not in x]  # the critical line repeats the exception
        raise TensorRTError(f"{what}: " + "; ".join([*said, str(e)])) from None
    finally:
        logging.getLogger("Polygraphy").removeHandler(handler)
        G_LOGGER.use_python_logging_system = old


class Plan(NamedTuple):
    """How one precision is built: network typing, CreateConfig flags (fp16/bf16/int8), implicit calibration."""

    strongly_typed: bool
    flags: dict[str, bool]
    calibrate: bool
    note: str


def precision_plan(precision: str, trt_version: str, qdq: bool, where: str = "the ONNX") -> Plan:
    """The plan of ``precision`` on TensorRT ``trt_version`` for an ONNX with (``qdq``) or without Q/DQ nodes.

    10.x: fp32 plain (TF32 off), fp16/bf16 by builder flag (weak typing), int8 strongly typed from Q/DQ nodes, else
    by implicit calibration (deprecated since 10.1). 11.x types every network strongly: no precision flags and no
    calibrators, the ONNX's own types decide."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    major = int(str(trt_version).split(".")[0]) if str(trt_version).split(".")[0].isdigit() else 0
    if major < 10:
        raise TensorRTError(f"TensorRT {trt_version!r} is unsupported; liccs builds with TensorRT 10 or newer")
    if qdq:
        if precision != "int8":
            raise TensorRTError(f"{where} holds Q/DQ nodes (an int8 graph); build it with precision 'int8'")
        return Plan(True, {}, False, "explicit quantization (Q/DQ nodes, strongly typed)")
    if major >= 11 and precision == "int8":
        raise TensorRTError(f"TensorRT {trt_version} has no implicit INT8 calibration (removed in 11.0) and {where} "
                            f"has no Q/DQ nodes; quantize it to symmetric int8 Q/DQ first (onnxruntime's "
                            f"quantize_static, QInt8 activations, ActivationSymmetric/WeightSymmetric; or ModelOpt)")
    if major >= 11 and precision != "fp32":
        raise TensorRTError(f"TensorRT {trt_version} has no {precision} flag (11.x types networks strongly); convert "
                            f"{where} first (`python -m modelopt.onnx.autocast --onnx_path {where} "
                            f"--low_precision_type {precision} --keep_io_types`) and build that file as 'fp32'")
    if precision == "fp32":
        return Plan(major >= 11, {}, False, "strongly typed (TensorRT 11)" if major >= 11 else "fp32, TF32 off")
    if precision == "int8":
        return Plan(False, {"int8": True}, True, "implicit INT8 calibration (deprecated since TensorRT 10.1)")
    return Plan(False, {precision: True}, False, f"BuilderFlag.{precision.upper()} (weak typing)")


def has_qdq(model: Any) -> bool:
    """True when an ONNX ``ModelProto`` holds QuantizeLinear/DequantizeLinear nodes."""
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def resolve_profile(inputs: Mapping[str, Sequence[Any]], profile: Mapping[str, Sequence[Sequence[int]]] | None,
                    where: str = "the ONNX") -> dict[str, Shapes]:
    """(min, opt, max) per input: from ``profile`` for dynamic inputs (a dim that is str, None or <= 0), else fixed.
    Errors name the input and ``where`` (unknown input, missing shapes, rank, fixed dims, min <= opt <= max)."""
    given = dict(profile or {})
    if set(given) - set(inputs):
        raise InputError(f"the profile names {sorted(set(given) - set(inputs))}: no inputs of {where} {list(inputs)}")
    out: dict[str, Shapes] = {}
    for name, shape in inputs.items():
        fixed = [d if isinstance(d, int) and d > 0 else None for d in shape]
        if name not in given and None in fixed:
            raise InputError(f"input {name!r} of {where} has dynamic shape {tuple(shape)}; give its (min, opt, max)")
        try:
            lo, opt, hi = (tuple(int(d) for d in s) for s in given.get(name, [fixed] * 3))
        except (TypeError, ValueError):
            raise InputError(f"the profile of input {name!r} must be (min, opt, max), got {given[name]!r}") from None
        if any(len(s) != len(shape) for s in (lo, opt, hi)):
            raise InputError(f"profile {lo}, {opt}, {hi} of input {name!r}: {where} gives it rank {len(shape)}")
        for i, d in enumerate(fixed):
            if d is not None and not lo[i] == opt[i] == hi[i] == d:
                raise InputError(f"dimension {i} of input {name!r} is fixed at {d} in {where}; the profile gives "
                                 f"{lo[i]}/{opt[i]}/{hi[i]}")
        if not all(1 <= a <= b <= c for a, b, c in zip(lo, opt, hi)):
            raise InputError(f"profile of input {name!r} needs 1 <= min <= opt <= max; got {lo}, {opt}, {hi}")
        out[name] = (lo, opt, hi)
    return out


def engine_key(onnx_sha256: str, precision: str, profile: Mapping[str, Shapes], trt_version: str, gpu: str,
               compute_capability: str, **options: Any) -> dict[str, Any]:
    """An engine's cache key (the artifact cache hashes it): any field that changes names another engine."""
    return {"kind": "tensorrt", "onnx_sha256": onnx_sha256, "precision": precision, "tensorrt": trt_version,
            "profile": {k: [list(s) for s in v] for k, v in profile.items()}, "gpu": gpu,
            "compute_capability": compute_capability, **options}


class EngineFromOnnx:
    """Build step: ONNX → serialized TensorRT engine in the artifact cache (``step()`` returns the Artifact).

    ``onnx``: a path or a step returning an Artifact (``OnnxFromTorch``); ``profile``: ``{input: (min, opt, max)}``
    for every dynamic input; ``calibration``: feeds of one shape for implicit int8 calibration (TensorRT 10).
    """

    def __init__(self, onnx: str | Path | Callable[[], Artifact], precision: str = "fp32",
                 profile: Mapping[str, Sequence[Sequence[int]]] | None = None, *,
                 calibration: Sequence[Mapping[str, np.ndarray]] | None = None, cache: ArtifactCache | None = None,
                 workspace_bytes: int = 4 << 30, optimization_level: int | None = None) -> None:
        self.onnx, self.precision, self.profile = onnx, precision, dict(profile or {})
        self.calibration, self.cache = list(calibration or []), cache or ArtifactCache()
        self.workspace_bytes, self.optimization_level = int(workspace_bytes), optimization_level

    def __call__(self) -> Artifact:
        """The serialized engine from the cache, built from the ONNX (with the profile and any calibration) when
        missing."""
        trt, pt = require_tensorrt()
        path = Path(self.onnx().path if callable(self.onnx) else self.onnx)
        model = load_onnx(path, check=False)  # ArtifactError naming the file when it is missing or corrupt
        plan = precision_plan(self.precision, trt.__version__, has_qdq(model), where=str(path))
        profile = resolve_profile(onnx_inputs(model), self.profile, where=str(path))
        if plan.calibrate and not self.calibration:
            raise TensorRTError(f"int8 from {path} (no Q/DQ nodes) needs calibration feeds or a Q/DQ ONNX")
        if not torch.cuda.is_available():
            raise EngineUnavailable("TensorRT needs a CUDA GPU; none is visible (torch.cuda.is_available() is False)")
        gpu, cc = torch.cuda.get_device_name(), "{}.{}".format(*torch.cuda.get_device_capability())
        key = engine_key(file_sha256(path), self.precision, profile, trt.__version__, gpu, cc, plan=plan.note,
                         workspace=self.workspace_bytes, opt_level=self.optimization_level,
                         calibration=feeds_digest(self.calibration) if plan.calibrate else None)
        timing = self.cache.root / "tensorrt" / f"timing-{json_digest([trt.__version__, gpu, cc], 16)}.cache"
        return self.cache.get_or_build("tensorrt", f"{path.stem}.{self.precision}", key, ".engine",
                                       lambda tmp: self._build(tmp, path, trt, pt, plan, profile, timing))

    def _build(self, tmp: Path, path: Path, trt: ModuleType, pt: ModuleType, plan: Plan,
               profile: Mapping[str, Shapes], timing: Path) -> dict[str, Any]:
        """Parse and build with Polygraphy's loaders; failures name ``path`` and quote TensorRT."""
        profiles, calibrator = [pt.Profile({n: pt.ShapeTuple(*s) for n, s in profile.items()})], None
        if plan.calibrate:  # Polygraphy calibrates on the last profile: min = opt = max = the feeds' shape
            profiles.append(pt.Profile({n: pt.ShapeTuple(*[np.shape(a)] * 3) for n, a in self.calibration[0].items()}))
            calibrator = pt.Calibrator([{n: np.ascontiguousarray(a) for n, a in f.items()} for f in self.calibration])
        timing.parent.mkdir(parents=True, exist_ok=True)
        config = pt.CreateConfig(profiles=profiles, calibrator=calibrator, load_timing_cache=str(timing),
                                 memory_pool_limits={trt.MemoryPoolType.WORKSPACE: self.workspace_bytes},
                                 builder_optimization_level=self.optimization_level, **plan.flags)
        t0 = time.perf_counter()
        with trt_failure(f"TensorRT cannot parse {path}"):
            network = pt.NetworkFromOnnxPath(str(path), strongly_typed=plan.strongly_typed)()
        with trt_failure(f"TensorRT could not build an engine from {path} ({self.precision}, {plan.note})"):
            data = pt.EngineBytesFromNetwork(network, config, save_timing_cache=str(timing))()
        tmp.write_bytes(memoryview(data))
        return {"onnx": str(path), "plan": plan.note, "build_s": round(time.perf_counter() - t0, 3)}
