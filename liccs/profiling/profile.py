"""Per-stage and end-to-end latency tables, batch × resolution sweeps, power-law growth, the dominant stage.

A *stage* is a zero-argument callable, or a :class:`~liccs.engines.base.Runner` with its feed
(``(runner, feed)``): an inactive runner is activated for the timing (and deactivated after it), its feed checked
once, then timed as
``runner.infer(feed, check=False)``. So any engine registered in :data:`liccs.engines.ENGINES` can be
profiled stage by stage::

    stages = {"g_a": (ga_runner, {"x": x}), "g_s": (gs_runner, {"y_hat": y_hat})}
    table = profile_stages(stages, TimerConfig(), batch_size=1, image_shape=(256, 256), meta={"engine": "ort-cpu"})
    summary = dominant_stages(table)
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from liccs.core.errors import InputError
from liccs.core.progress import tqdm
from liccs.engines.base import Array, Runner
from liccs.profiling.timer import TimerConfig, measure

StageLike = Callable[[], Any] | tuple[Runner, Mapping[str, Array]]
END_TO_END = "end-to-end"
DEFAULT_TIMER_CONFIG = TimerConfig()  # frozen, so one shared default instance is safe


def as_callable(stage: StageLike, name: str = "stage", owned: ExitStack | None = None) -> Callable[[], Any]:
    """A zero-argument callable for a stage; a ``(runner, feed)`` pair is activated (if inactive) and checked once.

    A runner activated here is deactivated when ``owned`` closes (without ``owned`` the caller deactivates it)."""
    if isinstance(stage, tuple):
        if len(stage) != 2 or not isinstance(stage[0], Runner):
            raise InputError(f"stage {name!r}: expected (Runner, feed), got a tuple of {len(stage)} items")
        runner, feed = stage
        if not runner.is_active:
            runner.activate()
            if owned is not None:
                owned.callback(runner.deactivate)
        runner.check_feed(feed)
        feed = dict(feed)
        return lambda: runner.infer(feed, check=False)
    if isinstance(stage, Runner):
        raise InputError(f"stage {name!r}: a Runner needs its feed; pass (runner, feed)")
    if not callable(stage):
        raise InputError(f"stage {name!r}: expected a callable or (Runner, feed), got {type(stage).__name__}")
    return stage


def profile_stages(stages: Mapping[str, StageLike], config: TimerConfig = DEFAULT_TIMER_CONFIG, *, batch_size: int = 1,
                   image_shape: tuple[int, int] | None = None, end_to_end: StageLike | None = None,
                   meta: Mapping[str, Any] | None = None, env: bool = True, progress: bool = True) -> pd.DataFrame:
    """Time every stage (and the end-to-end callable, if given) one after the other.

    Returns one row per stage (:meth:`TimingResult.to_dict` plus ``stage``), and ``share``: the stage's
    p50 over the sum of the stages' p50 (the end-to-end row's share is its p50 over that sum, which
    shows the overhead between stages when above 1).
    """
    if not stages:
        raise InputError("profile_stages: no stages given")
    items = list(stages.items()) + ([(END_TO_END, end_to_end)] if end_to_end is not None else [])
    rows = []
    with ExitStack() as owned:  # runners activated here are deactivated on the way out
        for name, stage in tqdm(items, desc="stages", disable=not progress, leave=False):
            fn = as_callable(stage, name, owned)
            res = measure(fn, config, name=name, batch_size=batch_size, image_shape=image_shape,
                          meta={**(meta or {}), "stage": name})
            rows.append(res.to_dict(env=env))
    df = pd.DataFrame(rows)
    stage_sum = df.loc[df["stage"] != END_TO_END, "p50_ms"].sum()
    df["share"] = df["p50_ms"] / stage_sum if stage_sum > 0 else math.nan
    return df


def dominant_stages(table: pd.DataFrame, by: Sequence[str] = ("engine",), metric: str = "p50_ms",
                    runs: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Which stage dominates each group of ``table`` (rows of :func:`profile_stages` or :func:`sweep`).

    Returns one row per group: ``dominant_stage``, its time, the sum over stages, its ``share``, the
    end-to-end time where measured, ``sum_as_run_…`` (each stage times how often one end-to-end call runs it,
    ``runs``: e.g. ``{"h_s": 2}``, the encoder's and the decoder's), ``e2e_over_sum`` (end to end / the sum as
    run: 1 when nothing but the stages takes time) and ``summary``, a sentence saying so.
    """
    for col in ("stage", metric):
        if col not in table.columns:
            raise InputError(f"dominant_stages: column {col!r} missing (have {list(table.columns)})")
    keys = [k for k in by if k in table.columns]
    groups = table.groupby(keys, dropna=False, sort=False) if keys else [((), table)]
    out = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        stages = g[g["stage"] != END_TO_END]
        if stages.empty:
            continue
        top = stages.loc[stages[metric].idxmax()]
        total = float(stages[metric].sum())
        e2e = g.loc[g["stage"] == END_TO_END, metric]
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, key))
        share = float(top[metric]) / total if total > 0 else math.nan
        as_run = float(sum(v * (runs or {}).get(s, 1.0) for s, v in zip(stages["stage"], stages[metric])))
        e2e_v = float(e2e.iloc[0]) if len(e2e) else math.nan
        out.append({**dict(zip(keys, key)), "dominant_stage": top["stage"], metric: float(top[metric]),
                    f"sum_{metric}": total, "share": share, f"end_to_end_{metric}": e2e_v,
                    f"sum_as_run_{metric}": as_run, "e2e_over_sum": e2e_v / as_run if as_run > 0 else math.nan,
                    "summary": f"{label + ': ' if label else ''}{top['stage']} dominates with {share:.0%} of the "
                               f"summed stage {metric.removesuffix('_ms')} ({top[metric]:.3g} of {total:.3g} ms)"})
    return pd.DataFrame(out)


def in_sequence(stages: Mapping[str, StageLike], end_to_end: StageLike, *, rounds: int = 20, warmup: int = 2,
                runs: Mapping[str, int] | None = None) -> dict[str, Any]:
    """End to end against its stages called the way the pipeline calls them, interleaved in the same rounds.

    Each round runs ``end_to_end`` once, then every stage once in order (``runs[stage]`` times: ``h_s`` runs in
    the encoder and the decoder), timing each call. Returns the medians over ``rounds``: ``end_to_end_ms``,
    ``stage_sum_ms`` (per round, the sum of its stage calls), ``e2e_over_sum`` and ``stage_ms`` per stage.

    :func:`profile_stages` times one stage back to back, with its weights and activations in cache and its
    threads awake: on 2 CPU cores the mini codec's ONNX Runtime stages took 0.7-0.8 of their in-pipeline time
    that way, and the end to end looked 1.26-1.50× their sum. Interleaved, it is 1.06×: the rest is the glue
    (padding, z's quantization, index checksums, framing; the index search is a stage of its own).
    """
    if rounds < 1 or warmup < 0:
        raise InputError(f"in_sequence: rounds must be >= 1 and warmup >= 0, got {rounds}, {warmup}")
    if not stages:
        raise InputError("in_sequence: no stages given")

    def timed(fn: Callable[[], Any]) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    e2e_s, sums = [], []
    per: dict[str, list[float]] = {name: [] for name in stages}
    with ExitStack() as owned:  # runners activated here are deactivated on the way out
        calls = [(name, as_callable(stage, name, owned)) for name, stage in stages.items()
                 for _ in range(int((runs or {}).get(name, 1)))]
        e2e = as_callable(end_to_end, END_TO_END, owned)
        for k in range(warmup + rounds):
            e = timed(e2e)
            got = [(name, timed(fn)) for name, fn in calls]
            if k < warmup:
                continue
            e2e_s.append(e)
            sums.append(sum(t for _, t in got))
            for name in stages:
                per[name].append(sum(t for n, t in got if n == name) / int((runs or {}).get(name, 1)))
    e2e_ms, sum_ms = 1e3 * float(np.median(e2e_s)), 1e3 * float(np.median(sums))
    return {"end_to_end_ms": e2e_ms, "stage_sum_ms": sum_ms, "e2e_over_sum": e2e_ms / sum_ms if sum_ms > 0 else
            math.nan, "rounds": rounds, "stage_ms": {n: 1e3 * float(np.median(v)) for n, v in per.items()}}


def sweep(make_stages: Callable[[int, tuple[int, int]], Mapping[str, StageLike]], batch_sizes: Iterable[int],
          resolutions: Iterable[tuple[int, int]], config: TimerConfig = DEFAULT_TIMER_CONFIG, *,
          make_end_to_end: Callable[[int, tuple[int, int]], StageLike] | None = None,
          meta: Mapping[str, Any] | None = None, env: bool = False, progress: bool = True) -> pd.DataFrame:
    """:func:`profile_stages` at every (batch size, (H, W)); ``make_stages(batch, (h, w))`` builds the stages.

    A CUDA out-of-memory at one point is recorded in the ``error`` column and the sweep goes on.
    """
    points = list(itertools.product(list(batch_sizes), [tuple(r) for r in resolutions]))
    if not points:
        raise InputError("sweep: no batch sizes or resolutions given")
    frames = []
    for b, hw in tqdm(points, desc="sweep", disable=not progress):
        try:
            stages = make_stages(b, hw)
            e2e = make_end_to_end(b, hw) if make_end_to_end else None
            df = profile_stages(stages, config, batch_size=b, image_shape=hw, end_to_end=e2e, meta=meta,
                                env=env, progress=False)
            df["error"] = None
        except torch.cuda.OutOfMemoryError as e:
            df = pd.DataFrame([{**(meta or {}), "batch_size": b, "height": hw[0], "width": hw[1],
                                "pixels": b * hw[0] * hw[1], "error": f"CUDA out of memory: {e}"}])
            torch.cuda.empty_cache()
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class PowerLaw:
    """``time ≈ a · pixels^b``, fitted by least squares on log time against log pixels."""

    a: float
    b: float
    r2: float
    n: int

    def __call__(self, pixels: float | np.ndarray) -> float | np.ndarray:
        """The fitted time ``a · pixels^b`` at ``pixels``."""
        return self.a * np.power(pixels, self.b)


def fit_power_law(pixels: Sequence[float] | np.ndarray, times: Sequence[float] | np.ndarray) -> PowerLaw:
    """Fit ``times ≈ a · pixels^b`` (both positive; at least two distinct pixel counts)."""
    x, y = np.asarray(pixels, dtype=np.float64), np.asarray(times, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"fit_power_law: pixels and times must be 1-D of one length, got {x.shape} and {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0) or not np.all(np.isfinite(x) & np.isfinite(y)):
        raise InputError("fit_power_law: pixels and times must be positive and finite")
    if np.unique(x).size < 2:
        raise InputError("fit_power_law: needs at least two distinct pixel counts")
    lx, ly = np.log(x), np.log(y)
    b, log_a = np.polyfit(lx, ly, 1)
    resid = ly - (log_a + b * lx)
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return PowerLaw(float(math.exp(log_a)), float(b), r2, int(x.size))


def growth_table(table: pd.DataFrame, by: Sequence[str] = ("engine", "stage", "batch_size"), x: str = "pixels",
                 y: str = "p50_ms") -> pd.DataFrame:
    """Per group of a sweep: the power-law exponent ``b`` of ``y`` against ``x`` (1 = linear in pixels)."""
    for col in (x, y):
        if col not in table.columns:
            raise InputError(f"growth_table: column {col!r} missing (have {list(table.columns)})")
    ok = table[table[y].notna() & table[x].notna()] if "error" not in table else \
        table[table["error"].isna() & table[y].notna()]
    keys = [k for k in by if k in ok.columns]
    rows = []
    for key, g in (ok.groupby(keys, dropna=False, sort=False) if keys else [((), ok)]):
        key = key if isinstance(key, tuple) else (key,)
        if g[x].nunique() < 2:
            continue
        fit = fit_power_law(g[x].to_numpy(), g[y].to_numpy())
        rows.append({**dict(zip(keys, key)), "a": fit.a, "b": fit.b, "r2": fit.r2, "points": fit.n,
                     f"min_{x}": int(g[x].min()), f"max_{x}": int(g[x].max())})
    return pd.DataFrame(rows)
