"""The run's report folder: every table of the stages, the standard figures, skipped engines with reasons."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from liccs.report import Report
from liccs.stage import Context, Results, TableSpec


def build_report(ctx: Context, results: Results, specs: Sequence[TableSpec], seconds: dict[str, float]) -> Report:
    """A :class:`Report` of the run's tables, laid out by the stages' ``specs`` (by ``order``), with notes, skipped
    items and the stages' figures."""
    tables = results.tables
    cfg = ctx.cfg
    rep = Report(cfg.report.title, notes=list(ctx.notes), config=cfg.to_dict())
    rep.add_note("Stage times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    for name, reason in results.skipped.items():
        rep.skip(name, reason)
    for spec in sorted(specs, key=lambda t: t.order):
        df = tables.get(spec.name)
        if df is not None and not df.empty:
            rep.add_table(spec.name, df, spec.caption, list(spec.columns) if spec.columns else None)
    if cfg.report.figures:
        rep.add_standard_figures()
        for fig in results.figures:
            rep.add_figure(fig.title, fig.png, fig.caption)
    return rep


def write(ctx: Context, results: Results, specs: Sequence[TableSpec], seconds: dict[str, float], out: Path,
          commit: str | None = None, **manifest_extra: Any) -> dict[str, Any]:
    """Write the report folder under ``out``; returns its files by role. ``commit``: the checkout's commit when
    the run started (the manifest's ``commit``; see :func:`liccs.manifest.manifest`)."""
    rep = build_report(ctx, results, specs, seconds)
    return rep.write(out, weights=ctx.weights, seconds=seconds, started_at=commit, **manifest_extra)
