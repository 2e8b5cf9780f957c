"""The engine pictures of a run's page: stages side by side per engine, the stage budget against the end to end,
rate–distortion–latency with its Pareto front, and the transfer gap as a diverging heatmap.

Each function takes the run's tables (``latency``, ``dominant``, ``rate_distortion``, ``transfer_gap``) and returns
a matplotlib :class:`~matplotlib.figure.Figure` (render with :func:`liccs.report.plots.to_png`), following
:mod:`.plots`' conventions: at most :data:`~liccs.report.plots.MAX_SERIES` series per axes (more go to further
panels), legends outside the data, one shared axis where panels would each hold a single series.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure

from liccs.core.errors import InputError
from liccs.report.plots import MAX_SERIES, PANEL_COLS

_COLORS = colormaps["tab10"].colors
_MARKERS = "osD^vP*X"
#: gap CI column pairs a transfer_gap table may carry (ASR(reference) − ASR(engine))
CI_COLUMNS = (("gap_lo", "gap_hi"), ("gap_ci_low", "gap_ci_high"), ("ci_low", "ci_high"), ("gap_low", "gap_high"))


def _need(df: pd.DataFrame | None, cols: Sequence[str], what: str) -> pd.DataFrame:
    if df is None or df.empty:
        raise InputError(f"{what}: the table is empty")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{what}: table lacks column(s) {missing} (has {list(df.columns)})")
    return df


def _chunks(items: Sequence[Any], n: int = MAX_SERIES) -> list[list[Any]]:
    return [list(items[i:i + n]) for i in range(0, len(items), n)] or [[]]


def _grid(n: int, width: float, height: float) -> tuple[Figure, list[Any]]:
    ncols = min(PANEL_COLS, max(1, n))
    nrows = math.ceil(max(1, n) / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _legend_outside(ax: Any) -> None:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)


def stage_engines_figure(latency: pd.DataFrame, *, center: str = "p50_ms", whiskers: Sequence[str] = ("p90_ms",
                                                                                                      "p99_ms"),
                         title: str = "Stages per engine") -> Figure:
    """One bar group per stage, one colour per engine (at most :data:`MAX_SERIES` engines per panel), bar at
    ``center`` with whiskers to each of ``whiskers``; one panel per codec; log y when stages differ > 30×."""
    _need(latency, ["engine", "codec", "stage", center, *whiskers], "stage_engines_figure")
    engines = list(dict.fromkeys(latency["engine"]))
    colors = {e: _COLORS[i % len(_COLORS)] for i, e in enumerate(engines)}
    panels = [(c, chunk) for c in dict.fromkeys(latency["codec"]) for chunk in _chunks(
        list(dict.fromkeys(latency.loc[latency["codec"] == c, "engine"])))]
    stages_max = max(latency.groupby("codec")["stage"].nunique())
    fig, axes = _grid(len(panels), 1.2 + 0.75 * stages_max, 3.2)
    fig.get_layout_engine().set(w_pad=0.1)
    values = latency[center][latency[center] > 0]
    log = len(values) and values.max() / values.min() > 30
    for ax, (codec, chunk) in zip(axes, panels):
        g = latency[(latency["codec"] == codec) & latency["engine"].isin(chunk)]
        stages = list(dict.fromkeys(g["stage"]))
        width = 0.8 / max(1, len(chunk))
        for k, engine in enumerate(chunk):
            rows = g[g["engine"] == engine].set_index("stage").reindex(stages)
            x = np.arange(len(stages)) - 0.4 + width * (k + 0.5)
            mid = rows[center].to_numpy(float)
            ax.bar(x, mid, width, color=colors[engine], label=engine)
            for j, w in enumerate(whiskers):
                up = np.clip(rows[w].to_numpy(float) - mid, 0, None)
                ax.errorbar(x, mid, yerr=np.vstack([np.zeros_like(up), up]), fmt="none", ecolor="k",
                            elinewidth=1.6 / (j + 1), capsize=2.5 - j)
        ax.set_xticks(range(len(stages)), stages, rotation=30, ha="right", fontsize=7)
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(f"{center.removesuffix('_ms')} latency (ms)", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(str(codec), fontsize=9)
        _legend_outside(ax)
    fig.suptitle(f"{title}: bar {center.removesuffix('_ms')}, whiskers "
                 + " (thick), ".join(w.removesuffix("_ms") for w in whiskers) + " (thin)", fontsize=10)
    return fig


def _budget_stages(means: pd.Series, keep: int) -> dict[str, list[str]]:
    """Stage name → the stages it stands for: the ``keep − 1`` largest on their own, the rest as ``other``."""
    order = list(means.sort_values(ascending=False).index)
    if len(order) <= keep:
        return {s: [s] for s in means.index}
    kept = set(order[:keep - 1])
    out = {s: [s] for s in means.index if s in kept}
    out["other (" + ", ".join(s for s in means.index if s not in kept) + ")"] = [s for s in means.index
                                                                                 if s not in kept]
    return out


def stage_budget_figure(latency: pd.DataFrame, dominant: pd.DataFrame | None = None, *,
                        runs: Mapping[str, int] | None = None, center: str = "p50_ms",
                        title: str = "Stage budget per engine") -> Figure:
    """Per codec, one horizontal bar per engine stacking each stage's ``center`` × its calls per image
    (``runs``: h_s twice), a marker at the measured end to end (``dominant``'s ``end_to_end_p50_ms``); at most
    :data:`MAX_SERIES` − 1 stage colours (the smallest stages merged into ``other``)."""
    _need(latency, ["engine", "codec", "stage", center], "stage_budget_figure")
    runs = dict(runs or {})
    t = latency[latency["stage"] != "end-to-end"].copy()
    t["budget_ms"] = t[center] * t["stage"].map(lambda s: runs.get(s, 1))
    codecs = list(dict.fromkeys(t["codec"]))
    engines_max = max(t.groupby("codec")["engine"].nunique())
    fig, axes = _grid(len(codecs), 5.0, 0.9 + 0.35 * engines_max)
    for ax, codec in zip(axes, codecs):
        g = t[t["codec"] == codec]
        table = g.pivot_table(index="engine", columns="stage", values="budget_ms", aggfunc="mean", sort=False)
        groups = _budget_stages(table.mean(), MAX_SERIES - 1)
        engines = list(table.index)
        left = np.zeros(len(engines))
        for i, (label, members) in enumerate(groups.items()):
            width = table[members].fillna(0).sum(axis=1).to_numpy(float)
            ax.barh(range(len(engines)), width, left=left, color=_COLORS[i % len(_COLORS)], label=label)
            left += width
        if dominant is not None and {"engine", "codec", "end_to_end_p50_ms"} <= set(dominant.columns):
            e2e = dominant[dominant["codec"] == codec].set_index("engine")["end_to_end_p50_ms"].reindex(engines)
            ax.plot(e2e.to_numpy(float), range(len(engines)), "kD", markersize=6, label="end to end (measured p50)")
        ax.set_yticks(range(len(engines)), engines, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("ms per image (stage p50 × calls per image)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(str(codec), fontsize=9)
        _legend_outside(ax)
    fig.suptitle(title, fontsize=10)
    return fig


def pareto_front(points: np.ndarray, senses: Sequence[int]) -> np.ndarray:
    """Boolean mask of the points no other point dominates; ``senses``: +1 to maximize a column, −1 to
    minimize it (NaN columns are ignored)."""
    p = np.asarray(points, float) * np.asarray(senses, float)
    p = np.where(np.isfinite(p), p, 0.0)
    keep = np.ones(len(p), bool)
    for i in range(len(p)):
        better = np.all(p >= p[i], axis=1) & np.any(p > p[i], axis=1)
        keep[i] = not better.any()
    return keep


def rd_latency_figure(rd: pd.DataFrame, dominant: pd.DataFrame | None = None, *,
                      precision: Mapping[str, str] | None = None,
                      title: str = "Rate–distortion–latency") -> Figure:
    """bpp against PSNR per engine (marker and line per engine, ``engine (precision)``), colour = the
    engine's measured end-to-end p50 for the codec's architecture (``dominant``), Pareto-optimal points in
    (bpp ↓, PSNR ↑, latency ↓) ringed; at most :data:`MAX_SERIES` − 1 engines per panel."""
    _need(rd, ["engine", "codec", "bpp", "psnr"], "rd_latency_figure")
    t = rd.copy()
    t["arch"] = t["arch"] if "arch" in t.columns else t["codec"].str.split("@").str[0]
    t["latency_ms"] = float("nan")
    if dominant is not None and {"engine", "codec", "end_to_end_p50_ms"} <= set(dominant.columns):
        lat = dominant.assign(arch=dominant["codec"].str.split("@").str[0]).groupby(["engine", "arch"])[
            "end_to_end_p50_ms"].first()
        t["latency_ms"] = [lat.get((e, a), float("nan")) for e, a in zip(t["engine"], t["arch"])]
    has_latency = bool(t["latency_ms"].notna().any())
    cols = ["bpp", "psnr"] + (["latency_ms"] if has_latency else [])
    t["pareto"] = pareto_front(t[cols].to_numpy(float), [-1, 1, -1][:len(cols)])
    engines = list(dict.fromkeys(t["engine"]))
    chunks = _chunks(engines, MAX_SERIES - 1)
    fig, axes = _grid(len(chunks), 6.8, 4.4)
    norm = Normalize(t["latency_ms"].min(), t["latency_ms"].max()) if has_latency else None
    scatter = None
    for ax, chunk in zip(axes, chunks):
        for i, engine in enumerate(chunk):
            k = engines.index(engine)
            label = f"{engine} ({precision[engine]})" if precision and engine in precision else engine
            g = t[t["engine"] == engine].sort_values("bpp")
            for _, line in g.groupby("arch", sort=False):
                ax.plot(line["bpp"], line["psnr"], "-", color=_COLORS[k % len(_COLORS)], alpha=0.6, linewidth=1)
            scatter = ax.scatter(g["bpp"], g["psnr"], c=g["latency_ms"] if has_latency else [_COLORS[k % 10]] * len(g),
                                 cmap="viridis" if has_latency else None, norm=norm, marker=_MARKERS[i % len(_MARKERS)],
                                 s=max(14, 80 - 20 * i), edgecolors=_COLORS[k % len(_COLORS)], linewidths=1.2,
                                 label=label, zorder=3 + i)  # smaller on top: engines with equal points all show
        front = t[t["pareto"] & t["engine"].isin(chunk)]
        ax.scatter(front["bpp"], front["psnr"], s=170, facecolors="none", edgecolors="red", linewidths=1.4,
                   label="Pareto front (" + ", ".join(c.split("_")[0] for c in cols) + ")", zorder=20)
        ax.set_xlabel("bpp", fontsize=8)
        ax.set_ylabel("PSNR (dB)", fontsize=8)
        ax.grid(alpha=0.3)
        _legend_outside(ax)
    if has_latency and scatter is not None:
        fig.colorbar(scatter, ax=axes, shrink=0.8, label="end-to-end p50 (ms)", location="bottom",
                     aspect=40)
    fig.suptitle(title + ("" if has_latency else " (no end-to-end latency measured)"), fontsize=10)
    return fig


def transfer_gap_figure(gap: pd.DataFrame, *, title: str = "Transfer gap: ASR(engine) − ASR(PyTorch)") -> Figure:
    """One heatmap per engine (× variant): source × target of ASR(engine) − ASR(reference), diverging colours
    centred on 0 on one shared scale; a cell whose CI (:data:`CI_COLUMNS`, where the table has them) excludes 0
    is starred and outlined."""
    _need(gap, ["engine", "source", "target"], "transfer_gap_figure")
    t = gap.copy()
    engine_asr = next((c for c in ("asr_engine", "asr") if c in t.columns), None)
    if engine_asr and "asr_reference" in t.columns:
        t["delta"] = t[engine_asr] - t["asr_reference"]
    elif "gap" in t.columns:
        t["delta"] = -t["gap"]
    else:
        raise InputError("transfer_gap_figure: need asr_reference and asr (or asr_engine), or gap")
    ci = next(((lo, hi) for lo, hi in CI_COLUMNS if {lo, hi} <= set(t.columns)), None)
    t["excludes_0"] = ((t[ci[0]] > 0) | (t[ci[1]] < 0)) if ci else False
    panel_cols = ["engine"] + (["variant"] if "variant" in t.columns else [])
    panels = list(t.groupby(panel_cols, sort=False))
    sources, targets = list(dict.fromkeys(t["source"])), list(dict.fromkeys(t["target"]))
    fig, axes = _grid(len(panels), 1.0 + 0.6 * len(targets), 1.0 + 0.3 * len(sources))
    span = max(0.05, float(np.nanmax(np.abs(t["delta"].to_numpy(float)))) if t["delta"].notna().any() else 0.05)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span)
    aliases = model_aliases(sources + targets)
    image = None
    for i, (ax, (key, g)) in enumerate(zip(axes, panels)):
        m = g.pivot_table(index="source", columns="target", values="delta", aggfunc="mean").reindex(
            index=sources, columns=targets)
        sig = g.pivot_table(index="source", columns="target", values="excludes_0", aggfunc="max").reindex(
            index=sources, columns=targets)
        image = ax.imshow(m.to_numpy(float), cmap="RdBu_r", norm=norm, aspect="auto")
        for (r, c), v in np.ndenumerate(m.to_numpy(float)):
            if np.isfinite(v):
                star = bool(sig.iat[r, c]) if ci and pd.notna(sig.iat[r, c]) else False
                ax.text(c, r, f"{v:+.2f}" + ("*" if star else ""), ha="center", va="center", fontsize=6,
                        color="w" if abs(v) > 0.6 * span else "k")
                if star:
                    ax.add_patch(_cell(r, c))
        first = i % PANEL_COLS == 0  # sources named once per row of panels
        ax.set_xticks(range(len(targets)), [_short(s, aliases) for s in targets], rotation=40, ha="right", fontsize=6)
        ax.set_yticks(range(len(sources)), [_short(s, aliases) for s in sources] if first else [], fontsize=6)
        ax.set_title(" / ".join(map(str, key if isinstance(key, tuple) else (key,))), fontsize=9)
        ax.set_xlabel("target", fontsize=7)
        if first:
            ax.set_ylabel("source", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="ASR(engine) − ASR(reference)")
    names = "; ".join(f"{a} = {n}" for n, a in aliases.items())
    fig.suptitle(title + ("; * CI excludes 0" if ci else "; no CI in the table") + (f"\n{names}" if names else ""),
                 fontsize=10)
    return fig


def _cell(r: int, c: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="k", linewidth=1.5)


def model_aliases(labels: Sequence[str], longest: int = 12) -> dict[str, str]:
    """Short names for the long model names inside source/target labels (``A@q1+B~engine:objective``): the
    initials of a dash-separated name longer than ``longest`` (``mini-bmshj2018-hyperprior`` → ``mbh``)."""
    out: dict[str, str] = {}
    for label in labels:
        for member in re.split(r"[+]", str(label).split("~")[0]):
            name = member.split("@")[0]
            if len(name) > longest and "-" in name:
                out.setdefault(name, "".join(p[0] for p in name.split("-") if p))
    return out


def _short(name: str, aliases: Mapping[str, str]) -> str:
    for long, short in sorted(aliases.items(), key=lambda kv: -len(kv[0])):
        name = name.replace(long, short)
    return name


def series_per_axes(fig: Figure) -> list[int]:
    """The number of legend series of each visible data axes of ``fig`` (what :data:`MAX_SERIES` bounds; colour
    bars are not panels)."""
    return [len(set(ax.get_legend_handles_labels()[1])) for ax in fig.axes
            if ax.get_visible() and ax.get_label() != "<colorbar>"]
