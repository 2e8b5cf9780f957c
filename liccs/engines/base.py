"""The Runner interface (after Polygraphy's BaseRunner) and the registry of engine names.

A backend writes only the ``*_impl`` methods; the base class checks names, dtypes, ranks and static
dimensions of every feed once, against ``input_metadata()``, so every backend gives the same clear error.
Optional libraries (tensorrt, onnxruntime-gpu, ...) are imported inside their backend only.

Lifecycle (Polygraphy's contract): a runner is built inactive; ``activate()`` loads the model (session, compiled
model, engine) and ``deactivate()`` releases it; ``with runner:`` does both, also when the block raises.
``infer()``, ``check_feed()`` and ``input_metadata()`` on an inactive runner raise :class:`RunnerInactive` naming
it. ``activate()`` on an active runner and ``deactivate()`` on an inactive one are no-ops (so an owner may
activate a runner it was handed); a runner may be activated again after ``deactivate()``.
"""

from __future__ import annotations

import importlib.util
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from liccs.core import Registry, check_range, isa
from liccs.core.errors import EngineUnavailable, InputError, RunnerInactive  # noqa: F401  (EngineUnavailable re-exported)

Array = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class TensorMeta:
    """One input or output: dtype (numpy name, e.g. ``float32``) and shape (None = dynamic).

    ``min_shape``/``max_shape`` bound the dynamic dimensions where the engine has a shape profile
    (TensorRT); an input outside them is refused with the tensor's name. ``value_range`` (lo, hi), where
    set (images: (0, 1)), refuses values outside it and NaN: an image in [0, 255] would otherwise run and
    give a silently wrong output.
    """

    dtype: str
    shape: tuple[int | None, ...]
    min_shape: tuple[int, ...] | None = None
    max_shape: tuple[int, ...] | None = None
    value_range: tuple[float, float] | None = None


def _dtype_name(x: Array) -> str:
    if isinstance(x, torch.Tensor):
        return str(x.dtype).removeprefix("torch.")
    return np.dtype(x.dtype).name


def _check_range(runner: str, key: str, x: Array, bounds: tuple[float, float]) -> None:
    check_range(torch.as_tensor(x) if isinstance(x, np.ndarray) else x, f"{runner}: input {key!r}", bounds)


class Runner(ABC):
    """Runs one model on one engine: ``with runner: outputs = runner.infer({"x": array})``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_active = False
        self._input_meta: dict[str, TensorMeta] | None = None
        self.inference_time: float | None = None
        #: seconds its last activation took (loading, compiling, building the engine), None before one
        self.activate_s: float | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def activate(self) -> None:
        """Load the model on the engine (``activate_impl``) and read its input metadata; a no-op when active.

        If reading the metadata fails, what ``activate_impl`` acquired is released and the runner stays inactive."""
        if self.is_active:
            return
        t = time.perf_counter()
        self.activate_impl()
        try:
            self._input_meta = dict(self.get_input_metadata_impl())
        except BaseException:
            self.deactivate_impl()
            raise
        self.is_active = True
        self.activate_s = time.perf_counter() - t

    def deactivate(self) -> None:
        """Release the engine's resources (``deactivate_impl``); a no-op when inactive."""
        if self.is_active:
            try:
                self.deactivate_impl()
            finally:
                self.is_active = False
                self._input_meta = None

    def _require_active(self, what: str) -> None:
        if not self.is_active:
            raise RunnerInactive(f"runner {self.name!r} is not active: {what}() needs `with runner:` or "
                                 f"runner.activate() first")

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    # --- inference ---------------------------------------------------------------------------------
    def input_metadata(self) -> dict[str, TensorMeta]:
        """The inputs by name (dtype, shape, bounds); raises :class:`RunnerInactive` on an inactive runner."""
        self._require_active("input_metadata")
        assert self._input_meta is not None
        return self._input_meta

    def check_feed(self, feed: Mapping[str, Array]) -> None:
        """Raise :class:`InputError` naming the tensor when a feed does not fit the inputs (runner active)."""
        self._require_active("check_feed")
        meta = self.input_metadata()
        missing, extra = set(meta) - set(feed), set(feed) - set(meta)
        if missing or extra:
            raise InputError(f"{self.name}: inputs must be {sorted(meta)}; missing {sorted(missing)}, "
                             f"unexpected {sorted(extra)}")
        for key, value in feed.items():
            m = meta[key]
            if _dtype_name(value) != m.dtype:
                raise InputError(f"{self.name}: input {key!r} must be {m.dtype}, got {_dtype_name(value)}")
            shape = tuple(value.shape)
            if len(shape) != len(m.shape):
                raise InputError(f"{self.name}: input {key!r} must have rank {len(m.shape)} "
                                 f"(shape {m.shape}), got shape {shape}")
            for i, (got, want) in enumerate(zip(shape, m.shape)):
                if want is not None and want >= 0 and got != want:
                    raise InputError(f"{self.name}: input {key!r} dimension {i} must be {want}, got shape {shape}")
            if m.min_shape is not None and m.max_shape is not None:
                if any(g < lo or g > hi for g, lo, hi in zip(shape, m.min_shape, m.max_shape)):
                    raise InputError(f"{self.name}: input {key!r} shape {shape} is outside the engine's "
                                     f"profile {m.min_shape}..{m.max_shape}")
            if m.value_range is not None:
                _check_range(self.name, key, value, m.value_range)

    def infer(self, feed: Mapping[str, Array], check: bool = True) -> dict[str, Array]:
        """Run once; outputs by name. The wall time of the call is kept in ``inference_time``.

        Raises :class:`RunnerInactive` on an inactive runner."""
        self._require_active("infer")
        if check:
            self.check_feed(feed)
        t = time.perf_counter()
        out = self.infer_impl(dict(feed))
        self.inference_time = time.perf_counter() - t
        return out

    # --- for backends ------------------------------------------------------------------------------
    @abstractmethod
    def activate_impl(self) -> None:
        """Load the model on the engine (backends implement it)."""
        ...

    @abstractmethod
    def get_input_metadata_impl(self) -> Mapping[str, TensorMeta]:
        """The engine's inputs by name, read once after activation (backends implement it)."""
        ...

    @abstractmethod
    def infer_impl(self, feed: dict[str, Array]) -> dict[str, Array]:
        """Run once on a checked feed; outputs by name, in the kind of the feed (backends implement it)."""
        ...

    def deactivate_impl(self) -> None:  # noqa: B027 -- optional no-op hook; abstract would break Runners without it
        """Release what ``activate_impl`` acquired (default: nothing)."""


@dataclass(frozen=True)
class EngineSpec:
    """An engine name: its backend, precision and device, and what it needs to run.

    ``requires``: importable modules; ``needs_cuda``: a visible CUDA GPU; ``providers``: ONNX Runtime
    execution providers that must be available; ``native``: a precision this CPU must compute natively
    (``bf16``: AVX-512 BF16 or AMX-BF16, :mod:`liccs.core.isa`), else the engine is skipped with the CPU's reason
    rather than run emulated. ``make_runner(artifact, **kw)`` builds a :class:`Runner`. ``replica``: the files it
    runs (ONNX, OpenVINO IR) can be replayed differentiably (:mod:`liccs.engines.replica`,
    :mod:`liccs.engines.ov_replica`), so it can be the target of an engine-aware attack. ``prepare(graph, options)
    -> (artifact, options)``: how :func:`~liccs.engines.factory.runner_for` turns a liccs graph into what
    ``make_runner`` takes (None: the graph itself, with ``cache``, ``exporter`` and ``calibration``).
    ``fp32_twin``: the fp32 engine a deployed codec on this reduced-precision engine runs its entropy-table stages
    on, so that fp32 decoders pick the tables its encoder picked (:data:`liccs.engines.codec.TABLE_STAGES`).
    ``transposed``: the form a deployed codec exports its transposed convolutions in on this engine unless told
    otherwise (:mod:`liccs.export.phases`; OpenVINO's CPU plugin has no bf16 transposed-convolution kernel, so its
    bf16 engine runs them as four ordinary convolutions). ``emulated``: computes a precision's numerics on a CPU
    that lacks it (for quality and transfer, never timed: profiles and the per-stage choice leave it out).
    """

    name: str
    backend: str  # "torch" | "onnxruntime" | "tensorrt"
    precision: str  # "fp32" | "fp16" | "bf16" | "int8"
    device: str  # "cpu" | "cuda"
    make_runner: Callable[..., Runner]
    requires: tuple[str, ...] = ()
    needs_cuda: bool = False
    providers: tuple[str, ...] = ()
    install_hint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    native: str = ""
    replica: bool = False
    prepare: Callable[[Any, dict[str, Any]], tuple[Any, dict[str, Any]]] | None = None
    fp32_twin: str = ""
    transposed: str = "native"
    emulated: bool = False

    def unavailable_reason(self) -> str | None:
        """None when this machine can run the engine, else why not and what to install."""
        for mod in self.requires:
            if importlib.util.find_spec(mod) is None:
                return f"engine {self.name} needs the Python package {mod!r}; {self.install_hint}".rstrip("; ")
        if self.needs_cuda and not torch.cuda.is_available():
            return f"engine {self.name} needs a CUDA GPU; none is visible (torch.cuda.is_available() is False)"
        if self.native and (why := isa.this_cpu().missing(self.native)):
            return f"engine {self.name} is skipped: {why}"
        if self.providers:
            import onnxruntime as ort

            have = set(ort.get_available_providers())
            lacking = [p for p in self.providers if p not in have]
            if lacking:
                return (f"engine {self.name} needs ONNX Runtime's {', '.join(lacking)} (this onnxruntime has "
                        f"{', '.join(sorted(have))}); {self.install_hint}").rstrip("; ")
        return None

    @property
    def available(self) -> bool:
        """Whether this machine can run the engine (no :meth:`unavailable_reason`)."""
        return self.unavailable_reason() is None


ENGINES: Registry[EngineSpec] = Registry("engine")


def get_engine(name: str) -> EngineSpec:
    """The engine of ``name``; raises :class:`EngineUnavailable` (why, what to install) if it cannot run here."""
    spec = ENGINES.get(name)
    reason = spec.unavailable_reason()
    if reason:
        raise EngineUnavailable(reason)
    return spec


def available_engines() -> list[str]:
    """Registered engine names this machine can run."""
    return [n for n in ENGINES.names() if ENGINES.get(n).available]
