"""``liccs reports status``: every report folder under a root against the code as it is now (current, stale with
the modules that changed, or unknown), from the code hashes each manifest records (:mod:`liccs.core.provenance`).
``liccs reports stand REPORT --why TEXT``: the judgement that a stale report's results still stand, pinned to the
changed modules as they are (``standing.json`` in the report folder); status then says *stands* with the reason,
until one of those modules, or another, changes again. ``liccs reports operators``: where a stage spends its time
per engine, from a report's operator table (:func:`liccs.profiling.op_tables.top_operators`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from liccs.core.errors import InputError
from liccs.core.fileio import write_json
from liccs.core.provenance import PACKAGE, Staleness, source_hash, staleness
from liccs.profiling.op_tables import top_operators


def reports_status(root: str | Path = "reports") -> list[Staleness]:
    """The status of every folder under ``root`` that holds a ``manifest.json`` (nested ones included), and of every
    top-level folder that holds none (its results name no code: ``unknown``)."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"{base} is not a folder of reports")
    rows = [_judged(staleness(m.parent)) for m in sorted(base.rglob("manifest.json"))]
    for d in sorted(p for p in base.iterdir() if p.is_dir() and not any(p.rglob("manifest.json"))):
        rows.append(Staleness(str(d), "unknown", why="it holds no manifest.json, so nothing records the code, the "
                                                     "weights or the commit that made it: regenerate it to know"))
    return sorted(rows, key=lambda r: r.report)


#: The file in a report folder that records why the report stands although code it ran has changed.
STANDING = "standing.json"


def _now(changed: tuple[str, ...], root: Path) -> dict[str, str]:
    """Each changed path (``rel`` or ``rel (removed)``) → its source hash now, or ``removed``."""
    out = {}
    for c in changed:
        p = root / c.removesuffix(" (removed)")
        out[c.removesuffix(" (removed)")] = source_hash(p) if p.is_file() else "removed"
    return out


def _judged(row: Staleness, root: Path = PACKAGE.parent) -> Staleness:
    """A stale row with a judgement that it stands (:data:`STANDING`) whose modules are as judged: ``stands``."""
    path = Path(row.report) / STANDING
    if row.status != "stale" or not path.is_file():
        return row
    try:
        judged = json.loads(path.read_text())
        why, pinned = str(judged["why"]), dict(judged["judged"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return replace(row, why=f"{row.why}; {path} is not a readable judgement ({type(e).__name__})")
    now = _now(row.changed, root)
    moved = sorted(k for k in now.keys() | pinned.keys() if now.get(k) != pinned.get(k))
    if moved:
        return replace(row, why=f"{row.why}; its judgement that it stands ({STANDING}) predates changes to "
                                f"{', '.join(moved[:4])}{' …' if len(moved) > 4 else ''}")
    return replace(row, status="stands", why=f"{row.why}; judged to stand: {why}")


def record_standing(report: str | Path, why: str, root: Path = PACKAGE.parent) -> Staleness:
    """Write ``report``'s :data:`STANDING`: ``why`` its results stand, pinned to its changed modules as they are now.
    Refused for a report that is not stale (nothing to judge) or without a reason."""
    report = Path(report)
    row = staleness(report, root)
    if row.status != "stale":
        raise InputError(f"{report}: {row.status} ({row.why}); only a stale report's standing is recorded")
    if not why.strip():
        raise InputError(f"{report}: --why is empty; say why its results stand (what shows the changes leave them)")
    write_json(report / STANDING, {"why": why.strip(), "judged": _now(row.changed, root)})
    return _judged(row, root)


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
