"""``liccs compare RUN_A RUN_B [...]``: report folders side by side, what users of trtexec and Polygraphy do by hand.

1. **Manifests first**: every key whose value differs between the runs (package versions, device, commit, config),
   flattened to dotted keys.
2. **Every table the runs share**, aligned on its key columns (the text columns: engine, codec, stage, source,
   target, variant, ...), the first run as the baseline:
   - timings (``p50_ms``): the ratio to the baseline, flagged when the change is larger than either run's own spread
     (``p90_ms − min_ms`` of that row);
   - every other number (ASR, accuracy, parity errors, bpp, ...): the difference to the baseline, flagged when it
     is not 0 (exact: the same code on the same data gives the same numbers);
   - rows that only some runs have are listed as such.

Markdown to stdout; with ``out``, also ``compare.md`` and ``compare.html`` (the report's page style).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from liccs.errors import InputError
from liccs.report import Report
from liccs.report.tables import to_markdown

#: Timing columns: compared as ratios against each run's spread, not as exact numbers.
TIMED = ("p50_ms",)
#: Columns that describe how a run went, not what it found (not compared).
IGNORED = {"seconds", "duration_s", "n", "mean_ms", "std_ms", "min_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms",
           "images_per_s", "megapixels_per_s", "peak_rss_mib", "share", "achieved_gflops", "fraction_of_ceiling",
           "ceiling_gflops", "sum_p50_ms", "end_to_end_p50_ms", "a", "b", "r2", "path", "file", "key", "cached",
           "status", "summary", "dominant_stage"}


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def manifest_diff(runs: Sequence[Path]) -> pd.DataFrame:
    """One row per manifest key whose value differs between ``runs`` (the run's own timings left out)."""
    flats = []
    for r in runs:
        path = r / "manifest.json"
        if not path.is_file():
            raise InputError(f"{r} is not a liccs report folder (no manifest.json)")
        flats.append(_flat({k: v for k, v in json.loads(path.read_text()).items()
                            if k not in ("seconds", "executor", "report", "created")}))
    keys = sorted(set().union(*flats))
    rows = [{"key": k, **{r.name: f.get(k, "—") for r, f in zip(runs, flats, strict=True)}} for k in keys
            if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1]
    return pd.DataFrame(rows)


def _keys(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c]) and c not in IGNORED]


def compare_table(name: str, frames: Sequence[pd.DataFrame], labels: Sequence[str]) -> pd.DataFrame:
    """Every compared cell of one table across runs: key columns, column, values per run, change, flagged."""
    keys = [k for k in _keys(frames[0]) if all(k in f.columns for f in frames)]
    numeric = [c for c in frames[0].columns if c not in keys and c not in IGNORED and all(c in f for f in frames)
               and all(pd.api.types.is_numeric_dtype(f[c]) for f in frames)]
    indexed = [f.assign(_n=f.groupby(keys, dropna=False).cumcount() if keys else range(len(f)))
               .set_index([*keys, "_n"]) for f in frames]
    rows = []
    for idx in sorted(set().union(*(set(f.index) for f in indexed)), key=str):
        where = dict(zip([*keys, "_n"], idx if isinstance(idx, tuple) else (idx,), strict=True))
        where.pop("_n")
        present = [idx in f.index for f in indexed]
        if not all(present):
            rows.append({"table": name, **where, "column": "(row)", "flag": "only in "
                         + ", ".join(lab for lab, p in zip(labels, present, strict=True) if p)})
            continue
        for col in numeric:
            vals = [f.loc[idx, col] for f in indexed]
            vals = [v.iloc[0] if isinstance(v, pd.Series) else v for v in vals]
            base = vals[0]
            if col in TIMED:
                spread = [f.loc[idx, "p90_ms"] - f.loc[idx, "min_ms"] if {"p90_ms", "min_ms"} <= set(f.columns)
                          else 0.0 for f in indexed]
                moved = [abs(v - base) > max(spread[0], spread[i]) for i, v in enumerate(vals)]
                change = ", ".join(f"×{v / base:.3g}" if base else "—" for v in vals[1:])
            else:
                same = [(pd.isna(v) and pd.isna(base)) or v == base for v in vals]
                moved = [not s for s in same]
                change = ", ".join("0" if s else (f"{v - base:+.4g}" if isinstance(v, int | float) and
                                                  not (isinstance(v, float) and math.isnan(v)) else "≠")
                                   for s, v in zip(same[1:], vals[1:], strict=True))
            if any(moved) or col in TIMED:
                rows.append({"table": name, **where, "column": col, **dict(zip(labels, vals, strict=True)),
                             "change": change, "flag": "CHANGED" if any(moved) else ""})
    df = pd.DataFrame(rows)
    constant = [k for k in keys if k in df.columns and df[k].nunique(dropna=False) <= 1 and len(df) > 1]
    return df.drop(columns=constant)  # key columns with one value say nothing in the comparison


def compare_runs(runs: Sequence[str | Path], out: str | Path | None = None) -> dict[str, Any]:
    """Compare report folders (the first is the baseline); returns {"manifest", "tables", "flagged", "markdown"}."""
    paths = [Path(r) for r in runs]
    if len(paths) < 2:
        raise InputError("compare needs two or more report folders")
    labels = [p.name if [q.name for q in paths].count(p.name) == 1 else str(p) for p in paths]
    man = manifest_diff(paths)
    shared = sorted(set.intersection(*({t.stem for t in (p / "tables").glob("*.csv")} for p in paths)))
    tables = {n: compare_table(n, [pd.read_csv(p / "tables" / f"{n}.csv") for p in paths], labels) for n in shared}
    tables = {n: t for n, t in tables.items() if not t.empty}
    flagged = pd.concat([t[t["flag"] != ""] for t in tables.values()], ignore_index=True) if tables else pd.DataFrame()
    md = [f"# liccs compare: {' vs '.join(labels)} (baseline {labels[0]})", "",
          f"{len(flagged)} flagged cell(s) in {len(shared)} shared table(s).", "", "## Manifests: what differs", "",
          to_markdown(man) if not man.empty else "nothing", ""]
    for n, t in tables.items():
        md += [f"## {n}", "", to_markdown(t), ""]
    text = "\n".join(md)
    if out is not None:
        rep = Report(f"liccs compare: {' vs '.join(labels)}", notes=[f"baseline: {labels[0]}",
                                                                    f"{len(flagged)} flagged cell(s)"])
        if not man.empty:
            rep.add_table("manifest_diff", man, "Manifest keys whose values differ.")
        for n, t in tables.items():
            rep.add_table(f"compare_{n}", t, f"{n}: timings as ratios (flagged beyond each run's spread), other "
                          "numbers as differences (flagged when not 0).")
        rep.write(out, compared=[str(p) for p in paths])
    return {"manifest": man, "tables": tables, "flagged": flagged, "markdown": text}
