"""``trt-fp32``, ``trt-fp16``, ``trt-bf16``, ``trt-int8``: Polygraphy's ``TrtRunner`` behind liccs's Runner.

Numpy feeds give numpy outputs, torch feeds CUDA tensors. Polygraphy reuses its output buffers and runs on its own
stream: outputs are copied, and torch's stream is synchronized before CUDA feeds are read. Importing this module
imports neither tensorrt nor polygraphy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liccs.core.errors import InputError
from liccs.engines.arrays import wants_numpy
from liccs.engines.base import ENGINES, Array, EngineSpec, EngineUnavailable, Runner, TensorMeta
from liccs.export.errors import ArtifactError
from liccs.export.onnx import OnnxFromTorch
from liccs.export.tensorrt import INSTALL_HINT, PRECISIONS, EngineFromOnnx, require_tensorrt, trt_failure


class TrtRunner(Runner):
    """A TensorRT engine on the current GPU through Polygraphy's ``TrtRunner`` (profile 0). ``engine``: engine bytes,
    an engine file, or a step (:class:`EngineFromOnnx`) returning an Artifact or a path, called on activation."""

    def __init__(self, engine: bytes | str | Path | Callable[[], Any], name: str = "trt") -> None:
        super().__init__(name)
        self.engine_source, self.source, self._runner = engine, "<engine bytes>", None

    def _load(self) -> bytes:
        src = self.engine_source() if callable(self.engine_source) else self.engine_source
        if isinstance(src, (bytes, bytearray, memoryview)):
            return bytes(src)
        path = Path(getattr(src, "path", src))
        self.source = str(path)
        if not path.is_file() or not path.stat().st_size:
            raise ArtifactError(f"{self.name}: engine file {path} does not exist or is empty")
        return path.read_bytes()

    def activate_impl(self) -> None:
        """Load the engine (building it first when the source is a step) into Polygraphy's runner on the GPU."""
        _, pt = require_tensorrt()
        if not torch.cuda.is_available():
            raise EngineUnavailable(f"{self.name}: TensorRT needs a CUDA GPU; none is visible")
        data = self._load()
        with trt_failure(f"{self.name}: TensorRT cannot load engine {self.source} (truncated or corrupt, or built by "
                         f"another TensorRT or for another GPU: rebuild it from its ONNX)"):
            runner = pt.TrtRunner(pt.EngineFromBytes(data), name=self.name)
            runner.activate()
        self._runner = runner

    def get_input_metadata_impl(self) -> Mapping[str, TensorMeta]:
        """The engine's inputs, with profile 0's min and max shapes for the dynamic ones."""
        out = {}
        for name, meta in self._runner.get_input_metadata(use_numpy_dtypes=False).items():
            shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in meta.shape)
            b = self._runner.engine.get_tensor_profile_shape(name, 0) if None in shape else None  # (min, opt, max)
            lo, hi = (tuple(int(d) for d in b[0]), tuple(int(d) for d in b[2])) if b is not None else (None, None)
            out[name] = TensorMeta(meta.dtype.name, shape, lo, hi)
        return out

    def infer_impl(self, feed: dict[str, Array]) -> dict[str, Array]:
        """Run the engine on the feed; outputs copied (numpy arrays for a numpy feed, else torch tensors)."""
        if any(isinstance(v, torch.Tensor) and v.is_cuda for v in feed.values()):
            torch.cuda.current_stream().synchronize()  # Polygraphy reads the inputs on its own stream
        arrays = {k: np.ascontiguousarray(v) if isinstance(v, np.ndarray) else v.contiguous() for k, v in feed.items()}
        host = wants_numpy(feed)
        with trt_failure(f"{self.name}: TensorRT failed to run engine {self.source}"):
            out = self._runner.infer(arrays, check_inputs=False, copy_outputs_to_host=host)
        # Polygraphy's next call overwrites these buffers: hand out copies
        return {k: np.array(v, copy=True) if host else torch.as_tensor(v).clone() for k, v in out.items()}

    def deactivate_impl(self) -> None:  # called only after a successful activation
        """Deactivate Polygraphy's runner."""
        runner, self._runner = self._runner, None
        runner.deactivate()


#: Image sides a TensorRT profile covers by default: (min, opt, max), multiples of 64.
TRT_IMAGE_SIDES = (64, 512, 1024)
TRT_BATCH = (1, 1, 8)


def trt_profile(graph: Any, batch: tuple[int, int, int] = TRT_BATCH,
                sides: tuple[int, int, int] = TRT_IMAGE_SIDES) -> dict[str, list[tuple[int, ...]]]:
    """(min, opt, max) shapes of each input of ``graph``: ``batch``, and image ``sides`` divided by the stride."""
    prof = {}
    for t in graph.inputs:
        hw = [t.fixed_hw or (max(1, s // t.stride), max(1, s // t.stride)) for s in sides]
        prof[t.name] = [(b, t.channels, *s) for b, s in zip(batch, hw)]
    return prof


def _prepare(graph: Any, options: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """A liccs graph as TensorRT takes it: its exported ONNX file, and build options with a shape profile
    (:func:`trt_profile` unless ``profile`` is given); ONNX Runtime's settings (threads, spinning) are dropped."""
    opts = {k: v for k, v in options.items() if k not in ("threads", "spinning", "exporter")}
    onnx_path = OnnxFromTorch(graph, options.get("cache"), options.get("exporter", "auto"))().path
    opts["profile"] = opts.get("profile") or trt_profile(graph)
    return onnx_path, opts


def _runner_factory(precision: str) -> Callable[..., TrtRunner]:
    def make_runner(artifact: Any, *, name: str | None = None, profile: Mapping[str, Any] | None = None,
                    **build_options: Any) -> TrtRunner:
        """An ONNX file, or a step returning one, is built (:class:`EngineFromOnnx` with ``profile`` and
        ``build_options``); an engine file, engine bytes or an :class:`EngineFromOnnx` is loaded as it is."""
        name = name or f"trt-{precision}"
        if (callable(artifact) and not isinstance(artifact, EngineFromOnnx)) or \
                (isinstance(artifact, (str, Path)) and Path(artifact).suffix.lower() == ".onnx"):
            return TrtRunner(EngineFromOnnx(artifact, precision, profile, **build_options), name)
        if profile or build_options:
            raise InputError(f"{name}: a profile and build options apply to an ONNX file, not to {artifact!r}")
        return TrtRunner(artifact, name)

    return make_runner


for _precision in PRECISIONS:
    ENGINES.register(f"trt-{_precision}", EngineSpec(
        f"trt-{_precision}", "tensorrt", _precision, "cuda", _runner_factory(_precision),
        requires=("tensorrt", "polygraphy"), needs_cuda=True, install_hint=INSTALL_HINT, prepare=_prepare))
