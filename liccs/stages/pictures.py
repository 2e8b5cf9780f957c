"""The run's engine pictures (:mod:`liccs.report.figures_engines`), drawn last from the tables every stage made:
stages per engine, stage budget against the end to end, rate–distortion–latency, transfer gap heatmap.

On when ``report.figures`` is; a picture whose table the run did not make is left out, saying so in a note.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from matplotlib.figure import Figure as MplFigure

from liccs.config import RunConfig
from liccs.core.errors import InputError
from liccs.engines import ENGINES
from liccs.report.figures_engines import (
    rd_latency_figure,
    series_per_axes,
    stage_budget_figure,
    stage_engines_figure,
    transfer_gap_figure,
)
from liccs.report.plots import MAX_SERIES, to_png
from liccs.stage import Context, Figure, Results, StageBase, StageResult, TableSpec, register
from liccs.stages.profile import RUNS


def engine_pictures(results: Results) -> tuple[list[tuple[str, MplFigure, str]], pd.DataFrame]:
    """(title, figure, caption) of each picture the run's tables allow, and a row per picture: its table, whether
    it was drawn (else why not), its panels and the most series on one of them."""
    t = results.tables
    latency, dominant, rd, gap = (t.get(n) for n in ("latency", "dominant", "rate_distortion", "transfer_gap"))
    precision = {e: ENGINES.get(e).precision for e in ENGINES.names()}
    specs: list[tuple[str, str, Callable[[], MplFigure], str]] = [
        ("Stages per engine", "latency", lambda: stage_engines_figure(latency),
         "One bar group per stage, one colour per engine; bar p50, whiskers p90 (thick) and p99 (thin), at the "
         "first sweep point."),
        ("Stage budget per engine", "latency", lambda: stage_budget_figure(latency, dominant, runs=RUNS),
         "Each stage's p50 × its calls per image (h_s and the index search twice), stacked per engine, against "
         "the measured end to end (diamond)."),
        ("Rate–distortion–latency", "rate_distortion", lambda: rd_latency_figure(rd, dominant, precision=precision),
         "bpp against PSNR per engine and precision (real bitstreams); colour: the engine's end-to-end p50 for the "
         "architecture's profiled codec (its qualities share the networks' shapes); red rings: Pareto-optimal in "
         "bpp, PSNR and latency."),
        ("Transfer gap heatmap", "transfer_gap", lambda: transfer_gap_figure(gap),
         "ASR on the engine minus ASR on PyTorch per source × target (red: the engine is fooled more often)."),
    ]
    out, rows = [], []
    for title, table, make, caption in specs:
        row = {"picture": title, "table": table, "drawn": False, "panels": 0, "max_series": 0, "reason": ""}
        df = t.get(table)
        if df is None or df.empty:
            rows.append(row | {"reason": f"the run made no {table} table"})
            continue
        try:
            fig = make()
        except InputError as e:
            rows.append(row | {"reason": str(e)})
            continue
        series = series_per_axes(fig)
        out.append((title, fig, caption))
        rows.append(row | {"drawn": True, "panels": len(series), "max_series": max(series, default=0)})
    return out, pd.DataFrame(rows)


class PicturesStage(StageBase):
    """Draws the engine pictures from the tables of the stages before it."""

    name, section, order = "pictures", "report", 90
    tables = (TableSpec("pictures", f"The engine pictures: drawn or why not, panels, and the most series on one "
                        f"panel (at most {MAX_SERIES}).", order=90),)

    def enabled(self, cfg: RunConfig) -> bool:
        return bool(cfg.report.figures)

    def run(self, ctx: Context, results: Results) -> StageResult:
        pictures, table = engine_pictures(results)
        missing = table[~table["drawn"]]
        notes = ["Pictures not drawn: " + "; ".join(f"{r.picture} ({r.reason})" for r in missing.itertuples())
                 ] if len(missing) else []
        return StageResult({"pictures": table}, notes=notes,
                           figures=[Figure(title, to_png(fig), caption) for title, fig, caption in pictures])


register(PicturesStage())
