"""The engine pictures: at most MAX_SERIES series per axes, legends outside the data, what each one shows."""

import numpy as np
import pandas as pd
import pytest

from liccs.core.errors import InputError
from liccs.report.figures_engines import (
    pareto_front,
    rd_latency_figure,
    series_per_axes,
    stage_budget_figure,
    stage_engines_figure,
    transfer_gap_figure,
)
from liccs.report.plots import MAX_SERIES

STAGES = ["g_a", "h_a", "h_s", "g_s", "build_indexes", "entropy_encode", "entropy_decode", "classifier"]


def _latency(engines: int, codecs: int = 1) -> pd.DataFrame:
    return pd.DataFrame([{"engine": f"e{e}", "codec": f"arch{c}@q1", "stage": s, "p50_ms": 1.0 + i + e,
                          "p90_ms": 1.5 + i + e, "p99_ms": 2.0 + i + e}
                         for c in range(codecs) for e in range(engines) for i, s in enumerate(STAGES)])


def _dominant(engines: int, codecs: int = 1) -> pd.DataFrame:
    return pd.DataFrame([{"engine": f"e{e}", "codec": f"arch{c}@q1", "end_to_end_p50_ms": 50.0 + e}
                         for c in range(codecs) for e in range(engines)])


def _visible(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def _legend_outside(ax) -> bool:
    legend = ax.get_legend()
    if legend is None:
        return True
    anchor = legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted())
    return anchor.x0 >= 1.0  # anchored right of the axes: never over the data


def test_stages_side_by_side_split_engines_past_max_series():
    fig = stage_engines_figure(_latency(11, codecs=2))
    axes = _visible(fig)
    assert len(axes) == 4  # 2 codecs × (8 + 3 engines)
    assert max(series_per_axes(fig)) <= MAX_SERIES
    assert sorted(series_per_axes(fig)) == [3, 3, 8, 8]
    assert all(_legend_outside(ax) for ax in axes)
    assert [t.get_text() for t in axes[0].get_xticklabels()] == STAGES  # one bar group per stage
    bars = [c for c in axes[0].containers if type(c).__name__ == "BarContainer"]
    assert len(bars) == 8 and all(len(b) == len(STAGES) for b in bars)


def test_stage_budget_stacks_at_most_seven_stages_and_marks_the_end_to_end():
    fig = stage_budget_figure(_latency(3), _dominant(3), runs={"h_s": 2, "build_indexes": 2})
    (ax,) = _visible(fig)
    labels = ax.get_legend_handles_labels()[1]
    assert len(set(labels)) <= MAX_SERIES and "end to end (measured p50)" in labels
    assert any(lab.startswith("other (") for lab in labels)  # 8 stages: the smallest two merged
    bars = [c for c in ax.containers if type(c).__name__ == "BarContainer"]
    widths = np.sum([[r.get_width() for r in b] for b in bars], axis=0)
    lat = _latency(3)
    expect = [(g["p50_ms"] * g["stage"].map({"h_s": 2, "build_indexes": 2}).fillna(1)).sum()
              for _, g in lat.groupby("engine")]
    assert widths == pytest.approx(expect)
    assert _legend_outside(ax)


def test_rd_latency_marks_the_pareto_front_and_colours_by_latency():
    rd = pd.DataFrame([{"engine": e, "codec": f"a@q{q}", "arch": "a", "bpp": 0.2 * q + d, "psnr": 25 + 2 * q}
                       for q in (1, 2, 3) for e, d in (("torch", 0.0), ("ort-cpu-int8", 0.05))])
    dom = pd.DataFrame([{"engine": "torch", "codec": "a@q1", "end_to_end_p50_ms": 50.0},
                        {"engine": "ort-cpu-int8", "codec": "a@q1", "end_to_end_p50_ms": 30.0}])
    fig = rd_latency_figure(rd, dom, precision={"torch": "fp32", "ort-cpu-int8": "int8"})
    (ax,) = _visible(fig)
    labels = ax.get_legend_handles_labels()[1]
    assert "torch (fp32)" in labels and "ort-cpu-int8 (int8)" in labels
    assert any(lab.startswith("Pareto front") for lab in labels)
    assert max(series_per_axes(fig)) <= MAX_SERIES
    assert any(a.get_label() == "<colorbar>" for a in fig.axes)  # latency as colour
    # int8: more bpp at the same PSNR but faster, so both curves stay on the 3-objective front
    assert pareto_front(np.array([[1, 30, 50], [1.1, 30, 30], [1.2, 29, 60]]), [-1, 1, -1]).tolist() == [
        True, True, False]


def test_rd_latency_panels_past_max_series():
    rd = pd.DataFrame([{"engine": f"e{e}", "codec": "a@q1", "bpp": 0.1 * e, "psnr": 30.0} for e in range(12)])
    fig = rd_latency_figure(rd)
    assert len(_visible(fig)) == 2 and max(series_per_axes(fig)) <= MAX_SERIES


def test_transfer_gap_heatmap_is_diverging_around_zero_and_marks_ci():
    rows = [{"engine": e, "precision": "int8", "source": s, "target": t, "variant": "uint8", "asr_reference": 0.5,
             "asr": 0.5 + d, "gap": -d, "gap_lo": -d - 0.05, "gap_hi": -d + 0.05}
            for e, d in (("ort-cpu", 0.0), ("ort-cpu-int8", 0.2)) for s in ("A", "B") for t in ("A", "B")]
    fig = transfer_gap_figure(pd.DataFrame(rows))
    axes = _visible(fig)
    assert [ax.get_title() for ax in axes] == ["ort-cpu / uint8", "ort-cpu-int8 / uint8"]
    image = axes[1].get_images()[0]
    assert image.norm.vcenter == 0 and image.norm.vmin == -image.norm.vmax
    assert image.get_array()[0, 0] == pytest.approx(0.2)  # engine − reference
    texts = [t.get_text() for t in axes[1].texts]
    assert texts and all(t.endswith("*") for t in texts)  # CI [0.15, 0.25] excludes 0
    assert not any(t.get_text().endswith("*") for t in axes[0].texts)  # CI [-0.05, 0.05] does not
    assert "CI excludes 0" in fig.get_suptitle()


def test_transfer_gap_without_ci_says_so_and_reads_the_committed_columns():
    df = pd.DataFrame([{"engine": "ort-cpu", "source": "A", "target": "A", "variant": "float", "asr_reference": 0.6,
                        "asr_engine": 0.4, "gap": 0.2}])
    fig = transfer_gap_figure(df)
    assert _visible(fig)[0].get_images()[0].get_array()[0, 0] == pytest.approx(-0.2)
    assert "no CI" in fig.get_suptitle()


def test_missing_columns_are_refused():
    with pytest.raises(InputError, match="lacks"):
        stage_engines_figure(pd.DataFrame({"engine": ["a"]}))


def test_the_pictures_stage_draws_what_the_tables_allow_and_says_why_not():
    from liccs.stage import Results
    from liccs.stages.pictures import engine_pictures

    rd = pd.DataFrame([{"engine": "torch", "codec": "arch0@q1", "arch": "arch0", "bpp": 0.3, "psnr": 30.0}])
    res = Results(tables={"latency": _latency(3), "dominant": _dominant(3), "rate_distortion": rd})
    pictures, table = engine_pictures(res)
    assert [p[0] for p in pictures] == ["Stages per engine", "Stage budget per engine", "Rate–distortion–latency"]
    row = table.set_index("picture").loc["Transfer gap heatmap"]
    assert not row["drawn"] and "no transfer_gap table" in row["reason"]
    assert table["max_series"].max() <= MAX_SERIES
