"""Device helpers of the timer: synchronization, CUDA-graph capture, copies, peak memory, the environment."""

from __future__ import annotations

import platform
import re
import resource
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from liccs.core.errors import InputError
from liccs.core.manifest import device_info

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
MIB = 2**20


def _status_kib(key: str) -> int | None:
    try:
        m = re.search(rf"^{key}:\s+(\d+)\s+kB", _STATUS.read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM) of this process; False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _ru_maxrss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MIB if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


class MemoryWatch:
    """Peak host RSS (and torch's CUDA peak on a GPU) between :meth:`start` and :meth:`stop`.

    On Linux the RSS high-water mark is reset at start (``/proc/self/clear_refs``), so the peak is the
    measurement's own (``peak_rss_scope = "measurement"``); elsewhere it is the process's lifetime peak
    (``"process"``). The device peak is what torch's caching allocator handed out
    (``max_memory_allocated``) and reserved; memory that other libraries (ONNX Runtime, TensorRT)
    allocate themselves is not in it.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.scope = "process"

    def start(self) -> None:
        """Start a measurement: reset the RSS high-water mark where possible, and torch's CUDA peak on a GPU."""
        self.scope = "measurement" if _reset_peak_rss() and _status_kib("VmHWM") is not None else "process"
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def stop(self) -> dict[str, Any]:
        """The peaks since :meth:`start` in MiB: host RSS (and its scope), and on a GPU torch's allocated and
        reserved."""
        hwm = _status_kib("VmHWM") if self.scope == "measurement" else None
        out: dict[str, Any] = {
            "peak_rss_mib": hwm / 1024 if hwm is not None else _ru_maxrss_mib(),
            "peak_rss_scope": self.scope,
            "peak_device_mib": None,
            "peak_device_reserved_mib": None,
        }
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            out["peak_device_mib"] = torch.cuda.max_memory_allocated(self.device) / MIB
            out["peak_device_reserved_mib"] = torch.cuda.max_memory_reserved(self.device) / MIB
        return out


def environment() -> dict[str, Any]:
    """Where a timing came from: CPU/GPU (ISA included), threads, Python and torch versions (a flat dict; the
    engines' view of the CPU is the manifest's)."""
    return {**device_info(engines=False), "python": platform.python_version(), "torch": torch.__version__}


def _noop() -> None:
    return None


def default_sync(device: torch.device) -> Callable[[], None]:
    """What to wait on before reading the host clock: the device, or CUDA if this process touched it."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    # A CPU measurement in a process that has touched CUDA still waits for the GPU: never time a launch.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.synchronize
    return _noop


def to_device(obj: Any, device: torch.device, non_blocking: bool) -> Any:
    """``obj`` (tensors, nested in dicts/lists/tuples) on ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device, non_blocking) for v in obj)
    return obj


def cuda_graph_replay(fn: Callable[[], Any], device: str | torch.device = "cuda", warmup: int = 3) -> Callable[[], Any]:
    """Capture ``fn`` (torch work on static CUDA tensors) into a CUDA graph; returns a replay function.

    The replay returns the graph's static outputs (overwritten by the next replay). Inputs must be
    updated in place (``static.copy_(new)``) for a replay to see new data.
    """
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        raise InputError(f"CUDA-graph replay needs a CUDA device, got {device!r} "
                         f"(cuda available: {torch.cuda.is_available()})")
    side = torch.cuda.Stream(dev)
    side.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream(dev).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = fn()

    def replay() -> Any:
        graph.replay()
        return static_out

    replay.graph = graph  # type: ignore[attr-defined]  # keep the graph alive with its replay
    return replay
