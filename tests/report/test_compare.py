"""``liccs compare``: two runs that differ in one table cell and one timing are flagged at exactly those."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from liccs.cli import main
from liccs.jobs.compare import compare_runs


def _run(folder: Path, asr: float, p50_g_s: float, torch_version: str) -> Path:
    (folder / "tables").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"commit": "abc", "packages": {"torch": torch_version},
                                                      "config": {"data": {"images": 64}}, "seconds": {"load": 1}}))
    pd.DataFrame({"engine": ["torch", "ort-cpu"], "source": ["q1", "q1"], "target": ["q4", "q4"],
                  "variant": ["uint8", "uint8"], "asr": [0.5, asr], "clean_acc": [0.9, 0.9]}
                 ).to_csv(folder / "tables" / "transfer.csv", index=False)
    pd.DataFrame({"engine": ["torch", "torch"], "stage": ["g_a", "g_s"], "p50_ms": [10.0, p50_g_s],
                  "min_ms": [9.5, 19.0], "p90_ms": [10.5, 21.0]}).to_csv(folder / "tables" / "latency.csv", index=False)
    return folder


def test_compare_flags_exactly_the_changed_cell_and_the_moved_timing(tmp_path, capsys):
    a = _run(tmp_path / "a", asr=0.25, p50_g_s=20.0, torch_version="2.9")
    b = _run(tmp_path / "b", asr=0.30, p50_g_s=30.0, torch_version="2.10")  # g_a's timing stays the same
    res = compare_runs([a, b], out=tmp_path / "cmp")
    flagged = res["flagged"]
    assert sorted(zip(flagged["table"], flagged["column"], strict=True)) == [("latency", "p50_ms"),
                                                                             ("transfer", "asr")]
    assert flagged.set_index("column").loc["asr", "engine"] == "ort-cpu"
    assert flagged.set_index("column").loc["p50_ms", "stage"] == "g_s"
    assert list(res["manifest"]["key"]) == ["packages.torch"]
    assert (tmp_path / "cmp" / "report.html").stat().st_size > 0
    assert main(["compare", str(a), str(b)]) == 0
    assert "2 flagged cell(s)" in capsys.readouterr().out


def test_a_timing_inside_the_spread_is_not_flagged(tmp_path):
    a = _run(tmp_path / "a", asr=0.25, p50_g_s=20.0, torch_version="2.9")
    b = _run(tmp_path / "b", asr=0.25, p50_g_s=21.5, torch_version="2.9")  # within p90 - min = 2 ms
    assert compare_runs([a, b])["flagged"].empty


def test_compare_refuses_a_folder_that_is_not_a_report(tmp_path, capsys):
    assert main(["compare", str(tmp_path), str(tmp_path)]) == 2
    assert "not a liccs report folder" in capsys.readouterr().err
