"""The regression picture of ``liccs compare``: per stage × engine, a run's median stage time over the baseline's.

:func:`stage_ratio_figure` takes the view of :mod:`liccs.jobs.regression` (columns ``run``, ``engine``, ``stage``,
``ratio``, ``band_low``, ``band_high``, ``flag``, and codec/resolution where it has them) and returns a matplotlib
:class:`~matplotlib.figure.Figure` (render with :func:`liccs.report.plots.to_png`), following :mod:`.plots`'
conventions: at most :data:`~liccs.report.plots.MAX_SERIES` legend entries per axes, the legend outside the data.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from liccs.core.errors import InputError
from liccs.report.plots import MAX_SERIES, PANEL_COLS

_COLORS = colormaps["tab10"].colors
#: Columns that split the view into panels (besides the engines past the series limit).
PANEL_KEYS = ("run", "codec", "device", "batch_size", "height", "width")
#: Ratios labelled on the y axis (those within its limits).
TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 2 / 3, 0.8, 1.0, 1.25, 1.5, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def _panels(view: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) per panel: one per run × codec × resolution, engines split so that each panel's legend holds
    at most :data:`MAX_SERIES` entries (the engines and the flagged-bar key)."""
    keys = [k for k in PANEL_KEYS if k in view.columns]
    out = []
    for p, g in (view.groupby(keys, sort=False, dropna=False) if keys else [((), view)]):
        p = p if isinstance(p, tuple) else (p,)
        varying = [f"{v}" for k, v in zip(keys, p, strict=True) if view[k].nunique(dropna=False) > 1 or k == "run"]
        engines = list(dict.fromkeys(g["engine"]))
        chunks = [engines[i:i + MAX_SERIES - 1] for i in range(0, len(engines), MAX_SERIES - 1)]
        for n, chunk in enumerate(chunks):
            title = " / ".join(varying) + (f" ({n + 1}/{len(chunks)})" if len(chunks) > 1 else "")
            out.append((title, g[g["engine"].isin(chunk)]))
    return out


def stage_ratio_figure(view: pd.DataFrame, baseline: str = "baseline",
                       title: str = "Stage p50 against the baseline") -> Figure:
    """One bar per stage × engine from 1 to its ratio (log y, a reference line at 1), one colour per engine, a
    grey line over each bar for the band the ratio must leave to be flagged (both runs' spread; clipped at the
    axes, which the ratios scale), flagged bars
    hatched with a red edge and their ratio written; one panel per compared run (× codec, resolution)."""
    need = ["engine", "stage", "ratio", "band_low", "band_high", "flag"]
    missing = [c for c in need if c not in view.columns]
    if missing:
        raise InputError(f"stage_ratio_figure: the view lacks column(s) {missing} (has {list(view.columns)})")
    view = view[np.isfinite(view["ratio"].astype(float)) & (view["ratio"] > 0)]
    if view.empty:
        raise InputError("stage_ratio_figure: no stage has a ratio (no timed row the runs share)")
    engines = list(dict.fromkeys(view["engine"]))
    colors = {e: _COLORS[i % len(_COLORS)] for i, e in enumerate(engines)}
    panels = _panels(view)
    stages_max = max(g["stage"].nunique() for _, g in panels)
    ncols = min(PANEL_COLS, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=((3.4 + 0.7 * stages_max) * ncols, 3.2 * nrows + 0.8), layout="constrained")  # + legend
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    # the ratios set the scale (at least ×1.5 either way); a wider band runs off the axes
    reach = max(1.5, math.exp(1.3 * float(np.max(np.abs(np.log(view["ratio"].to_numpy(float)))))))
    for ax, (ptitle, g) in zip(axes.flat, panels):
        stages = list(dict.fromkeys(g["stage"]))
        chunk = list(dict.fromkeys(g["engine"]))
        width = 0.8 / max(1, len(chunk))
        for k, engine in enumerate(chunk):
            rows = g[g["engine"] == engine]
            x = np.array([stages.index(s) for s in rows["stage"]]) - 0.4 + width * (k + 0.5)
            r = rows["ratio"].to_numpy(float)
            flagged = (rows["flag"] != "").to_numpy()
            bars = ax.bar(x, r - 1, width, bottom=1, color=colors[engine], label=engine)
            ax.vlines(x, rows["band_low"].to_numpy(float), rows["band_high"].to_numpy(float), color="0.45", lw=1)
            for bar, xi, ri, f in zip(bars, x, r, flagged, strict=True):
                if f:
                    bar.set_hatch("///")
                    bar.set_edgecolor("red")
                    bar.set_linewidth(1.2)
                    ax.text(xi, ri * (1.08 if ri >= 1 else 1 / 1.08), f"×{ri:.2g}", ha="center",
                            va="bottom" if ri >= 1 else "top", fontsize=6, color="red")
        ax.axhline(1, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_ylim(1 / reach, reach)
        ax.yaxis.set_major_locator(FixedLocator([t for t in TICKS if 1 / reach <= t <= reach]))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"×{v:.3g}"))
        ax.set_xticks(range(len(stages)), stages, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(f"p50 / p50 of {baseline}", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(ptitle, fontsize=9)
        handles, labels = ax.get_legend_handles_labels()
        handles.append(Patch(facecolor="white", edgecolor="red", hatch="///"))
        labels.append("flagged: outside both runs' spread")
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
                  frameon=False)
    fig.suptitle(f"{title}\nbar from 1 to the ratio; grey line: the runs' spread (p10 or min … p90, over p50)",
                 fontsize=9)
    return fig
