"""Tables of per-operator profiles (:mod:`.operators`): one row per operator node, and the check that the
operators add up to the stage.

FLOPs per call come from the engine where it counts them (OpenVINO: the model's static shapes; PyTorch: the
profiler's count) or from the call's shapes (ONNX Runtime's input/output shapes; PyTorch's transposed
convolutions and linear layers): convolutions ``2 · out elements · C_in/groups · k_h · k_w``, transposed
convolutions ``2 · in elements · C_out/groups · k_h · k_w``, matmuls ``2 · out elements · K``. Other operators
have none (their achieved rate is left empty).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from liccs.profiling.operators import OperatorProfile
from liccs.profiling.trace import OpEvent, chrome_trace

#: operators whose summed time is off the stage's by more than this (relative) are flagged
TOLERANCE = 0.10


def _prod(shape: Sequence[int]) -> int:
    return int(np.prod([int(d) for d in shape])) if len(shape) else 0


def _shapes(typed: Any) -> list[list[int]]:
    """ONNX Runtime's ``[{"float": [1, 3, 8, 8]}, ...]`` → ``[[1, 3, 8, 8], ...]``."""
    return [list(next(iter(d.values()))) if isinstance(d, dict) and d else [] for d in (typed or [])]


def shape_flops(op_type: str, inputs: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]] = ()) -> int:
    """FLOPs of one call of ``op_type`` from its input and output shapes (0 where it is not a conv or matmul)."""
    op = op_type.lower().removeprefix("aten::")
    weights = [s for s in inputs[1:] if len(s) >= 3]
    if "convtranspose" in op or "conv_transpose" in op:
        if not inputs or not weights or len(inputs[0]) < 3:
            return 0
        return 2 * _prod(inputs[0]) * _prod(weights[0][1:])  # weight [C_in, C_out/groups, k_h, k_w]
    if "conv" in op:
        if not outputs or not weights or len(outputs[0]) < 3:
            return 0
        return 2 * _prod(outputs[0]) * _prod(weights[0][1:])  # weight [C_out, C_in/groups, k_h, k_w]
    if "matmul" in op or op in ("gemm", "mm", "bmm"):
        if outputs and inputs and inputs[0]:
            return 2 * _prod(outputs[0]) * int(inputs[0][-1])
    if op == "linear" and len(inputs) > 1 and len(inputs[1]) == 2:
        return 2 * _prod(inputs[0]) * int(inputs[1][0])
    return 0


def event_flops(e: OpEvent) -> int:
    """FLOPs of one operator call (see the module docstring)."""
    if e.args.get("flops"):
        return int(e.args["flops"])
    if "input_type_shape" in e.args:  # ONNX Runtime (pre-packed weights: the graph's weight shape)
        inputs = _shapes(e.args["input_type_shape"])
        if "weight_shape" in e.args and not any(len(s) >= 3 for s in inputs[1:]):
            inputs = [inputs[0] if inputs else [], e.args["weight_shape"], *inputs[1:]]
        return shape_flops(e.op_type, inputs, _shapes(e.args.get("output_type_shape")))
    if e.args.get("profiler_flops"):  # torch.profiler's count (conv2d, mm, addmm, ...)
        return int(e.args["profiler_flops"])
    return shape_flops(e.op_type, e.args.get("input_shapes") or [])


def operator_table(profile: OperatorProfile, stage_ms: float | None = None,
                   ceiling_gflops: float | None = None) -> pd.DataFrame:
    """One row per operator node, slowest first: ``op_type``, ``node``, ``calls``, ``total_ms`` (over the profiled
    iterations), ``mean_ms`` (per call), ``ms_per_run``, ``share`` of the stage (``stage_ms``: its measured time
    per run; default the profiled runs' median wall time), ``precision`` and ``provider`` as executed,
    ``gflop`` per call, ``achieved_gflops`` and ``fraction_of_ceiling`` where it has FLOPs."""
    iters = max(1, profile.iterations)
    stage = stage_ms if stage_ms and math.isfinite(stage_ms) else float(np.median(profile.wall_ms or [float("nan")]))
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for e in profile.events:
        r = rows.setdefault((e.node, e.op_type), {"op_type": e.op_type, "node": e.node, "calls": 0, "total_ms": 0.0,
                                                  "precision": set(), "provider": set(), "flop": 0})
        r["calls"] += 1
        r["total_ms"] += e.dur_us / 1e3
        r["flop"] += event_flops(e)
        r["precision"].add(e.precision)
        r["provider"].add(e.provider)
    out = []
    for r in rows.values():
        mean_ms = r["total_ms"] / r["calls"]
        gflop = r.pop("flop") / r["calls"] / 1e9
        achieved = gflop / (mean_ms / 1e3) if gflop and mean_ms > 0 else float("nan")
        out.append(r | {"mean_ms": mean_ms, "ms_per_run": r["total_ms"] / iters, "share": r["total_ms"] / iters / stage,
                        "precision": ",".join(sorted(p for p in r["precision"] if p)),
                        "provider": ",".join(sorted(p for p in r["provider"] if p)),
                        "gflop": gflop if gflop else float("nan"), "achieved_gflops": achieved,
                        "fraction_of_ceiling": achieved / ceiling_gflops if ceiling_gflops else float("nan")})
    cols = ["op_type", "node", "calls", "total_ms", "mean_ms", "ms_per_run", "share", "precision", "provider",
            "gflop", "achieved_gflops", "fraction_of_ceiling"]
    return pd.DataFrame(out, columns=cols).sort_values("total_ms", ascending=False, ignore_index=True)


def top_operators(operators: pd.DataFrame, stage: str = "g_s", top: int = 3) -> pd.DataFrame:
    """The ``top`` slowest operator nodes of ``stage`` per engine (and codec, resolution) from a run's ``operators``
    table (:func:`operator_table`'s rows with their engine, codec and stage): ``ms_per_run``, ``share`` of the
    stage's timed p50, ``of_ops`` (share of the stage's summed operator time: it adds up to 1 where the profiled
    runs ran slower or faster than the timed ones), ``gflop``, ``achieved_gflops`` and ``fraction_of_ceiling``
    (empty where the operator has no FLOPs or the engine's precision has no measured ceiling)."""
    need = ["engine", "stage", "op_type", "node", "ms_per_run", "share", "achieved_gflops", "fraction_of_ceiling"]
    missing = [c for c in need if c not in operators.columns]
    if missing:
        raise ValueError(f"not an operators table: it lacks column(s) {missing}")
    rows = operators[operators["stage"] == stage]
    if rows.empty:
        stages = ", ".join(map(str, dict.fromkeys(operators["stage"])))
        raise ValueError(f"no operator of stage {stage!r} (the table profiles: {stages or 'nothing'})")
    keys = [k for k in ("engine", "codec", "batch_size", "height", "width") if k in rows.columns]
    rows = rows.assign(of_ops=rows["ms_per_run"] / rows.groupby(keys, sort=False)["ms_per_run"].transform("sum"))
    best = rows.sort_values("ms_per_run", ascending=False, kind="stable").groupby(keys, sort=False).head(top)
    order = {e: i for i, e in enumerate(dict.fromkeys(rows["engine"]))}
    best = best.sort_values("engine", key=lambda c: c.map(order), kind="stable")
    cols = [*keys, "op_type", "node", "precision", "ms_per_run", "share", "of_ops", "gflop", "achieved_gflops",
            "fraction_of_ceiling"]
    return best[[c for c in cols if c in best.columns]].reset_index(drop=True)


def coverage(profile: OperatorProfile, stage_ms: float | None, tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Whether the operators add up to the stage: ``ops_ms`` (summed operator time per run, median over the runs)
    against ``stage_ms`` (the stage's measured p50; the profiled runs' median wall time when not measured),
    ``flagged`` when they differ by more than ``tolerance``, and ``missing``: what the operators leave out, in ms
    per run."""
    per_run = np.zeros(max(1, profile.iterations))
    for e in profile.events:
        per_run[e.iteration] += e.dur_us / 1e3
    ops = float(np.median(per_run))  # medians throughout: one run slowed by the machine's load moves none of them
    wall = float(np.median(profile.wall_ms)) if profile.wall_ms else float("nan")
    inside = float(np.median(profile.inside_ms)) if profile.inside_ms else float("nan")
    measured = stage_ms is not None and math.isfinite(stage_ms) and stage_ms > 0
    ref = float(stage_ms) if measured else wall
    ratio = ops / ref if ref > 0 else float("nan")
    flagged = not math.isfinite(ratio) or abs(ratio - 1) > tolerance
    walls = np.asarray(profile.wall_ms[:len(per_run)], float)
    # each run's operators against that run's wall time: a run slowed by the load moves neither side alone
    own = float(np.median(per_run[:len(walls)] / walls)) if len(walls) and (walls > 0).all() else float("nan")
    missing = _missing(ops, ref, wall, inside, measured, tolerance) if flagged else ""
    return {"iterations": profile.iterations, "operators": len({e.node for e in profile.events}),
            "calls": len(profile.events), "ops_ms": ops, "stage_p50_ms": ref if measured else float("nan"),
            "profiled_wall_ms": wall, "engine_run_ms": inside, "ops_over_stage": ratio,
            "ops_over_profiled_wall": own, "flagged": flagged,
            "missing": missing, "profiler": profile.kind, "build_s": profile.build_s}


def _missing(ops: float, ref: float, wall: float, inside: float, measured: bool, tolerance: float) -> str:
    """What a flagged operator table leaves out (or adds), in ms per run: the run's own change of speed between
    the timing and the profile first, then the time inside and around the engine's run no operator holds."""
    against = "the stage's timed p50" if measured else "the profiled runs' wall time"
    parts = []
    if measured and abs(wall - ref) > tolerance * ref:
        parts.append(f"the profiled runs themselves took {wall:.3g} ms against the timed {ref:.3g} ms (the "
                     f"machine's load changed between the timing and the profile, or the profiler slowed the run)")
    if math.isfinite(inside):
        parts.append(f"{max(0.0, inside - ops):.3g} ms inside the engine's run between kernels (scheduling, "
                     f"allocation, fences) and {max(0.0, wall - inside):.3g} ms around it (feed and fetch copies, the "
                     f"Python binding) are in no operator")
    else:
        parts.append(f"{max(0.0, wall - ops):.3g} ms of the profiled run is in no operator's counter (request "
                     "overhead, input/output copies, nodes without a counter)")
    return (f"operators sum to {ratio_text(ops, ref)} of {against} ({ops:.3g} of {ref:.3g} ms per run), "
            + ("less" if ops < ref else "more") + " than the stage: " + "; ".join(parts))


def ratio_text(a: float, b: float) -> str:
    """``a / b`` as a percentage (``n/a`` when it has none)."""
    return f"{a / b:.0%}" if b > 0 and math.isfinite(a / b) else "n/a"


def trace_of(profile: OperatorProfile, process: str, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Chrome trace of ``profile`` (one event per operator call, one span per iteration)."""
    note = {"timestamps": "synthetic: counters give durations, laid end to end from each run's start"} \
        if profile.synthetic_ts else {}
    return chrome_trace(profile.events, process=process, spans=profile.spans,
                        meta={"engine": profile.engine, "profiler": profile.kind, **note, **dict(meta or {})})
