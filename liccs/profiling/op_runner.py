"""One call for any runner's operator profile (:func:`profile_runner`), and TensorRT's layer profile.

:func:`profile_runner` reads the runner's own file, threads and precision and hands them to the collector of its
backend (:mod:`.operators`: ONNX Runtime, OpenVINO, PyTorch); TensorRT gets a second runner of the same engine
with an ``IProfiler`` on its execution context (what ``trtexec --dumpProfile`` reads): each layer's time per
inference, laid end to end from the inference's start, with layer types and precisions from the engine inspector
where the engine was built with detailed profiling verbosity. (Written without a TensorRT machine at hand: its
test is marked ``tensorrt``.) Other runners (chains of engines) are refused with the reason.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any

import torch

from liccs.engines.base import Runner
from liccs.engines.chain import ChainRunner
from liccs.engines.openvino import OvRunner
from liccs.engines.ort import OrtRunner
from liccs.engines.tensorrt import TrtRunner
from liccs.engines.torch_engine import TorchRunner
from liccs.profiling.operators import (
    OperatorProfile,
    OperatorProfileUnavailable,
    profile_openvino,
    profile_ort,
    profile_torch,
    timed_runs,
)
from liccs.profiling.trace import OpEvent


def _trt_layers(engine: Any) -> dict[str, dict[str, Any]]:
    """Layer name → the engine inspector's record (``LayerType``, ``Precision``, ...), where it has them."""
    import tensorrt as trt

    out: dict[str, dict[str, Any]] = {}
    try:
        inspector = engine.create_engine_inspector()
        for i in range(engine.num_layers):
            info = json.loads(inspector.get_layer_information(i, trt.LayerInformationFormat.JSON))
            if isinstance(info, dict) and "Name" in info:
                out[str(info["Name"])] = info
    except (AttributeError, RuntimeError, TypeError, ValueError):  # an engine built without detailed verbosity
        return out
    return out


def profile_tensorrt(runner: TrtRunner, feed: Mapping[str, Any], *, iterations: int = 5, warmup: int = 1,
                     engine: str = "trt") -> OperatorProfile:
    """Layer times of ``runner``'s engine over ``iterations`` inferences, on a runner of its own (the profiler
    stays off the runner the stage timing uses)."""
    import tensorrt as trt

    times: list[tuple[str, float]] = []

    class _Layers(trt.IProfiler):
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            times.append((layer_name, ms))

    t = time.perf_counter()
    own = TrtRunner(runner.engine_source, name=f"{runner.name}:profile")
    own.activate()
    build_s = time.perf_counter() - t
    spec_precision = engine.removeprefix("trt-")
    try:
        layers = _trt_layers(own._runner.engine)
        own._runner.context.profiler = _Layers()
        events: list[OpEvent] = []
        spans: list[tuple[float, float]] = []
        t0 = time.perf_counter()

        def collect(i: int, start: float, ms: float) -> None:
            ts = (start - t0) * 1e6
            spans.append((ts, ms * 1e3))
            for name, layer_ms in times:
                info = layers.get(name, {})
                events.append(OpEvent(node=name, op_type=str(info.get("LayerType", "layer")), ts_us=ts,
                                      dur_us=layer_ms * 1e3, iteration=i, provider="TensorRT",
                                      precision=str(info.get("Precision", spec_precision)).lower()))
                ts += layer_ms * 1e3
            times.clear()

        for _ in range(warmup):
            own.infer(feed, check=False)
        times.clear()
        wall = timed_runs(lambda: own.infer(feed, check=False), 0, iterations, collect)
    finally:
        own.deactivate()
    return OperatorProfile(engine, events, spans, wall, [], build_s, synthetic_ts=True,
                           kind="TensorRT IProfiler (layer times)")


def profile_runner(runner: Runner, feed: Mapping[str, Any], *, iterations: int = 5, warmup: int = 1,
                   engine: str | None = None) -> OperatorProfile:
    """The operator profile of whatever ``runner`` runs, with its own file, threads and precision; raises
    :class:`OperatorProfileUnavailable` for a runner no profiler here reads (TensorRT, chains), saying why."""
    engine = engine or runner.name.split(":")[0]
    kw: dict[str, Any] = {"iterations": iterations, "warmup": warmup, "engine": engine}
    if isinstance(runner, TrtRunner):
        return profile_tensorrt(runner, feed, **kw)
    if isinstance(runner, TorchRunner) and runner.compile:
        raise OperatorProfileUnavailable(f"{engine}: a torch.compile'd module's operators are Inductor's generated "
                                         "kernels; profile the eager torch engine instead")
    if not isinstance(runner, OrtRunner | OvRunner | TorchRunner):
        hint = " (a chain of engines: profile each engine on its own)" if isinstance(runner, ChainRunner) else ""
        raise OperatorProfileUnavailable(f"{engine}: no per-operator profiler for a {type(runner).__name__}{hint}")
    if isinstance(runner, OrtRunner | OvRunner) and runner.path is None:
        with runner:  # resolves (builds) the file the runner runs; the profiler opens its own session
            pass
    if isinstance(runner, OrtRunner):
        return profile_ort(runner.path, feed, threads=runner.threads, spinning=runner.spinning,
                           providers=runner.providers, **kw)
    if isinstance(runner, OvRunner):
        return profile_openvino(runner.path, feed, threads=runner.threads, precision=runner.precision, **kw)
    args = [torch.as_tensor(feed[t.name]).to(runner.device) for t in runner.graph.inputs]
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(runner.precision)
    with torch.autocast(runner.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
        return profile_torch(runner.graph.module, args, precision=runner.precision, **kw)
