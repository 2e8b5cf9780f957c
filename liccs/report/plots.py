"""Figures as PNG bytes, drawn with matplotlib's Agg canvas (no pyplot, no global backend switch).

Each function takes a table with the column names liccs's measurements write (overridable) and returns
PNG bytes, ready to embed as base64 or to write to a file.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from liccs.core.errors import InputError

DPI = 110


def _require(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{what}: table lacks column(s) {missing} (has {list(df.columns)})")
    if df.empty:
        raise InputError(f"{what}: the table is empty")


def to_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _finish_xy(fig: Figure, ax: Any, x: str, y: str, title: str) -> bytes:
    """Axis labels, grid, legend and title of a line plot, rendered to PNG."""
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    return to_png(fig)


def asr_heatmaps(table: pd.DataFrame, *, value: str = "asr", panel: str = "engine", row: str = "source",
                 col: str = "target", title: str = "Attack success rate") -> bytes:
    """One heatmap per ``panel`` value (engine): ``row`` (source) × ``col`` (target), cells annotated."""
    _require(table, [value, panel, row, col], "asr_heatmaps")
    panels = list(dict.fromkeys(table[panel]))
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    sources, targets = list(dict.fromkeys(table[row])), list(dict.fromkeys(table[col]))
    fig = Figure(figsize=(1.2 + 0.75 * len(targets) * ncols + 1.2 * ncols,
                          0.9 + 0.55 * len(sources) * nrows + 0.9 * nrows),
                 layout="constrained")
    image = None
    for i, p in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        m = (table[table[panel] == p].pivot_table(index=row, columns=col, values=value, aggfunc="mean")
             .reindex(index=sources, columns=targets))
        image = ax.imshow(m.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(targets)), [str(t) for t in targets], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(sources)), [str(s) for s in sources], fontsize=7)
        ax.set_title(str(p), fontsize=9)
        ax.set_xlabel(col, fontsize=8)
        if i % ncols == 0:
            ax.set_ylabel(row, fontsize=8)
        for (r, c), v in np.ndenumerate(m.to_numpy(dtype=float)):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
    if image is not None:
        fig.colorbar(image, ax=fig.axes, shrink=0.8, label=value)
    fig.suptitle(title, fontsize=10)
    return to_png(fig)


def rd_curves(table: pd.DataFrame, *, x: str = "bpp", y: str = "psnr", series: str = "codec",
              style: str | None = None, title: str = "Rate-distortion") -> bytes:
    """One line per ``series`` (and ``style``, e.g. engine or defense) of ``y`` against ``x``, sorted by ``x``."""
    _require(table, [x, y, series] + ([style] if style else []), "rd_curves")
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    keys = [series] + ([style] if style else [])
    for key, g in table.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        g = g.sort_values(x)
        ax.plot(g[x], g[y], marker="o", markersize=3, label=" / ".join(map(str, key)))
    return _finish_xy(fig, ax, x, y, title)


#: At most this many lines or bar groups per axes; more go to further panels.
MAX_SERIES = 8
#: Panels per row of a small-multiples figure.
PANEL_COLS = 3


def _panels(table: pd.DataFrame, panel: str | Sequence[str] | None,
            series: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) per panel: one per ``panel`` value (or combination), split further so that no panel holds
    more than :data:`MAX_SERIES` ``series`` combinations."""
    out = []
    cols = [panel] if isinstance(panel, str) else list(panel or [])
    for p, g in (table.groupby(cols, sort=False) if cols else [((), table)]):
        p = " / ".join(map(str, p if isinstance(p, tuple) else (p,)))
        keys = list(dict.fromkeys(map(tuple, g[list(series)].astype(str).to_numpy()))) if series else [()]
        chunks = [keys[i:i + MAX_SERIES] for i in range(0, len(keys), MAX_SERIES)]
        for n, chunk in enumerate(chunks):
            rows = g[g[list(series)].astype(str).apply(tuple, axis=1).isin(chunk)] if series else g
            out.append((f"{p}" + (f" ({n + 1}/{len(chunks)})" if len(chunks) > 1 else ""), rows))
    return out


def _grid(n: int, width: float, height: float, sharex: bool = False) -> tuple[Figure, list[Any]]:
    ncols = min(PANEL_COLS, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def latency_figure(table: pd.DataFrame, *, label: Sequence[str] = ("engine", "stage"), center: str = "p50_ms",
                   whiskers: Sequence[str] = ("p90_ms", "p99_ms"), low: str | None = "min_ms",
                   title: str = "Latency (bar: p50; whiskers: p90, p99; dot: min)") -> Figure:
    """One panel per engine (the first ``label`` column), bars sorted by ``center`` with whiskers to each of
    ``whiskers`` (thinner for higher ones), at most :data:`MAX_SERIES` bars per panel; x in milliseconds."""
    label = [c for c in label if c in table.columns]
    _require(table, [center, *whiskers] + ([low] if low else []), "latency_bars")
    if not label:
        raise InputError(f"latency_bars: none of the label columns is in the table ({list(table.columns)})")
    panel, rest = (label[0], label[1:]) if len(label) > 1 else (None, label)
    panels = _panels(table, panel, rest)
    fig, axes = _grid(len(panels), 4.0, 0.6 + 0.3 * min(MAX_SERIES, max(len(g) for _, g in panels)))
    for ax, (name, g) in zip(axes, panels, strict=True):
        g = g.sort_values(center, ascending=False)
        ypos = np.arange(len(g))
        ax.barh(ypos, g[center], color="#4c78a8", label=center)
        for k, w in enumerate(whiskers):
            err = np.clip(g[w].to_numpy(float) - g[center].to_numpy(float), 0, None)
            ax.errorbar(g[center].to_numpy(float), ypos, xerr=np.vstack([np.zeros_like(err), err]), fmt="none",
                        ecolor="k", elinewidth=2.0 / (k + 1), capsize=4 - k, label=w)
        if low:
            ax.plot(g[low], ypos, "o", color="#f58518", markersize=3, label=low)
        ax.set_yticks(ypos, g[rest].astype(str).agg(" / ".join, axis=1).tolist(), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(f"{center.removesuffix('_ms')} latency (ms)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(name, fontsize=9)
    axes[0].legend(fontsize=6, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return fig


def latency_bars(table: pd.DataFrame, **kw: Any) -> bytes:
    """:func:`latency_figure` as PNG bytes."""
    return to_png(latency_figure(table, **kw))


def throughput_figure(table: pd.DataFrame, *, x: str = "batch_size", y: str = "images_per_s",
                      series: Sequence[str] = ("stage",), panel: Sequence[str] = ("engine",),
                      title: str = "Throughput against batch size") -> Figure:
    """Small multiples: one panel per ``panel`` combination (engine, resolution), one line per ``series``
    combination (at most :data:`MAX_SERIES` per panel), ``y`` against ``x`` on a log2 axis, shared axes."""
    rest = [c for c in series if c in table.columns]
    _require(table, [x, y], "throughput_vs_batch")
    panels = _panels(table, [c for c in panel if c in table.columns], rest)
    fig, axes = _grid(len(panels), 3.6, 2.9, sharex=True)
    ys = table[y][table[y] > 0]
    log_y = len(ys) and ys.max() / ys.min() > 20  # stages an order of magnitude apart
    ticks = sorted(table[x].dropna().unique())
    for ax, (name, g) in zip(axes, panels, strict=True):
        for key, line in (g.groupby(rest, sort=False) if rest else [((), g)]):
            key = key if isinstance(key, tuple) else (key,)
            line = line.groupby(x, as_index=False)[y].mean().sort_values(x)
            ax.plot(line[x], line[y], marker="o", markersize=3, label=" / ".join(map(str, key)) or y)
        ax.set_xscale("log", base=2)
        if log_y:
            ax.set_yscale("log")
            ax.set_ylim(ys.min() / 1.5, ys.max() * 1.5)  # the same scale in every panel
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel(x.replace("_", " "), fontsize=8)
        ax.set_ylabel(y.replace("_", " "), fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def throughput_vs_batch(table: pd.DataFrame, **kw: Any) -> bytes:
    """:func:`throughput_figure` as PNG bytes."""
    return to_png(throughput_figure(table, **kw))
