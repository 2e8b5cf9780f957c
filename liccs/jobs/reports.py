"""``liccs reports status``: every report folder under a root against the code as it is now (current, stale with
the modules that changed, or unknown), from the code hashes each manifest records
(:mod:`liccs.core.provenance`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from liccs.core.provenance import Staleness, staleness
from liccs.errors import InputError


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
