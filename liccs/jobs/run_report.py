"""The run's report folder: every table of the stages, the standard figures, skipped engines with reasons."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from liccs.report import Report
from liccs.stage import Context, Results, TableSpec


def _command(command: Sequence[str] | None, out: str) -> str:
    return shlex.join([*command, "--out", out]) if command else f"liccs run CONFIG --out {out}"


def reproduce_note(ctx: Context, command: Sequence[str] | None, commit: str | None) -> str:
    """How to reproduce the report and check the result: the command, the weights' and data's checksums, the gate."""
    cfg = ctx.cfg
    cmd = _command(command, "runs/check")
    weights = "; ".join(f"{n} {w['sha256'][:12]}" + (f" ({w['origin']})" if w.get("origin") else "")
                        for n, w in ctx.weights.items() if w.get("sha256")) or "random weights only"
    data = (f"{ctx.data['images']} images of {ctx.data['source']}, files sha256 {ctx.data['files_sha256'][:12]}, "
            f"pixels sha256 {ctx.data['pixels_sha256'][:12]}") if ctx.data else cfg.data.source
    return (f"Reproduce: `{cmd}` in a clone at commit {(commit or 'unknown')[:12]} with an empty "
            f"cache, then `liccs compare --fail-on verdicts {cfg.run.out} runs/check` (exit 0: every verdict "
            f"stands; timings are informational). Weights (sha256): {weights}. Data: {data}. Full checksums in "
            "manifest.json (weights, data).")


def build_report(ctx: Context, results: Results, specs: Sequence[TableSpec], seconds: dict[str, float],
                 command: Sequence[str] | None = None, commit: str | None = None) -> Report:
    """A :class:`Report` of the run's tables, laid out by the stages' ``specs`` (by ``order``), with notes, skipped
    items and the stages' figures."""
    tables = results.tables
    cfg = ctx.cfg
    rep = Report(cfg.report.title, notes=[reproduce_note(ctx, command, commit), *ctx.notes], config=cfg.to_dict())
    rep.add_note("Stage times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    for name, reason in results.skipped.items():
        rep.skip(name, reason)
    for spec in sorted(specs, key=lambda t: t.order):
        df = tables.get(spec.name)
        if df is not None and not df.empty:
            rep.add_table(spec.name, df, spec.caption, list(spec.columns) if spec.columns else None, spec.files)
    if cfg.report.figures:
        rep.add_standard_figures()
        for fig in results.figures:
            rep.add_figure(fig.title, fig.png, fig.caption)
    return rep


def write(ctx: Context, results: Results, specs: Sequence[TableSpec], seconds: dict[str, float], out: Path,
          commit: str | None = None, command: Sequence[str] | None = None, **manifest_extra: Any) -> dict[str, Any]:
    """Write the report folder under ``out``; returns its files by role. ``commit``: the checkout's commit when
    the run started (the manifest's ``commit``; see :func:`liccs.core.manifest.manifest`); ``command``: the command line
    that made it."""
    rep = build_report(ctx, results, specs, seconds, command, commit)
    reproduce = {"command": _command(command, "runs/check"),
                 "gate": f"liccs compare --fail-on verdicts {ctx.cfg.run.out} runs/check"}
    return rep.write(out, weights=ctx.weights, data=ctx.data, seconds=seconds, started_at=commit,
                     command=_command(command, ctx.cfg.run.out), reproduce=reproduce, **manifest_extra)
