"""The timer: statistics, iteration control, synchronization, regions, memory (GPU paths marked ``gpu``)."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from liccs.core.errors import InputError
from liccs.profiling.timer import (
    Stats,
    TimerConfig,
    measure,
    measure_copy_compute,
    measure_interleaved,
    measure_step,
    to_frame,
)


class FakeClock:
    """A host clock that only moves when a test moves it."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_statistics_exact_on_known_durations():
    clock = FakeClock()
    durations = itertools.cycle([0.010, 0.020, 0.030, 0.040])
    calls = []

    def step(_t):
        d = next(durations)
        calls.append(d)
        clock.t += d

    cfg = TimerConfig(warmup=3, min_iters=8, min_duration_s=0.0)
    r = measure_step(step, cfg, clock=clock, batch_size=4, image_shape=(10, 20))
    # warm-up consumed 10, 20, 30 ms and is not counted; timed: 40 10 20 30 40 10 20 30
    assert len(calls) == 11 and r.iterations == 8 and r.warmup == 3
    s = r.latency
    assert s.n == 8
    assert s.mean == pytest.approx(0.025)
    assert s.p50 == pytest.approx(0.025)
    assert s.min == pytest.approx(0.010) and s.max == pytest.approx(0.040)
    assert s.p90 == pytest.approx(0.040) and s.p99 == pytest.approx(0.040)
    assert s.std == pytest.approx(math.sqrt(1000 / 7) * 1e-3)
    assert r.images_per_s == pytest.approx(4 / 0.025)
    assert r.megapixels_per_s == pytest.approx(4 / 0.025 * 200 / 1e6)
    row = r.to_dict()
    assert row["p50_ms"] == pytest.approx(25.0) and row["pixels"] == 800
    assert row["cfg_min_iters"] == 8 and "env_torch" in row and "env_cpu_count" in row


def test_percentiles_interpolate():
    s = Stats.from_samples(np.arange(1, 101, dtype=float))  # 1..100
    assert (s.p50, s.p90, s.p95, s.p99) == pytest.approx((50.5, 90.1, 95.05, 99.01))
    with pytest.raises(InputError):
        Stats.from_samples([])


@pytest.mark.parametrize(("min_iters", "min_duration", "max_iters", "expected"),
                         [(2, 1.0, 1000, 4), (6, 1.0, 1000, 6), (2, 100.0, 7, 7)])
def test_min_iterations_and_min_duration_both_hold(min_iters, min_duration, max_iters, expected):
    clock = FakeClock()

    def step(_t):
        clock.t += 0.25

    cfg = TimerConfig(warmup=0, min_iters=min_iters, min_duration_s=min_duration, max_iters=max_iters)
    r = measure_step(step, cfg, clock=clock)
    assert r.iterations == expected
    assert r.duration_s == pytest.approx(0.25 * expected)


def test_clock_is_read_after_synchronizing():
    """An 'asynchronous' call returns at once; its work completes at sync. The timer must see the work."""
    clock = FakeClock()
    pending = []

    def launch(_t):
        pending.append(0.05)  # queued work, no host time spent

    def sync():
        clock.t += sum(pending)
        pending.clear()

    r = measure_step(launch, TimerConfig(warmup=1, min_iters=5, min_duration_s=0), clock=clock, sync=sync)
    assert r.method == "perf_counter+sync"
    assert r.latency.p50 == pytest.approx(0.05) and r.latency.min == pytest.approx(0.05)


def test_sleep_of_known_duration():
    d = 0.02
    r = measure(lambda: time.sleep(d), TimerConfig(warmup=1, min_iters=10, min_duration_s=0.3), name="sleep")
    assert r.iterations >= 10 and r.duration_s >= 0.3
    # sleep never returns early; the slack allows a loaded 2-core machine, not a unit or placement error
    assert d <= r.latency.min <= r.latency.p50 <= r.latency.p90 <= r.latency.p99 <= r.latency.max
    assert r.latency.p50 < d + 0.015
    assert r.images_per_s == pytest.approx(1 / r.latency.mean)


def test_regions_time_copy_and_compute_apart():
    def step(t):
        with t.region("h2d"):
            time.sleep(0.005)
        with t.region("compute"):
            time.sleep(0.015)
            time.sleep(0.0)  # a second use of a region in one iteration is summed
        with t.region("compute"):
            time.sleep(0.005)

    r = measure_step(step, TimerConfig(warmup=1, min_iters=6, min_duration_s=0))
    assert set(r.regions) == {"h2d", "compute", "total"}
    assert 0.005 <= r.regions["h2d"].p50 < 0.005 + 0.012
    assert 0.020 <= r.regions["compute"].p50 < 0.020 + 0.012
    assert r.latency.min >= 0.025
    row = r.to_dict()
    assert {"h2d_p50_ms", "compute_p99_ms", "p50_ms"} <= set(row)


_RSS_PROBE = """
import numpy as np
from liccs.profiling.timer import TimerConfig, measure

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

def alloc():
    a = np.ones(16_000_000)  # 122 MiB, touched
    a.sum()

measure(lambda: None, TimerConfig(warmup=0, min_iters=1, min_duration_s=0))  # imports and first-call state
before = rss_mib()
r = measure(alloc, TimerConfig(warmup=0, min_iters=1, min_duration_s=0))
print(before, r.memory["peak_rss_mib"], r.memory["peak_rss_scope"], r.memory["peak_device_mib"])
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc (Linux) to read the RSS")
def test_peak_rss_sees_an_allocation_inside_the_measurement():
    # In a fresh process: in this one, pages freed by earlier tests may already be resident, so a new allocation
    # need not raise the RSS (the suite must pass in any order).
    out = subprocess.run([sys.executable, "-c", _RSS_PROBE], capture_output=True, text=True, timeout=120, check=True)
    before, peak, scope, device = out.stdout.split()
    assert scope in ("measurement", "process")
    assert float(peak) >= float(before) + 100
    assert device == "None"


def test_bad_config_names_the_field():
    for kwargs, key in (({"min_iters": 0}, "min_iters"), ({"warmup": -1}, "warmup"), ({"warmup": 1.5}, "warmup"),
                        ({"min_duration_s": -1}, "min_duration_s"), ({"device": "tpu"}, "device"),
                        ({"cuda_graph": True}, "cuda_graph"), ({"min_iters": 5, "max_iters": 2}, "max_iters")):
        with pytest.raises(InputError, match=key):
            TimerConfig(**kwargs)


def test_to_frame_rows():
    rs = [measure(lambda: None, TimerConfig(warmup=0, min_iters=3, min_duration_s=0), name=n, meta={"stage": n})
          for n in ("a", "b")]
    df = to_frame(rs, env=False)
    assert list(df["stage"]) == ["a", "b"] and (df["n"] == 3).all()
    assert not any(c.startswith("env_") for c in df.columns)


# --- GPU paths (skipped without CUDA) ------------------------------------------------------------------
@pytest.mark.gpu
def test_gpu_events_time_the_kernel_not_the_launch():
    a = torch.randn(4096, 4096, device="cuda")
    ev = measure(lambda: a @ a, TimerConfig(device="cuda", warmup=3, min_iters=10, min_duration_s=0))
    wall = measure(lambda: a @ a, TimerConfig(device="cuda", cuda_events=False, warmup=3, min_iters=10,
                                              min_duration_s=0))
    assert ev.method == "cuda-events" and wall.method == "perf_counter+sync"
    assert ev.latency.p50 == pytest.approx(wall.latency.p50, rel=0.5)
    assert ev.memory["peak_device_mib"] >= 64  # one 4096² float32 output


@pytest.mark.gpu
@pytest.mark.parametrize("graph", [False, True])
def test_gpu_copy_compute_regions(graph):
    conv = torch.nn.Conv2d(3, 16, 3, padding=1).cuda().eval()
    x = torch.rand(8, 3, 256, 256)
    with torch.no_grad():
        r = measure_copy_compute(conv, (x,), TimerConfig(device="cuda", warmup=2, min_iters=5, min_duration_s=0,
                                                         cuda_graph=graph))
    assert {"h2d", "compute", "d2h", "total"} == set(r.regions)
    assert all(s.min > 0 for s in r.regions.values())
    assert ("cuda-graph" in r.method) == graph


@pytest.mark.gpu
def test_gpu_graph_replay_matches_eager():
    from liccs.profiling.device import cuda_graph_replay

    conv = torch.nn.Conv2d(3, 4, 3).cuda().eval()
    x = torch.rand(1, 3, 32, 32, device="cuda")
    with torch.no_grad():
        replay = cuda_graph_replay(lambda: conv(x))
        torch.testing.assert_close(replay(), conv(x))


def test_interleaved_timing_shares_a_change_of_load_between_the_callables():
    """Two equal callables on a machine whose load rises early: timed one after the other, the second looks 4×
    slower; timed in interleaved rounds, each sees the same 3 fast and 7 slow calls, so their medians agree.
    Warm-up calls are not timed. (Each median is one slow call's, not the mean of a fast and a slow one, so a
    scheduler delay of a few ms on a busy machine cannot move their ratio past the bounds.)"""
    calls = itertools.count()

    def work() -> None:
        time.sleep(0.004 if next(calls) < 8 else 0.016)  # the load rises after 2 warm-ups and 3 rounds

    cfg = TimerConfig(warmup=1, min_iters=10, min_duration_s=0.0)
    samples = measure_interleaved({"a": work, "b": work}, cfg)
    assert [len(v) for v in samples.values()] == [10, 10] and next(calls) == 22
    a, b = (float(np.median(v)) for v in samples.values())
    assert 0.8 < a / b < 1.25
    calls = itertools.count()
    first, second = (measure(work, cfg).latency.p50 for _ in range(2))  # the other way: one after the other
    assert second / first > 2.5
