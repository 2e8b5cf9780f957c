"""Figures a person would rather look at than read: small multiples with at most MAX_SERIES series per axes."""

import pandas as pd

from liccs.report import plots


def _sweep(engines: int, stages: int) -> pd.DataFrame:
    rows = [{"engine": f"e{e}", "stage": f"s{s}", "batch_size": b, "images_per_s": 100.0 * (s + 1) * b,
             "p50_ms": 1.0 + s, "p90_ms": 1.5 + s, "p99_ms": 2.0 + s, "min_ms": 0.8 + s}
            for e in range(engines) for s in range(stages) for b in (1, 2, 4)]
    return pd.DataFrame(rows)


def test_throughput_is_one_panel_per_engine_with_at_most_max_series_lines():
    fig = plots.throughput_figure(_sweep(3, 10))  # 30 series: before, one axes with 30 lines
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 6  # 3 engines × 2 panels of at most 8 stages
    assert all(len(ax.get_lines()) <= plots.MAX_SERIES for ax in axes)
    assert {ax.get_title() for ax in axes} >= {"e0 (1/2)", "e0 (2/2)", "e2 (2/2)"}
    assert len({ax.get_ylim() for ax in axes}) == 1  # the same scale in every panel
    assert fig.get_size_inches()[0] * plots.DPI <= 1400  # fits the report page


def test_latency_is_sorted_bars_per_engine():
    df = _sweep(2, 5)[lambda d: d["batch_size"] == 1]
    fig = plots.latency_figure(df)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["e0", "e1"]
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert labels == ["s4", "s3", "s2", "s1", "s0"]  # the slowest stage first
    assert "latency (ms)" in axes[0].get_xlabel()
