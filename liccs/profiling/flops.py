"""FLOPs of a stage and this machine's dense matmul ceiling, for achieved-rate / ceiling per stage.

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode`: matrix multiplications and
convolutions (transposed ones included, GDN's 1×1 convolution included), 2 FLOPs per multiply-add.
Element-wise work (activations, GDN's square root, rounding) is not counted, so the achieved rate
is that of the dense arithmetic only.

The ceiling is measured per precision (:func:`robust_ceilings`): fp32 always, bf16 where the CPU has AVX-512 BF16 or
AMX-BF16 (torch matmul in bf16), int8 where it has VNNI or AMX-INT8 (``torch._int_mm``, int8 × int8 → int32; its
rate is in giga-ops); elsewhere that precision is skipped with the reason (:func:`ceiling_skip_reason`), and a stage
is held against the ceiling of the precision it executed in (:func:`ceiling_for`), never against another's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from liccs.core import isa
from liccs.core.errors import InputError
from liccs.profiling.timer import TimerConfig, measure

#: an engine's precision → the dtype of its matmul ceiling
PRECISION_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.int8}


def _counted(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> FlopCounterMode:
    # FlopCounterMode's module tracker breaks under inference_mode: count outside it, without autograd
    with torch.inference_mode(False), torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """FLOPs of one call ``fn(*args, **kwargs)`` (a torch module or function)."""
    return int(_counted(fn, args, kwargs).get_total_flops())


def flops_by_op(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, int]:
    """FLOPs of one call, per aten operator (e.g. ``convolution``, ``mm``)."""
    counter = _counted(fn, args, kwargs)
    totals: dict[str, int] = {}
    for op, n in counter.get_flop_counts().get("Global", {}).items():
        name = str(op).split(".")[-1] if "." in str(op) else str(op)
        totals[name] = totals.get(name, 0) + int(n)
    return totals


def matmul_ceiling(n: int = 1024, dtype: torch.dtype = torch.float32, device: str = "cpu",
                   config: TimerConfig | None = None) -> dict[str, Any]:
    """This machine's dense matmul rate: ``2·n³`` FLOPs over the p50 of an ``n×n @ n×n`` product.

    ``dtype`` int8 times ``torch._int_mm`` (int32 sums; ``n`` rounded up to a multiple of 8, at least 32, as it
    needs on a GPU). Returns ``gflops`` (from the p50), ``gflops_best`` (from the fastest run), ``n``, ``dtype``,
    ``device``, ``threads`` and ``p50_ms``.
    """
    if n < 16:
        raise InputError(f"matmul_ceiling: n must be >= 16, got {n}")
    cfg = config or TimerConfig(warmup=3, min_iters=10, min_duration_s=1.0, device=device)
    gen = torch.Generator().manual_seed(0)
    if dtype == torch.int8:
        n = max(32, -(-n // 8) * 8)
        a, b = (torch.randint(-128, 128, (n, n), generator=gen, dtype=torch.int8).to(device) for _ in range(2))
        res = measure(lambda: torch._int_mm(a, b), cfg, name=f"int8 matmul{n}")
    else:
        a, b = (torch.randn(n, n, generator=gen).to(device=device, dtype=dtype) for _ in range(2))
        res = measure(lambda: torch.mm(a, b), cfg, name=f"matmul{n}")
    flop = 2.0 * n**3
    return {"gflops": flop / res.latency.p50 / 1e9, "gflops_best": flop / res.latency.min / 1e9, "n": n,
            "dtype": str(dtype).removeprefix("torch."), "device": device, "threads": torch.get_num_threads(),
            "p50_ms": res.latency.p50 * 1e3}


def robust_ceiling(sizes: tuple[int, ...] = (512, 1024, 2048), repeats: int = 3, dtype: torch.dtype = torch.float32,
                   device: str = "cpu", config: TimerConfig | None = None) -> dict[str, Any]:
    """The ceiling a shared machine's load cannot lower much: the best rate (fastest run) over ``repeats`` rounds
    of :func:`matmul_ceiling` at each of ``sizes``, with every measurement and the load average kept.

    Load only ever slows a matmul, so the best of several sizes and repeats estimates what the CPU does idle; the
    p50 of one run on a loaded machine does not (a ceiling measured at load 5 was 0.63 of the idle one here).
    """
    if not sizes or repeats < 1:
        raise InputError(f"robust_ceiling needs sizes and repeats >= 1, got {sizes!r}, {repeats}")
    cfg = config or TimerConfig(warmup=2, min_iters=5, min_duration_s=0.3, device=device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    runs = [matmul_ceiling(n, dtype=dtype, device=device, config=cfg) for _ in range(repeats) for n in sizes]
    best = max(runs, key=lambda r: r["gflops_best"])
    return {"gflops": best["gflops_best"], "n": best["n"], "dtype": best["dtype"], "device": device,
            "threads": best["threads"], "loadavg": load, "runs": [{k: r[k] for k in ("n", "gflops", "gflops_best")}
                                                                 for r in runs]}


def ceiling_skip_reason(precision: str, device: str = "cpu") -> str | None:
    """None where a matmul ceiling in ``precision`` is measured on ``device``, else why not: on the CPU, bf16 needs
    AVX-512 BF16 or AMX-BF16 and int8 needs VNNI or AMX-INT8 (:mod:`liccs.core.isa`); a GPU has them all."""
    if precision not in PRECISION_DTYPES:
        raise InputError(f"unknown precision {precision!r}; one of {', '.join(PRECISION_DTYPES)}")
    why = isa.this_cpu().missing(precision) if device == "cpu" else None
    return f"no {precision} ceiling on this CPU: {why}" if why else None


def robust_ceilings(precisions: tuple[str, ...] = ("fp32", "bf16", "int8"),
                    sizes: tuple[int, ...] = (512, 1024, 2048), repeats: int = 3, device: str = "cpu",
                    config: TimerConfig | None = None) -> dict[str, dict[str, Any]]:
    """:func:`robust_ceiling` per precision: each is measured where :func:`ceiling_skip_reason` allows, else
    ``{"precision": p, "skipped": reason}``. Every entry names its ``precision``."""
    out: dict[str, dict[str, Any]] = {}
    for p in precisions:
        why = ceiling_skip_reason(p, device)
        out[p] = {"precision": p, "skipped": why} if why else {
            "precision": p, **robust_ceiling(sizes, repeats, PRECISION_DTYPES[p], device, config)}
    return out


def ceiling_for(ceilings: Mapping[str, Mapping[str, Any]], precision: str) -> tuple[float | None, str]:
    """(GFLOP/s, label) of the ceiling a stage that executed in ``precision`` is held against: that precision's
    where it was measured, else (None, why: ``no int8 ceiling on this CPU: ...``); never another precision's."""
    c = ceilings.get(precision)
    if c is None:
        return None, f"no {precision} ceiling measured"
    if c.get("skipped"):
        return None, str(c["skipped"])
    return float(c["gflops"]), f"{c.get('device', 'cpu')} {c['dtype']} matmul n={c['n']}"


def ceiling_moved(before: Mapping[str, Any], after: Mapping[str, Any], tolerance: float = 0.2) -> str | None:
    """None when two ceilings (before and after a benchmark) agree within ``tolerance`` (relative), else a sentence
    saying by how much it moved: the machine's load changed during the run, and its rates are suspect."""
    a, b = float(before["gflops"]), float(after["gflops"])
    if a <= 0 or b <= 0:
        raise InputError(f"ceilings must be positive, got {a} and {b} GFLOP/s")
    change = b / a - 1
    if abs(change) <= tolerance:
        return None
    return (f"the matmul ceiling moved by {change:+.0%} during the run ({a:.1f} → {b:.1f} GFLOP/s, more than "
            f"±{tolerance:.0%}): the machine's load changed, rates against it are suspect")


def add_rates(table: pd.DataFrame, flops: Mapping[str, int], ceiling_gflops: float | None, *,
              stage_col: str = "stage", time_col: str = "p50_ms") -> pd.DataFrame:
    """Add ``gflop``, ``achieved_gflops`` and ``fraction_of_ceiling`` to stage rows whose stage has a count.

    ``flops`` maps a stage name to the FLOPs of one call at the row's shape (count at the same batch and
    resolution as the timing); stages without a count get NaN, and so does every fraction when there is no
    ceiling of the rows' precision here (``ceiling_gflops`` None: :func:`ceiling_for`).
    """
    if ceiling_gflops is not None and ceiling_gflops <= 0:
        raise InputError(f"add_rates: ceiling_gflops must be positive, got {ceiling_gflops}")
    out = table.copy()
    g = out[stage_col].map(lambda s: flops.get(s)).astype("float64") / 1e9
    out["gflop"] = g
    out["achieved_gflops"] = g / (out[time_col] / 1e3)
    out["fraction_of_ceiling"] = out["achieved_gflops"] / (ceiling_gflops or float("nan"))
    return out


def stage_budget(stage_ms: Mapping[str, float], runs: Mapping[str, int], flops: Mapping[str, int],
                 ceiling_gflops: float, *, target_fraction: float = 0.8) -> pd.DataFrame:
    """Where one pass of a pipeline spends its time, stage by stage, against the machine's ceiling.

    ``stage_ms`` is one call's time per stage, ``runs`` how many calls one pass makes (``h_s`` runs when encoding
    and when decoding), ``flops`` one call's FLOPs (stages without a count, such as the entropy coder, have no
    ceiling: their time stays). Columns: ``ms`` (per pass), ``share`` of the pass, ``fraction_of_ceiling``, and
    ``ms_at_target``/``saved_ms``: the stage's time were it at ``target_fraction`` of the ceiling (never slower
    than it is), and what that would save.
    """
    if ceiling_gflops <= 0 or not 0 < target_fraction <= 1:
        raise InputError(f"stage_budget: need a positive ceiling and 0 < target_fraction <= 1, got "
                         f"{ceiling_gflops}, {target_fraction}")
    rows = []
    for stage, ms in stage_ms.items():
        n = runs.get(stage, 1)
        gflop = flops.get(stage)
        frac = gflop / 1e9 / (ms / 1e3) / ceiling_gflops if gflop else float("nan")
        at = min(ms, gflop / 1e9 / (target_fraction * ceiling_gflops) * 1e3) if gflop else ms
        rows.append({"stage": stage, "runs": n, "ms": n * ms, "gflop": gflop / 1e9 if gflop else float("nan"),
                     "fraction_of_ceiling": frac, "ms_at_target": n * at, "saved_ms": n * (ms - at)})
    out = pd.DataFrame(rows)
    out["share"] = out["ms"] / out["ms"].sum()
    return out
