"""``liccs reports status``: every report folder under a root against the code as it is now (current, stale with
the modules that changed, or unknown), from the code hashes each manifest records
(:mod:`liccs.core.provenance`). ``liccs reports operators``: where a stage spends its time per engine, from a
report's operator table (:func:`liccs.profiling.op_tables.top_operators`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from liccs.core.provenance import Staleness, staleness
from liccs.errors import InputError
from liccs.profiling.op_tables import top_operators


def reports_status(root: str | Path = "reports") -> list[Staleness]:
    """The status of every folder under ``root`` that holds a ``manifest.json`` (nested ones included), and of every
    top-level folder that holds none (its results name no code: ``unknown``)."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"{base} is not a folder of reports")
    rows = [staleness(m.parent) for m in sorted(base.rglob("manifest.json"))]
    for d in sorted(p for p in base.iterdir() if p.is_dir() and not any(p.rglob("manifest.json"))):
        rows.append(Staleness(str(d), "unknown", why="it holds no manifest.json, so nothing records the code, the "
                                                     "weights or the commit that made it: regenerate it to know"))
    return sorted(rows, key=lambda r: r.report)


def status_table(rows: list[Staleness], shown: int = 4) -> pd.DataFrame:
    """One line per report: its status, why, and the first ``shown`` changed modules."""
    return pd.DataFrame([{"report": r.report, "status": r.status, "why": r.why,
                          "changed": ", ".join(r.changed[:shown]) + (f" (+{len(r.changed) - shown} more)"
                                                                     if len(r.changed) > shown else "")}
                         for r in rows])


def operators_summary(report: str | Path, stage: str = "g_s", top: int = 3) -> pd.DataFrame:
    """The ``top`` slowest operators of ``stage`` per engine in ``report``'s ``tables/operators.csv``, without the
    key columns that hold one value (codec, resolution in a one-codec run)."""
    path = Path(report) / "tables" / "operators.csv"
    if not path.is_file():
        raise InputError(f"{path}: no operator table (a run that profiles its stages writes one)")
    if top < 1:
        raise InputError(f"--top {top}: at least 1 operator per engine")
    try:
        table = top_operators(pd.read_csv(path), stage, top)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: {str(e).splitlines()[0]}") from None
    constant = [c for c in ("codec", "batch_size", "height", "width") if c in table and table[c].nunique() <= 1]
    return table.drop(columns=constant + ["gflop"])
