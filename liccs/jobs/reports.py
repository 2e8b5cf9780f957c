"""``liccs reports status``: every report folder under a root against the code as it is now (current, stale with
the modules that changed, or unknown), from the code hashes each manifest records
(:mod:`liccs.core.provenance`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from liccs.core.provenance import Staleness, staleness
from liccs.errors import InputError


def reports_status(root: str | Path = "reports") -> list[Staleness]:
    """The status of every folder under ``root`` that holds a ``manifest.json`` (nested ones included)."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"{base} is not a folder of reports")
    return [staleness(m.parent) for m in sorted(base.rglob("manifest.json"))]


def status_table(rows: list[Staleness], shown: int = 4) -> pd.DataFrame:
    """One line per report: its status, why, and the first ``shown`` changed modules."""
    return pd.DataFrame([{"report": r.report, "status": r.status, "why": r.why,
                          "changed": ", ".join(r.changed[:shown]) + (f" (+{len(r.changed) - shown} more)"
                                                                     if len(r.changed) > shown else "")}
                         for r in rows])
