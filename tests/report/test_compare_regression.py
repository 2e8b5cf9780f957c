"""``liccs compare``'s regression view: a stage twice as slow is flagged, an unchanged one is not, one bar per
stage × engine, and timing never changes the exit status unless ``--fail-on-slower`` asks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from liccs.cli import main
from liccs.jobs.compare import compare_runs
from liccs.jobs.regression import stage_ratios
from liccs.report.figures_compare import stage_ratio_figure
from liccs.report.figures_engines import series_per_axes
from liccs.report.plots import MAX_SERIES

STAGES = ["g_a", "h_s", "g_s", "classifier"]


def _latency(engines: list[str], slow: dict[tuple[str, str], float] | None = None) -> pd.DataFrame:
    """Stage rows with a ±10% spread around each median; ``slow``: (engine, stage) → factor on every time."""
    rows = []
    for e in engines:
        for i, s in enumerate(STAGES):
            f = (slow or {}).get((e, s), 1.0)
            p50 = (10.0 + 5 * i) * f
            rows.append({"engine": e, "codec": "mini@q1", "stage": s, "batch_size": 1, "height": 64, "width": 64,
                         "min_ms": 0.9 * p50, "p50_ms": p50, "p90_ms": 1.1 * p50, "p99_ms": 1.3 * p50})
    return pd.DataFrame(rows)


def _run(folder: Path, latency: pd.DataFrame | None) -> Path:
    (folder / "tables").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"commit": "abc"}))
    pd.DataFrame({"engine": ["torch"], "asr": [0.5]}).to_csv(folder / "tables" / "transfer.csv", index=False)
    if latency is not None:
        latency.to_csv(folder / "tables" / "latency.csv", index=False)
    return folder


def test_a_stage_twice_as_slow_is_flagged_and_an_unchanged_one_is_not():
    a = _latency(["torch", "ort-cpu"])
    b = _latency(["torch", "ort-cpu"], slow={("ort-cpu", "g_s"): 2.0, ("torch", "g_a"): 1.05})
    view = stage_ratios(a, b, "b", "a").set_index(["engine", "stage"])
    assert view.loc[("ort-cpu", "g_s"), "ratio"] == 2.0 and view.loc[("ort-cpu", "g_s"), "flag"] == "slower"
    assert view.loc[("ort-cpu", "g_a"), "ratio"] == 1.0 and view.loc[("ort-cpu", "g_a"), "flag"] == ""
    assert view.loc[("torch", "g_a"), "flag"] == ""  # 5% slower: inside the runs' ±10% spread
    assert (view["flag"] == "slower").sum() == 1
    assert view.loc[("ort-cpu", "g_s"), "band_high"] == 1.1 and view.loc[("ort-cpu", "g_s"), "band_low"] == 0.9


def test_a_faster_stage_and_a_row_one_run_lacks_are_named():
    a = _latency(["torch"])
    b = _latency(["torch"], slow={("torch", "h_s"): 0.5})
    b = b[b["stage"] != "classifier"]
    view = stage_ratios(a, b, "b", "a").set_index("stage")
    assert view.loc["h_s", "flag"] == "faster"
    assert view.loc["classifier", "flag"] == "only in a" and pd.isna(view.loc["classifier", "ratio"])


def test_the_figure_has_one_bar_per_stage_and_engine_and_at_most_max_series_per_axes():
    engines = [f"e{i}" for i in range(10)]
    view = stage_ratios(_latency(engines), _latency(engines, slow={("e3", "g_s"): 2.0}), "b", "a")
    fig = stage_ratio_figure(view, "a")
    bars = [b for ax in fig.axes for c in ax.containers if type(c).__name__ == "BarContainer" for b in c]
    assert len(bars) == len(STAGES) * len(engines)
    assert max(series_per_axes(fig)) <= MAX_SERIES and len(series_per_axes(fig)) == 2  # 10 engines: 7 + 3
    assert sum(b.get_hatch() == "///" for b in bars) == 1  # the flagged bar is marked
    assert all(1.0 in [round(line.get_ydata()[0], 6) for line in ax.get_lines()] for ax in fig.axes
               if ax.get_visible())  # the reference line at 1


def test_compare_writes_the_view_and_timing_changes_no_exit_status(tmp_path, capsys):
    a = _run(tmp_path / "a", _latency(["torch", "ort-cpu"]))
    b = _run(tmp_path / "b", _latency(["torch", "ort-cpu"], slow={("ort-cpu", "g_s"): 2.0}))
    res = compare_runs([a, b], out=tmp_path / "cmp")
    assert list(res["regression"].loc[res["regression"]["flag"] != "", "stage"]) == ["g_s"]
    assert "## Regression view: latency p50 against a" in res["markdown"]
    assert (tmp_path / "cmp" / "tables" / "regression_latency.csv").is_file()
    assert len(list((tmp_path / "cmp" / "figures").glob("*Regression-view*.png"))) == 1
    for gate in ("verdicts", "results", "any"):
        assert main(["compare", str(a), str(b), "--fail-on", gate]) == 0
    assert main(["compare", str(a), str(b), "--fail-on-slower", "2.5"]) == 0
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--fail-on-slower", "1.5"]) == 1
    captured = capsys.readouterr()
    assert "--fail-on-slower 1.5 failed by 1 stage(s)" in captured.err and "| slower |" in captured.out


def test_a_missing_or_unknown_timing_table_is_named_without_a_traceback(tmp_path, capsys):
    a = _run(tmp_path / "a", _latency(["torch"]))
    b = _run(tmp_path / "b", None)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    assert "skipped: no tables/latency.csv in b" in capsys.readouterr().out
    c = _run(tmp_path / "c", _latency(["torch"]))
    assert main(["compare", str(a), str(c), "--timing-table", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--timing-table nope: no tables/nope.csv in a, c" in err and "p50_ms: latency" in err
    assert len(err.splitlines()) == 1
    assert main(["compare", str(a), str(c), "--timing-table", "transfer"]) == 2
    assert "lacks column(s) stage, p50_ms, p90_ms" in capsys.readouterr().err
