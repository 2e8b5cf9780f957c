"""TensorRT runner: a serialized engine bound to torch CUDA tensors (no pycuda), and the ``trt-*`` engine names.

Follows the name-based I/O API of TensorRT 10.x, unchanged in 11.x: ``num_io_tensors``, ``get_tensor_name``,
``get_tensor_mode``, ``get_tensor_dtype``, ``get_tensor_profile_shape``; per call ``set_input_shape``, then
``get_tensor_shape`` for the outputs, ``set_tensor_address(name, tensor.data_ptr())`` and
``execute_async_v3(torch.cuda.current_stream().cuda_stream)`` (a side stream when the current one is the
legacy default stream). Importing this module does not import tensorrt. None of it has run against a real
TensorRT on the machine it was written on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liccs.engines.base import ENGINES, Array, EngineSpec, EngineUnavailable, Runner, TensorMeta
from liccs.errors import InputError
from liccs.export.tensorrt import (
    INSTALL_HINT,
    PRECISIONS,
    EngineFromOnnx,
    EngineFromPath,
    TensorRTError,
    deserialize_engine,
    import_tensorrt,
    make_logger,
)

#: ``trt.DataType`` member names → torch dtypes (the types an engine's I/O tensors can have).
TRT_TO_TORCH: dict[str, torch.dtype] = {
    "FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT8": torch.int8,
    "INT32": torch.int32, "INT64": torch.int64, "BOOL": torch.bool, "UINT8": torch.uint8,
    "FP8": torch.float8_e4m3fn,
}
TORCH_TO_TRT: dict[torch.dtype, str] = {v: k for k, v in TRT_TO_TORCH.items()}

EngineSource = bytes | str | Path | Callable[[], bytes]


def torch_dtype(trt_dtype: Any) -> torch.dtype:
    """The torch dtype of a ``trt.DataType`` (matched by member name, so it works on any TensorRT version)."""
    name = getattr(trt_dtype, "name", str(trt_dtype)).split(".")[-1]
    try:
        return TRT_TO_TORCH[name]
    except KeyError:
        raise TensorRTError(f"TensorRT data type {name} has no torch equivalent here; "
                            f"known: {sorted(TRT_TO_TORCH)}") from None


def tensor_meta(dtype: torch.dtype, shape: Sequence[int], profile: Sequence[Sequence[int]] | None = None) -> TensorMeta:
    """TensorMeta of an engine input: -1 dims become None, bounded by the profile's (min, opt, max) shapes."""
    dims = tuple(None if int(d) < 0 else int(d) for d in shape)
    name = str(dtype).removeprefix("torch.")
    if all(d is not None for d in dims):
        return TensorMeta(name, dims)
    if profile is None:
        raise TensorRTError(f"input of shape {shape} is dynamic but the engine reports no profile for it")
    lo, _, hi = profile
    return TensorMeta(name, dims, tuple(int(d) for d in lo), tuple(int(d) for d in hi))


def _to_device(value: Array, device: torch.device) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    return value.to(device).contiguous()


class TrtRunner(Runner):
    """Runs a serialized TensorRT engine on the current CUDA device and torch's current stream.

    ``engine`` is engine bytes, an engine file path, or a build step such as :class:`EngineFromOnnx`
    (called at activation). Numpy feeds give numpy outputs (bf16 as float32); torch feeds give CUDA tensors.
    Profile 0 is used; a shape outside it is refused by ``check_feed`` with the tensor's name.
    """

    def __init__(self, engine: EngineSource, name: str = "trt") -> None:
        super().__init__(name)
        self._engine_source = engine
        self._engine: Any = None
        self._context: Any = None
        self._stream: torch.cuda.Stream | None = None

    def _load(self) -> bytes:
        src = self._engine_source
        if isinstance(src, (str, Path)):
            return EngineFromPath(src)()
        if isinstance(src, (bytes, bytearray, memoryview)):
            return bytes(src) if not isinstance(src, bytes) else src
        if callable(src):
            return src()
        raise InputError(f"{self.name}: engine must be bytes, a path or a build step, got {type(src).__name__}")

    def activate_impl(self) -> None:
        trt = import_tensorrt(need_builder=False)
        if not torch.cuda.is_available():
            raise EngineUnavailable(f"{self.name}: TensorRT needs a CUDA GPU; none is visible")
        blob = self._load()
        self.source = getattr(blob, "source", "<engine bytes>")
        self._logger = make_logger(trt)  # must outlive the runtime and the engine
        self._runtime = trt.Runtime(self._logger)
        self._engine = deserialize_engine(trt, self._runtime, self._logger.collector, blob, self.source)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise TensorRTError(f"{self.name}: no execution context for engine {self.source}: "
                                f"{self._logger.collector.summary()}")
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._dtypes = {n: torch_dtype(self._engine.get_tensor_dtype(n)) for n in names}

    def get_input_metadata_impl(self) -> Mapping[str, TensorMeta]:
        out: dict[str, TensorMeta] = {}
        for n in self._inputs:
            shape = tuple(self._engine.get_tensor_shape(n))
            profile = self._engine.get_tensor_profile_shape(n, 0) if any(int(d) < 0 for d in shape) else None
            out[n] = tensor_meta(self._dtypes[n], shape, profile)
        return out

    def infer_impl(self, feed: dict[str, Array]) -> dict[str, Array]:
        device = torch.device("cuda", torch.cuda.current_device())
        caller = torch.cuda.current_stream(device)
        # TensorRT warns about, and synchronizes extra on, the legacy default stream: use our own stream then,
        # ordered after the caller's work.
        stream = caller if caller.cuda_stream != 0 else self._side_stream(device)
        if stream is not caller:
            stream.wait_stream(caller)
        collector = self._logger.collector
        collector.clear()
        held: list[torch.Tensor] = []  # keeps the inputs alive until the stream is done
        outputs: dict[str, torch.Tensor] = {}
        with torch.cuda.stream(stream):
            for n in self._inputs:
                t = _to_device(feed[n], device)
                if t.dtype != self._dtypes[n]:  # check=False skips the base checks; never hand TensorRT wrong bytes
                    raise InputError(f"{self.name}: input {n!r} must be {self._dtypes[n]}, got {t.dtype}")
                if not self._context.set_input_shape(n, tuple(t.shape)):
                    raise InputError(f"{self.name}: TensorRT refused shape {tuple(t.shape)} for input {n!r} of "
                                     f"engine {self.source}: {collector.summary()}")
                self._context.set_tensor_address(n, t.data_ptr())
                held.append(t)
            for n in self._outputs:
                shape = tuple(int(d) for d in self._context.get_tensor_shape(n))
                if any(d < 0 for d in shape):
                    raise TensorRTError(f"{self.name}: output {n!r} of engine {self.source} has a data-dependent "
                                        f"shape {shape}; this runner does not support such outputs")
                outputs[n] = torch.empty(shape, dtype=self._dtypes[n], device=device)
                self._context.set_tensor_address(n, outputs[n].data_ptr())
            if not self._context.execute_async_v3(torch.cuda.current_stream(device).cuda_stream):
                raise TensorRTError(f"{self.name}: TensorRT failed to run engine {self.source}: {collector.summary()}")
        stream.synchronize()
        if any(isinstance(v, np.ndarray) for v in feed.values()):
            return {n: (o.float() if o.dtype == torch.bfloat16 else o).cpu().numpy() for n, o in outputs.items()}
        if stream is not caller:
            for o in outputs.values():
                o.record_stream(caller)  # the caller's later work on them must finish before their memory is reused
        return dict(outputs)

    def _side_stream(self, device: torch.device) -> torch.cuda.Stream:
        if self._stream is None:
            self._stream = torch.cuda.Stream(device)
        return self._stream

    def deactivate_impl(self) -> None:
        self._context = None  # the context before the engine, the engine before the runtime
        self._engine = None
        self._runtime = None
        self._stream = None


def _runner_factory(precision: str) -> Callable[..., TrtRunner]:
    def make_runner(artifact: Any, *, name: str | None = None, profile: Mapping[str, Any] | None = None,
                    **build_options: Any) -> TrtRunner:
        """An ONNX path is built at ``precision`` (``profile``, ``build_options`` → EngineFromOnnx); else loaded."""
        if isinstance(artifact, (str, Path)) and Path(artifact).suffix.lower() == ".onnx":
            source: Any = EngineFromOnnx(artifact, precision, profile, **build_options)
        elif profile or build_options:
            raise InputError(f"trt-{precision}: profile and build options apply to an ONNX file, not to {artifact!r}")
        else:
            source = artifact
        return TrtRunner(source, name=name or f"trt-{precision}")

    return make_runner


for _precision in PRECISIONS:
    ENGINES.register(f"trt-{_precision}", EngineSpec(
        name=f"trt-{_precision}", backend="tensorrt", precision=_precision, device="cuda",
        make_runner=_runner_factory(_precision), requires=("tensorrt",), needs_cuda=True, install_hint=INSTALL_HINT))
