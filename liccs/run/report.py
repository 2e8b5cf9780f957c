"""The run's report folder: every table of the stages, the standard figures, skipped engines with reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from liccs.report import Report
from liccs.run.setup import Context

#: (table name, caption, columns shown in report.md/html; None: all). Files keep every column.
TABLES: list[tuple[str, str, list[str] | None]] = [
    ("dominant", "Which stage dominates, per engine and codec (first sweep point).", None),
    ("transfer_gap_summary", "Transfer gap ASR(reference) − ASR(engine), per engine, precision and variant.", None),
    ("whitebox", "White-box: each source evaluated on itself (hard rounding), per engine.", None),
    ("transfer", "Transfer: engine × source × target × variant (ASR over clean-correct images).",
     ["engine", "variant", "source", "target", "clean_acc", "adv_acc", "asr", "fooling_rate", "agree_clean",
      "agree_adv"]),
    ("transfer_gap", "Transfer gap per cell.", None),
    ("transfer_routes", "How each target runs on each engine.", None),
    ("rate_distortion", "Rate-distortion from real bitstreams of the deployed codec (mean over the run's images).",
     None),
    ("latency", "Per-stage latency at the first sweep point, with FLOPs and achieved / matmul ceiling.",
     ["engine", "codec", "stage", "batch_size", "height", "width", "p50_ms", "p90_ms", "p99_ms", "min_ms",
      "images_per_s", "gflop", "achieved_gflops", "ceiling", "fraction_of_ceiling", "share"]),
    ("sweep", "Batch × resolution sweep.", ["engine", "codec", "stage", "batch_size", "height", "width", "p50_ms",
                                            "images_per_s", "megapixels_per_s"]),
    ("copy_compute", "CUDA runs: PyTorch engines' stages as host→device copy, compute, device→host copy, eager and "
     "as CUDA-graph replay (first sweep point).",
     ["engine", "codec", "stage", "cuda_graph", "batch_size", "height", "width", "p50_ms", "h2d_p50_ms",
      "compute_p50_ms", "d2h_p50_ms", "peak_device_mib", "error"]),
    ("growth", "Growth of time with pixels: p50 ≈ a·pixels^b (b = 1: linear).", None),
    ("parity", "Parity of every exported graph and deployed codec against PyTorch.",
     ["model", "stage", "engine", "status", "passed", "max_abs_err", "psnr_db", "top1_agreement", "failures",
      "reason"]),
    ("export", "Export of every graph.", None),
    ("attacks", "Adversarial image sets (cached under the run folder by key).", None),
]


def build_report(ctx: Context, tables: dict[str, pd.DataFrame], skipped: dict[str, str],
                 seconds: dict[str, float], extra: list[tuple[str, str, list[str] | None]] | None = None) -> Report:
    """A :class:`Report` of the run's tables (``extra``: the paper stages' tables first), with notes and skips."""
    cfg = ctx.cfg
    rep = Report(cfg.report.title, notes=list(ctx.notes), config=cfg.to_dict())
    rep.add_note("Stage times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    if "dominant" in tables and not tables["dominant"].empty:
        rep.add_note("Dominant stage: " + "; ".join(tables["dominant"]["summary"]))
    gaps = tables.get("transfer_gap_summary")
    if gaps is not None and not gaps.empty:
        rep.add_note("Transfer gap ASR(reference) − ASR(engine), mean over cells: " + "; ".join(
            f"{r.engine} ({r.precision}, {r.variant}) {r.mean_gap:+.3f}" for r in gaps.itertuples()))
    for name, reason in skipped.items():
        rep.skip(name, reason)
    for name, caption, cols in [*(extra or []), *TABLES]:
        df = tables.get(name)
        if df is not None and not df.empty:
            rep.add_table(name, df, caption, cols)
    if cfg.report.figures:
        rep.add_standard_figures()
    return rep


def write(ctx: Context, tables: dict[str, pd.DataFrame], skipped: dict[str, str], seconds: dict[str, float],
          out: Path, extra: list[tuple[str, str, list[str] | None]] | None = None,
          commit: str | None = None) -> dict[str, Any]:
    """Write the report folder under ``out``; returns its files by role. ``commit``: the checkout's commit when
    the run started (the manifest's ``commit``; see :func:`liccs.manifest.manifest`)."""
    rep = build_report(ctx, tables, skipped, seconds, extra)
    return rep.write(out, weights=ctx.weights, seconds=seconds, started_at=commit)
