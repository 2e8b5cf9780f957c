"""Latency tracking with trtexec's discipline: warm-up, at least N iterations *and* T seconds, percentiles.

On a GPU every region is bracketed by CUDA events recorded on the current stream and read after the
iteration's end event has completed; elsewhere (or with ``cuda_events=False``) the region is timed with
``perf_counter`` *after* a synchronization on both sides, so an asynchronous call is never timed by its
launch. Regions let a caller time host→device copies, compute and device→host copies apart::

    def step(t: Tracker) -> None:
        with t.region("h2d"):
            x_dev = x.to("cuda", non_blocking=True)
        with t.region("compute"):
            y = model(x_dev)
        with t.region("d2h"):
            y.cpu()

    result = measure_step(step, TimerConfig(device="cuda"), batch_size=8, image_shape=(256, 256))

Every iteration also records the ``total`` region (the whole step, gaps included); throughput is computed
from its mean. :func:`measure` times a zero-argument callable; :func:`measure_copy_compute` is the
three-region step above for a torch callable, with optional CUDA-graph replay of the compute;
:func:`measure_interleaved` times several callables in alternation (to compare them on a shared CPU).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from liccs.core.errors import InputError
from liccs.core.progress import tqdm
from liccs.profiling.device import MemoryWatch, cuda_graph_replay, default_sync, environment, to_device

TOTAL = "total"


@dataclass(frozen=True)
class TimerConfig:
    """How long to measure.

    Args:
        warmup: untimed iterations first (lazy init, autotuning, caches).
        min_iters: at least this many timed iterations ...
        min_duration_s: ... and at least this many seconds of timed iterations (both must be met).
        max_iters: stop here even if ``min_duration_s`` is not reached.
        device: ``cpu`` or ``cuda[:N]``: where the timed work runs.
        cuda_events: on a GPU, time with CUDA events (False: ``perf_counter`` after device synchronize,
            needed when the work runs on a stream other than torch's current one without syncing).
        cuda_graph: replay the callable as a CUDA graph (torch callables on static CUDA inputs only).
    """

    warmup: int = 5
    min_iters: int = 10
    min_duration_s: float = 1.0
    max_iters: int = 100_000
    device: str = "cpu"
    cuda_events: bool = True
    cuda_graph: bool = False

    def __post_init__(self) -> None:
        for key, low in (("warmup", 0), ("min_iters", 1), ("max_iters", 1)):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InputError(f"TimerConfig.{key} must be an int >= {low}, got {value!r}")
        if self.max_iters < self.min_iters:
            raise InputError(f"TimerConfig.max_iters ({self.max_iters}) < min_iters ({self.min_iters})")
        if not (isinstance(self.min_duration_s, (int, float)) and self.min_duration_s >= 0):
            raise InputError(f"TimerConfig.min_duration_s must be a number >= 0, got {self.min_duration_s!r}")
        kind = str(self.device).partition(":")[0]
        if kind not in ("cpu", "cuda"):
            raise InputError(f"TimerConfig.device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.cuda_graph and kind != "cuda":
            raise InputError("TimerConfig.cuda_graph needs device='cuda'")


@dataclass(frozen=True)
class Stats:
    """Summary of one region's samples, in seconds."""

    n: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float

    @classmethod
    def from_samples(cls, samples: list[float] | np.ndarray) -> Stats:
        """Percentiles by linear interpolation (numpy's default); std with ddof=1 (0 for one sample)."""
        a = np.asarray(samples, dtype=np.float64)
        if a.size == 0:
            raise InputError("no samples to summarize")
        p50, p90, p95, p99 = np.percentile(a, [50, 90, 95, 99])
        std = float(a.std(ddof=1)) if a.size > 1 else 0.0
        return cls(int(a.size), float(a.mean()), std, float(a.min()), float(p50), float(p90), float(p95),
                   float(p99), float(a.max()))

    def ms(self, prefix: str = "") -> dict[str, float]:
        """``{prefix}p50_ms`` etc., in milliseconds (``n`` as is)."""
        out: dict[str, float] = {f"{prefix}n": self.n}
        for k in ("mean", "std", "min", "p50", "p90", "p95", "p99", "max"):
            out[f"{prefix}{k}_ms"] = getattr(self, k) * 1e3
        return out


class Tracker:
    """Times named regions; :meth:`iteration` closes one iteration and books its samples.

    A region used several times within one iteration is summed for that iteration.
    """

    def __init__(self, device: str = "cpu", *, cuda_events: bool = True, sync: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.device = torch.device(device)
        self.use_events = self.device.type == "cuda" and cuda_events
        self.sync = sync or default_sync(self.device)
        self.clock = clock
        self.recording = True
        self.samples: dict[str, list[float]] = {}
        self._pending: list[tuple[str, Any, Any]] = []

    @property
    def method(self) -> str:
        """How regions are timed: ``cuda-events`` or ``perf_counter+sync``."""
        return "cuda-events" if self.use_events else "perf_counter+sync"

    @contextlib.contextmanager
    def region(self, name: str) -> Iterator[None]:
        """Time the body as region ``name``."""
        if self.use_events:
            stream = torch.cuda.current_stream(self.device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            yield
            end.record(stream)
        else:
            self.sync()
            start = self.clock()
            yield
            self.sync()
            end = self.clock()
        self._pending.append((name, start, end))

    @contextlib.contextmanager
    def iteration(self) -> Iterator[None]:
        """One iteration: the body is the ``total`` region; samples are booked when it ends."""
        with self.region(TOTAL):
            yield
        self._book()

    def _book(self) -> None:
        if self.use_events:
            for _, _, end in self._pending:  # regions may sit on other streams than the total's
                end.synchronize()
        per_iter: dict[str, float] = {}
        for name, start, end in self._pending:
            dt = start.elapsed_time(end) / 1e3 if self.use_events else end - start
            per_iter[name] = per_iter.get(name, 0.0) + dt
        self._pending.clear()
        if self.recording:
            for name, dt in per_iter.items():
                self.samples.setdefault(name, []).append(dt)


@dataclass
class TimingResult:
    """One measurement: statistics per region (``total`` always), throughput, memory, config, environment.

    ``samples`` keeps the raw per-iteration times (seconds) by region; :meth:`to_dict` leaves them out.
    """

    name: str
    device: str
    method: str
    batch_size: int
    image_shape: tuple[int, int] | None
    iterations: int
    warmup: int
    duration_s: float
    regions: dict[str, Stats]
    memory: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict, repr=False)  # seconds, per region

    @property
    def latency(self) -> Stats:
        """Statistics of the whole step."""
        return self.regions[TOTAL]

    @property
    def pixels_per_image(self) -> int:
        """Height × width of the images (0 when no image shape was given)."""
        return 0 if self.image_shape is None else int(self.image_shape[0] * self.image_shape[1])

    @property
    def images_per_s(self) -> float:
        """Batch size / mean latency."""
        return self.batch_size / self.latency.mean if self.latency.mean > 0 else math.inf

    @property
    def megapixels_per_s(self) -> float | None:
        """Pixels processed per second / 1e6 (None without an image shape)."""
        return self.images_per_s * self.pixels_per_image / 1e6 if self.image_shape else None

    def to_dict(self, env: bool = True) -> dict[str, Any]:
        """A flat row: meta, shape, statistics in ms (other regions prefixed), throughput, memory, config, env."""
        row: dict[str, Any] = {"name": self.name, **self.meta, "device": self.device, "method": self.method,
                               "batch_size": self.batch_size,
                               "height": self.image_shape[0] if self.image_shape else None,
                               "width": self.image_shape[1] if self.image_shape else None,
                               "pixels": self.batch_size * self.pixels_per_image, "warmup": self.warmup,
                               "duration_s": self.duration_s}
        row.update(self.latency.ms())
        for region, stats in self.regions.items():
            if region != TOTAL:
                row.update(stats.ms(prefix=f"{region}_"))
        row.update(images_per_s=self.images_per_s, megapixels_per_s=self.megapixels_per_s, **self.memory)
        row.update({f"cfg_{k}": v for k, v in self.config.items()})
        if env:
            row.update({f"env_{k}": v for k, v in self.environment.items()})
        return row


def to_frame(results: list[TimingResult], env: bool = True):  # -> pandas.DataFrame
    """Rows of :meth:`TimingResult.to_dict`."""
    return pd.DataFrame([r.to_dict(env=env) for r in results])


def measure_step(step: Callable[[Tracker], Any], config: TimerConfig = TimerConfig(), *, name: str = "",
                 batch_size: int = 1, image_shape: tuple[int, int] | None = None,
                 meta: Mapping[str, Any] | None = None, sync: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter, progress: bool = False) -> TimingResult:
    """Run ``step(tracker)`` ``warmup`` times, then until both ``min_iters`` and ``min_duration_s`` are met.

    Args:
        step: one iteration; it may open regions with ``tracker.region(name)``.
        config: iteration and device settings.
        name: what is measured (kept in the result).
        batch_size: images per step (for throughput).
        image_shape: (H, W) of each image (for megapixels/s), or None.
        meta: extra columns of the result row (engine, stage, model, ...).
        sync: override of the synchronization used by ``perf_counter`` timing.
        clock: the host clock (tests inject a fake one).
        progress: show a progress bar over the timed iterations.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    tracker = Tracker(config.device, cuda_events=config.cuda_events, sync=sync, clock=clock)
    tracker.recording = False
    for _ in range(config.warmup):
        with tracker.iteration():
            step(tracker)
    tracker.recording = True
    watch = MemoryWatch(tracker.device)
    watch.start()
    n, t0 = 0, clock()
    with tqdm(desc=f"timing {name}".strip(), unit="it", disable=not progress, leave=False) as bar:
        while n < config.max_iters and (n < config.min_iters or clock() - t0 < config.min_duration_s):
            with tracker.iteration():
                step(tracker)
            n += 1
            bar.update()
    duration = clock() - t0
    method = tracker.method + ("+cuda-graph" if config.cuda_graph else "")
    return TimingResult(name=name, device=str(tracker.device), method=method, batch_size=batch_size,
                        image_shape=tuple(image_shape) if image_shape else None, iterations=n,
                        warmup=config.warmup, duration_s=duration,
                        regions={k: Stats.from_samples(v) for k, v in tracker.samples.items()},
                        memory=watch.stop(), config=asdict(config), meta=dict(meta or {}),
                        environment=environment(), samples=tracker.samples)


def measure(fn: Callable[[], Any], config: TimerConfig = TimerConfig(), **kwargs: Any) -> TimingResult:
    """Time a zero-argument callable (a :class:`~liccs.engines.base.Runner` call bound to its feed, a
    torch module on fixed inputs, ...). With ``config.cuda_graph`` it is captured once and replayed.

    Keyword arguments go to :func:`measure_step`.
    """
    call = cuda_graph_replay(fn, config.device) if config.cuda_graph else fn
    return measure_step(lambda _t: call(), config, **kwargs)


def measure_interleaved(calls: Mapping[Any, Callable[[], Any]], config: TimerConfig = TimerConfig()
                        ) -> dict[Any, list[float]]:
    """Seconds per call of each callable, timed in rounds of one call each: a change of load on a shared CPU
    (another job, a neighbour's VM) falls on every callable alike, not on whichever was being measured, so their
    ratios hold where their absolute times drift. ``warmup`` untimed calls each first; rounds go on until each has
    ``min_iters`` calls and ``min_duration_s`` of them (at most ``max_iters``). The callables must return when their
    work is done (CPU work, or work that synchronizes itself)."""
    for fn in calls.values():
        for _ in range(config.warmup):
            fn()
    samples: dict[Any, list[float]] = {k: [] for k in calls}
    rounds = 0
    while calls and rounds < config.max_iters and (
            rounds < config.min_iters or min(sum(v) for v in samples.values()) < config.min_duration_s):
        for k, fn in calls.items():
            t = time.perf_counter()
            fn()
            samples[k].append(time.perf_counter() - t)
        rounds += 1
    return samples


def measure_copy_compute(fn: Callable[..., Any], inputs: tuple[torch.Tensor, ...],
                         config: TimerConfig = TimerConfig(device="cuda"), *, pin_memory: bool = True,
                         **kwargs: Any) -> TimingResult:
    """Time ``fn(*inputs)`` on ``config.device`` as three regions: ``h2d``, ``compute``, ``d2h``.

    ``inputs`` live on the host; outputs (tensors, or dicts/lists/tuples of them) are copied back to it.
    With ``config.cuda_graph`` the compute is a graph replay on static device inputs refilled by the copy.
    """
    dev = torch.device(config.device)
    cpu = torch.device("cpu")
    if any(not isinstance(x, torch.Tensor) or x.device.type != "cpu" for x in inputs):
        raise InputError("measure_copy_compute: every input must be a host (CPU) tensor")
    gpu = dev.type == "cuda"
    host = tuple(x.pin_memory() if (pin_memory and gpu) else x for x in inputs)
    if config.cuda_graph:
        static = tuple(x.to(dev) for x in host)
        replay = cuda_graph_replay(lambda: fn(*static), dev)

        def step(t: Tracker) -> None:
            with t.region("h2d"):
                for s, x in zip(static, host):
                    s.copy_(x, non_blocking=True)
            with t.region("compute"):
                out = replay()
            with t.region("d2h"):
                to_device(out, cpu, non_blocking=False)
    else:
        def step(t: Tracker) -> None:
            with t.region("h2d"):
                dev_in = to_device(host, dev, non_blocking=gpu)
            with t.region("compute"):
                out = fn(*dev_in)
            with t.region("d2h"):
                to_device(out, cpu, non_blocking=False)

    return measure_step(step, config, **kwargs)
