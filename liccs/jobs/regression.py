"""The regression view of ``liccs compare``: per stage × engine, how much slower or faster a run's median stage time
is than the baseline's, judged against the runs' own spread.

For every row of a timing table (default ``latency``) the two runs share, keyed on engine and stage (and codec,
device, batch size and resolution where the table has them):

- ``ratio = p50_ms(run) / p50_ms(baseline)``;
- each run's own spread of that row, as a ratio to its own median: ``[low / p50, p90 / p50]``, ``low`` being
  ``p10_ms`` where the table has it, else ``min_ms`` (liccs's latency tables keep min, p50, p90, p99);
- **flagged** ``slower`` when the ratio exceeds both runs' ``p90 / p50``, ``faster`` when it lies below both runs'
  ``low / p50``: a change of the median that neither run's own scatter reaches. A stage whose timings scatter
  (a p90 at 14× the median on a loaded machine) needs a large change to be flagged; a tight one, a small change.

Timing stays informational: the view never fails ``--fail-on``; ``--fail-on-slower RATIO`` fails a comparison on a
flagged ``slower`` row whose ratio is at least ``RATIO``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

#: The table the view reads by default.
TIMING_TABLE = "latency"
#: Columns that identify a timed row (those the tables have).
KEYS = ("codec", "engine", "stage", "device", "batch_size", "height", "width")
#: Columns each run's table must have.
NEEDED = ("engine", "stage", "p50_ms", "p90_ms")
#: The spread's lower edge, first found.
LOW = ("p10_ms", "min_ms")


def missing_columns(frame: pd.DataFrame) -> list[str]:
    """The columns the view needs that ``frame`` lacks (empty when it can be compared)."""
    missing = [c for c in NEEDED if c not in frame.columns]
    if not any(c in frame.columns for c in LOW):
        missing.append(" or ".join(LOW))
    return missing


def _low(frame: pd.DataFrame) -> str:
    return next(c for c in LOW if c in frame.columns)


def _band(frame: pd.DataFrame) -> pd.DataFrame:
    p50 = frame["p50_ms"].where(frame["p50_ms"] > 0)
    return pd.DataFrame({"low": frame[_low(frame)] / p50, "high": frame["p90_ms"] / p50}, index=frame.index)


def stage_ratios(base: pd.DataFrame, other: pd.DataFrame, label: str = "run",
                 base_label: str = "baseline") -> pd.DataFrame:
    """One row per stage × engine (× codec, resolution, ...) of ``base`` and ``other``: both medians, ``ratio``
    (other / base), the spread band ``band_low`` … ``band_high`` the ratio must leave to be flagged, and ``flag``
    (``slower``, ``faster``, ``""``, or ``only in …`` for a row one run lacks)."""
    for name, f in ((base_label, base), (label, other)):
        if missing_columns(f):
            raise ValueError(f"{name}: the timing table lacks column(s) {missing_columns(f)}")
    keys = [k for k in KEYS if k in base.columns and k in other.columns]
    a, b = (f.drop_duplicates(keys).set_index(keys) for f in (base, other))
    band_a, band_b = _band(a), _band(b)
    rows = []
    for idx in list(dict.fromkeys([*a.index, *b.index])):
        where = dict(zip(keys, idx if isinstance(idx, tuple) else (idx,), strict=True))
        if idx not in a.index or idx not in b.index:
            rows.append({"run": label, **where, "flag": f"only in {base_label if idx in a.index else label}"})
            continue
        pa, pb = float(a.at[idx, "p50_ms"]), float(b.at[idx, "p50_ms"])
        ratio = pb / pa if pa > 0 and math.isfinite(pb) else float("nan")
        low = float(pd.Series([band_a.at[idx, "low"], band_b.at[idx, "low"]], dtype=float).min())
        high = float(pd.Series([band_a.at[idx, "high"], band_b.at[idx, "high"]], dtype=float).max())
        flag = "" if not math.isfinite(ratio) else "slower" if ratio > high else "faster" if ratio < low else ""
        rows.append({"run": label, **where, "base_p50_ms": pa, "p50_ms": pb, "ratio": ratio, "band_low": low,
                     "band_high": high, "flag": flag})
    cols = ["run", *keys, "base_p50_ms", "p50_ms", "ratio", "band_low", "band_high", "flag"]
    return pd.DataFrame(rows).reindex(columns=cols)


def regression_view(frames: Sequence[pd.DataFrame | None], labels: Sequence[str],
                    table: str = TIMING_TABLE) -> tuple[pd.DataFrame, str]:
    """Each run's stage ratios against the first (``frames``: the runs' ``table``, ``None`` where a run has none);
    returns (the view, "") or (an empty frame, why there is no view)."""
    absent = [lab for lab, f in zip(labels, frames, strict=True) if f is None]
    if absent:
        return pd.DataFrame(), f"no tables/{table}.csv in {', '.join(absent)}"
    lacking = {lab: missing_columns(f) for lab, f in zip(labels, frames, strict=True) if missing_columns(f)}
    if lacking:
        return pd.DataFrame(), "; ".join(f"tables/{table}.csv of {lab} lacks column(s) {', '.join(m)}"
                                         for lab, m in lacking.items()) + " (not a stage timing table)"
    parts = [stage_ratios(frames[0], f, lab, labels[0]) for f, lab in zip(frames[1:], labels[1:], strict=True)]
    return pd.concat(parts, ignore_index=True), ""


def slower_than(view: pd.DataFrame, ratio: float) -> pd.DataFrame:
    """The flagged ``slower`` rows of ``view`` whose ratio is at least ``ratio`` (``--fail-on-slower``)."""
    if view.empty:
        return view
    return view[(view["flag"] == "slower") & (view["ratio"] >= ratio)]


def shown(view: pd.DataFrame) -> pd.DataFrame:
    """The view without key columns that hold one value (the Markdown and HTML form)."""
    constant = [c for c in ("run", *KEYS) if c in view.columns and view[c].nunique(dropna=False) <= 1
                and c not in ("engine", "stage")]
    return view.drop(columns=constant)
