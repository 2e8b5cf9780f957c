"""Per-operator profiles of one stage on one engine: what each operator call took, where and in what precision.

- ONNX Runtime (``ort-cpu``, ``ort-cpu-int8``, ...): a session of the runner's file with ``enable_profiling``;
  its ``end_profiling()`` JSON has one ``Node`` event per kernel call (op type, provider, input shapes) and one
  ``model_run`` per run.
- OpenVINO (``ov-cpu``, ``ov-cpu-int8``): the runner's model compiled with ``PERF_COUNT`` at the feed's static
  shapes; ``InferRequest.get_profiling_info()`` after every inference gives each executed node's time and
  ``exec_type`` (the kernel and the precision it ran in). The counters carry durations only: the events are laid
  end to end from the inference's start (the trace says so).
- PyTorch (``torch``): :mod:`torch.profiler` around each call; the operators are the aten calls directly under
  the iteration (their children, the kernels they dispatch to, are inside them).
- TensorRT, and one call for any runner: :mod:`.op_runner`.

Each profile builds its own session, compiled model or profiler next to the runner's (same file, threads and
precision), so the runner the stage timing used is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from liccs.core.errors import LiccsError
from liccs.engines.arrays import to_numpy
from liccs.profiling.trace import OpEvent

#: ONNX Runtime's tensor type names → a short precision name
_ORT_DTYPES = {"float": "fp32", "float16": "fp16", "bfloat16": "bf16", "double": "fp64", "uint8": "u8",
               "int8": "i8", "int32": "i32", "int64": "i64", "bool": "bool"}


_TORCH_DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


class OperatorProfileUnavailable(LiccsError):
    """A runner whose operators cannot be profiled here; the message says why."""


@dataclass
class OperatorProfile:
    """One stage's operator calls over ``iterations`` runs on ``engine``.

    ``events``: every operator call; ``spans``: each iteration's (start, duration) µs on the events' clock;
    ``wall_ms``: each iteration's wall time around the call; ``inside_ms``: each iteration's time inside the
    engine's run where the engine reports it (ONNX Runtime's ``model_run``), else empty; ``build_s``: the
    time to build the profiled session or compiled model; ``synthetic_ts``: the events' starts are laid end to end
    from the durations (OpenVINO); ``kind``: what the profiler is."""

    engine: str
    events: list[OpEvent]
    spans: list[tuple[float, float]]
    wall_ms: list[float]
    inside_ms: list[float] = field(default_factory=list)
    build_s: float = float("nan")
    synthetic_ts: bool = False
    kind: str = ""

    @property
    def iterations(self) -> int:
        """The number of profiled runs."""
        return len(self.wall_ms)


def _numpy_feed(feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(to_numpy(v)) for k, v in feed.items()}


def timed_runs(fn: Callable[[], Any], warmup: int, iterations: int,
           after: Callable[[int, float, float], None] | None = None) -> list[float]:
    """Run ``fn`` ``warmup`` times, then ``iterations`` times; each timed run's ms (``after(i, start_s, ms)``)."""
    for _ in range(warmup):
        fn()
    out = []
    for i in range(iterations):
        t = time.perf_counter()
        fn()
        ms = (time.perf_counter() - t) * 1e3
        out.append(ms)
        if after is not None:
            after(i, t, ms)
    return out


def ort_precision(args: Mapping[str, Any]) -> str:
    """The precision an ONNX Runtime kernel ran in: its first input's element type (``u8`` for a QLinearConv)."""
    shapes = args.get("input_type_shape") or [{}]
    dtype = next(iter(shapes[0]), "") if shapes and isinstance(shapes[0], dict) else ""
    return _ORT_DTYPES.get(dtype, dtype)


def onnx_weight_shapes(path: str | Path) -> dict[str, list[int]]:
    """The weight shape of each node of an ONNX file whose second input is an initializer (ONNX Runtime's
    profile leaves out the pre-packed weights of some kernels, ConvTranspose's among them)."""
    model = onnx.load(str(path), load_external_data=False)
    dims = {t.name: list(t.dims) for t in model.graph.initializer}
    for n in model.graph.node:  # a Q/DQ graph's weights: the DequantizeLinear of an int8 initializer
        if n.op_type == "DequantizeLinear" and n.input[0] in dims:
            dims[n.output[0]] = dims[n.input[0]]
    return {n.name: dims[n.input[1]] for n in model.graph.node if len(n.input) > 1 and n.input[1] in dims}


def _graph_node(event: str, nodes: Mapping[str, Any]) -> str | None:
    """The ONNX node an ONNX Runtime kernel event stands for: its name, or the name before the suffix a graph
    transform added (``/0/Conv_token_1`` → ``/0/Conv``); None when neither is a node of the file."""
    name = event.removesuffix("_kernel_time")
    base = re.sub(r"(_token_\d+|_nchwc|_nhwc|_fused)+$", "", name)
    return name if name in nodes else base if base in nodes else None


def profile_ort(path: str | Path, feed: Mapping[str, Any], *, iterations: int = 5, warmup: int = 1,
                threads: int = 0, spinning: bool = True, providers: Sequence[Any] = ("CPUExecutionProvider",),
                engine: str = "ort-cpu") -> OperatorProfile:
    """Operator calls of an ONNX file in ONNX Runtime (the warm-up runs are dropped from the profile)."""
    import onnxruntime as ort

    arrays = _numpy_feed(feed)
    with tempfile.TemporaryDirectory(prefix="liccs-ort-prof-") as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        if not spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        t = time.perf_counter()
        session = ort.InferenceSession(str(path), opts, providers=list(providers))
        build_s = time.perf_counter() - t
        wall = timed_runs(lambda: session.run(None, arrays), warmup, iterations)
        raw = json.loads(Path(session.end_profiling()).read_text())
    runs = sorted((e for e in raw if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])[warmup:]
    if len(runs) != iterations:
        raise OperatorProfileUnavailable(f"{engine}: ONNX Runtime's profile has {len(runs)} timed runs, expected "
                                         f"{iterations}")
    weights = onnx_weight_shapes(path)
    threads_seen: dict[Any, int] = {}
    events = []
    for e in sorted((e for e in raw if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")),
                    key=lambda e: e["ts"]):
        it = next((i for i, r in enumerate(runs) if r["ts"] <= e["ts"] <= r["ts"] + r["dur"]), None)
        if it is None:  # a warm-up run
            continue
        args = e.get("args", {})
        events.append(OpEvent(node=e["name"].removesuffix("_kernel_time"), op_type=args.get("op_name", "?"),
                              ts_us=float(e["ts"]), dur_us=float(e["dur"]), iteration=it,
                              precision=ort_precision(args), provider=args.get("provider", ""),
                              tid=threads_seen.setdefault(e.get("tid"), len(threads_seen)),
                              args={k: args[k] for k in ("input_type_shape", "output_type_shape") if k in args}
                              | ({"weight_shape": weights[w]} if (w := _graph_node(e["name"], weights)) else {})))
    return OperatorProfile(engine, events, [(float(r["ts"]), float(r["dur"])) for r in runs], wall,
                           [r["dur"] / 1e3 for r in runs], build_s, kind="onnxruntime session profiling")


def _ov_any(info: Any, key: str) -> str:
    try:
        value = info[key]
    except (KeyError, RuntimeError, IndexError):
        return ""
    return str(value.astype(str) if hasattr(value, "astype") else value)


def ov_precision(exec_type: str) -> str:
    """The precision of an OpenVINO CPU kernel from its ``exec_type`` (``brgconv_avx2_I8`` → ``i8``)."""
    tail = exec_type.rsplit("_", 1)[-1].lower()
    return {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "i8": "i8", "u8": "u8", "i32": "i32"}.get(tail, tail)


def ov_flops(model: Any) -> dict[str, int]:
    """FLOPs (2 per multiply-add) of each convolution and matmul of an OpenVINO model with static shapes, by
    friendly name (the names a compiled model's ``originalLayersNames`` list)."""
    out = {}
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData",
                        "MatMul") or not all(op.input(i).get_partial_shape().is_static for i in range(2)):
            continue
        x, w = (list(op.input(i).get_shape()) for i in range(2))
        y = list(op.output(0).get_shape())
        if kind == "MatMul":
            k = x[-1] if not op.get_transpose_a() else x[-2]
            out[op.get_friendly_name()] = 2 * int(np.prod(y)) * int(k)
        elif kind.endswith("BackpropData"):  # weight [(G,) C_in, C_out/G, kh, kw]: every input pixel × a kernel
            out[op.get_friendly_name()] = 2 * int(np.prod(x)) * int(np.prod(w[2 if kind.startswith("Group") else 1:]))
        else:  # weight [(G,) C_out, C_in/G, kh, kw]: every output pixel × a kernel
            per_out = np.prod(w[2:]) if kind.startswith("Group") else np.prod(w[1:])
            out[op.get_friendly_name()] = 2 * int(np.prod(y)) * int(per_out)
    return out


def profile_openvino(path: str | Path, feed: Mapping[str, Any], *, iterations: int = 5, warmup: int = 1,
                     threads: int = 0, precision: str | None = "f32", engine: str = "ov-cpu") -> OperatorProfile:
    """Operator calls of an ONNX or IR file compiled by OpenVINO for the CPU, at the feed's static shapes."""
    import openvino as ov

    arrays = _numpy_feed(feed)
    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({p.get_any_name(): list(arrays[p.get_any_name()].shape) for p in model.inputs})
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True}
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = threads
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    t = time.perf_counter()
    compiled = core.compile_model(model, "CPU", config)
    build_s = time.perf_counter() - t
    request = compiled.create_infer_request()
    flops = ov_flops(model)
    types, node_flops = {}, {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info, name = op.get_rt_info(), op.get_friendly_name()
        types[name] = _ov_any(info, "layerType")
        node_flops[name] = sum(flops.get(n, 0) for n in _ov_any(info, "originalLayersNames").split(","))
    events: list[OpEvent] = []
    t0 = time.perf_counter()
    spans: list[tuple[float, float]] = []

    def collect(i: int, start: float, ms: float) -> None:
        ts = (start - t0) * 1e6
        spans.append((ts, ms * 1e3))
        for p in request.get_profiling_info():
            if not str(p.status).endswith("EXECUTED"):  # NOT_RUN, OPTIMIZED_OUT: no call
                continue
            dur = p.real_time.total_seconds() * 1e6
            events.append(OpEvent(node=p.node_name, op_type=types.get(p.node_name) or p.node_type, ts_us=ts,
                                  dur_us=dur, iteration=i, precision=ov_precision(p.exec_type), provider="CPU",
                                  args={"exec_type": p.exec_type, "flops": node_flops.get(p.node_name, 0)}))
            ts += dur

    wall = timed_runs(lambda: request.infer(arrays), warmup, iterations, collect)
    return OperatorProfile(engine, events, spans, wall, [], build_s, synthetic_ts=True,
                           kind="OpenVINO performance counters (PERF_COUNT)")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null: the profiler's C++ start/stop lines (``USDT: ... profiler_start``, a failed
    GPU count on a CPU machine) are not the user's business."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def profile_torch(module: torch.nn.Module, args: Sequence[torch.Tensor], *, iterations: int = 5, warmup: int = 1,
                  engine: str = "torch", precision: str | None = None) -> OperatorProfile:
    """Operator calls of ``module(*args)`` under :mod:`torch.profiler` (the aten calls the module makes directly;
    a node is the op and its call index within the iteration, ``aten::conv2d#3``). On CUDA an operator's time is
    the device time of the kernels it launched, where longer than its time on the host. ``precision``: the label
    of what ran (an autocast dtype; default the inputs' dtype)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args and args[0].is_cuda else [])
    module = module.eval()
    with torch.no_grad():
        for _ in range(warmup):
            module(*args)
        wall = []
        prof = profile(activities=activities, record_shapes=True, with_flops=True)
        with _quiet_stderr():
            prof.start()
        try:
            for _ in range(iterations):
                t = time.perf_counter()
                with record_function("liccs.iteration"):
                    module(*args)
                    if args and args[0].is_cuda:
                        torch.cuda.synchronize()
                wall.append((time.perf_counter() - t) * 1e3)
        finally:
            with _quiet_stderr():
                prof.stop()
    roots = sorted((e for e in prof.events() if e.name == "liccs.iteration" and e.cpu_parent is None),
                   key=lambda e: e.time_range.start)
    events = []
    threads_seen: dict[int, int] = {}
    cuda = bool(args) and args[0].is_cuda
    label = precision or (_TORCH_DTYPES.get(args[0].dtype, str(args[0].dtype)) if args else "")
    for i, root in enumerate(roots):
        seen: dict[str, int] = {}
        for e in sorted(root.cpu_children, key=lambda e: e.time_range.start):
            k = seen[e.name] = seen.get(e.name, -1) + 1
            shapes = [list(s) for s in (e.input_shapes or [])]
            host = float(e.time_range.end - e.time_range.start)
            device = float(getattr(e, "device_time_total", 0) or 0) if cuda else 0.0
            events.append(OpEvent(node=f"{e.name}#{k}", op_type=e.name, ts_us=float(e.time_range.start),
                                  dur_us=max(host, device), iteration=i, precision=label,
                                  provider=args[0].device.type if args else "cpu",
                                  tid=threads_seen.setdefault(e.thread, len(threads_seen)),
                                  args={"input_shapes": shapes, "profiler_flops": int(e.flops or 0)}))
    spans = [(float(r.time_range.start), float(r.time_range.end - r.time_range.start)) for r in roots]
    return OperatorProfile(engine, events, spans, wall, [s[1] / 1e3 for s in spans], 0.0, kind="torch.profiler")
