"""Chrome-trace JSON (what Perfetto and ``chrome://tracing`` open) from per-operator events.

An :class:`OpEvent` is one operator call: its node, operator type, start and duration (µs, on one clock per
profile) and the iteration it belongs to. :func:`chrome_trace` lays them out as complete events
(``"ph": "X"``), one per call, category ``operator``, with one ``iteration`` event spanning each iteration on
its own track, so that a stage's run reads as rows of operators under the iteration that called them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liccs.core.errors import InputError
from liccs.core.fileio import atomic_write_text

#: The ``cat`` of operator events (one per operator call) and of iteration spans.
OPERATOR, ITERATION = "operator", "iteration"


@dataclass(frozen=True)
class OpEvent:
    """One operator call: ``node`` (the graph's node name), ``op_type``, start ``ts_us`` and ``dur_us`` (µs),
    ``iteration`` (0-based), where it ran (``precision``: the kernel or execution type, ``provider``) and the
    thread it ran on."""

    node: str
    op_type: str
    ts_us: float
    dur_us: float
    iteration: int = 0
    precision: str = ""
    provider: str = ""
    tid: int = 0
    args: Mapping[str, Any] = field(default_factory=dict)


def chrome_trace(events: Iterable[OpEvent], *, process: str = "liccs", spans: Iterable[tuple[float, float]] = (),
                 meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A Chrome-trace object: one ``X`` event per operator call (thread ``tid + 1``), one per iteration span
    (``spans``: (start, duration) µs, thread 0), the process named ``process``; ``meta`` goes to ``otherData``."""
    trace: list[dict[str, Any]] = [{"name": "process_name", "ph": "M", "pid": 1, "tid": 0,
                                    "args": {"name": process}}]
    for i, (ts, dur) in enumerate(spans):
        trace.append({"name": f"iteration {i}", "cat": ITERATION, "ph": "X", "ts": float(ts), "dur": float(dur),
                      "pid": 1, "tid": 0, "args": {"iteration": i}})
    for e in events:
        args = {"op_type": e.op_type, "iteration": e.iteration, **({"precision": e.precision} if e.precision else {}),
                **({"provider": e.provider} if e.provider else {}), **dict(e.args)}
        trace.append({"name": e.node, "cat": OPERATOR, "ph": "X", "ts": float(e.ts_us), "dur": float(e.dur_us),
                      "pid": 1, "tid": e.tid + 1, "args": args})
    return {"traceEvents": trace, "displayTimeUnit": "ms", "otherData": dict(meta or {})}


def write_trace(path: str | os.PathLike[str], trace: Mapping[str, Any]) -> Path:
    """Write ``trace`` (from :func:`chrome_trace`) as JSON, atomically."""
    return atomic_write_text(Path(path), json.dumps(trace, default=str))


def check_trace(trace: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The operator events of a Chrome-trace object; raises :class:`InputError` when an event lacks what
    Perfetto needs (``name``, ``ph``, ``ts``, ``dur`` ≥ 0 for complete events, ``pid``, ``tid``)."""
    events = trace.get("traceEvents")
    if not isinstance(events, list):
        raise InputError("a Chrome trace needs a traceEvents list")
    for i, e in enumerate(events):
        missing = [k for k in ("name", "ph", "pid", "tid") if k not in e]
        if e.get("ph") == "X":
            missing += [k for k in ("ts", "dur") if not isinstance(e.get(k), (int, float))]
            if not missing and e["dur"] < 0:
                raise InputError(f"trace event {i} ({e['name']}) has a negative duration")
        if missing:
            raise InputError(f"trace event {i} lacks {missing}: {e}")
    return [e for e in events if e.get("cat") == OPERATOR]
