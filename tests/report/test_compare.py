"""``liccs compare``: two runs that differ in one table cell and one timing are flagged at exactly those."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

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


def _claims(folder: Path, verdict: str, effect: float, ci: tuple[float, float], extra_claim: bool = False) -> None:
    rows = {"claim": ["gap"], "effect": [effect], "ci_low": [ci[0]], "ci_high": [ci[1]], "p_holm": [0.01],
            "verdict": [verdict]}
    if extra_claim:
        rows = {k: v * 2 for k, v in rows.items()} | {"claim": ["gap", "recovered"]}
    pd.DataFrame(rows).to_csv(folder / "tables" / "claims.csv", index=False)


@pytest.mark.parametrize("gate", ["verdicts", "results", "any"])
def test_the_gate_fails_on_a_changed_verdict_and_not_on_a_changed_timing(tmp_path, capsys, gate):
    a = _run(tmp_path / "a", asr=0.25, p50_g_s=20.0, torch_version="2.9")
    b = _run(tmp_path / "b", asr=0.25, p50_g_s=40.0, torch_version="2.10")  # a timing moved far
    _claims(a, "holds", 0.10, (0.05, 0.15))
    _claims(b, "holds", 0.10, (0.05, 0.15))
    assert main(["compare", str(a), str(b), "--fail-on", gate]) == 0
    assert f"Gate --fail-on {gate}: passed" in capsys.readouterr().out
    _claims(b, "cannot be decided at this size", 0.10, (0.05, 0.15))
    assert main(["compare", str(a), str(b), "--fail-on", gate]) == 1
    captured = capsys.readouterr()
    assert "failed by 1 cell(s)" in captured.err and "cannot be decided" in captured.out


def test_the_gates_tell_a_missing_claim_a_missing_row_an_effect_outside_the_ci_and_a_changed_number(tmp_path):
    a = _run(tmp_path / "a", asr=0.25, p50_g_s=20.0, torch_version="2.9")
    b = _run(tmp_path / "b", asr=0.25, p50_g_s=20.0, torch_version="2.9")
    _claims(a, "holds", 0.10, (0.05, 0.15))

    def failing(**claims) -> dict[str, int]:
        _claims(b, **claims)
        return {g: len(compare_runs([a, b], fail_on=g)["failed"]) for g in ("verdicts", "results", "any")}

    assert failing(verdict="holds", effect=0.10, ci=(0.05, 0.15), extra_claim=True) == {"verdicts": 1, "results": 1,
                                                                                        "any": 1}
    assert failing(verdict="holds", effect=0.30, ci=(0.25, 0.35)) == {"verdicts": 0, "results": 1, "any": 4}
    assert failing(verdict="holds", effect=0.12, ci=(0.07, 0.17)) == {"verdicts": 0, "results": 0, "any": 3}
    _claims(b, "holds", 0.10, (0.05, 0.15))
    pd.DataFrame({"engine": ["torch"], "source": ["q1"], "target": ["q4"], "variant": ["uint8"], "asr": [0.5],
                  "clean_acc": [0.9]}).to_csv(b / "tables" / "transfer.csv", index=False)  # ort-cpu's row is gone
    assert {g: len(compare_runs([a, b], fail_on=g)["failed"]) for g in ("verdicts", "results", "any")} == {
        "verdicts": 0, "results": 1, "any": 1}


def test_compare_names_a_corrupt_manifest_or_table(tmp_path, capsys):
    a = _run(tmp_path / "a", asr=0.25, p50_g_s=20.0, torch_version="2.9")
    b = _run(tmp_path / "b", asr=0.25, p50_g_s=20.0, torch_version="2.9")
    (b / "tables" / "transfer.csv").write_bytes(b"\xff\xfe\x00garbage\n\x00\x01")
    assert main(["compare", str(a), str(b)]) == 2
    assert "transfer.csv: not a readable table" in capsys.readouterr().err
    (b / "manifest.json").write_text("{ not json")
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "manifest.json: not a readable manifest" in err and len(err.strip().splitlines()) == 1


def test_times_other_than_p50_are_not_compared(tmp_path):
    a = _run(tmp_path / "a", asr=0.25, p50_g_s=20.0, torch_version="2.9")
    b = _run(tmp_path / "b", asr=0.25, p50_g_s=20.0, torch_version="2.9")
    for run, t in ((a, 1.1), (b, 1.5)):
        pd.DataFrame({"arch": ["x"], "bpp": [0.5], "encode_s_plain": [t], "encode_overhead": [t * 2]}).to_csv(
            run / "tables" / "clean_cost.csv", index=False)
    assert compare_runs([a, b], fail_on="any")["failed"].empty


def test_time_ratios_artifact_sizes_and_export_status_are_not_results(tmp_path):
    """Paper B's deployed time ratios (its table declares them: TableSpec.timing), an ONNX file's size (it embeds
    names) and whether a model was exported or cached describe how a run went; a changed byte count of a deployed
    stream still fails the gate, and so does a column of that name in a table that does not declare it."""
    a = _run(tmp_path / "a", asr=0.25, p50_g_s=20.0, torch_version="2.9")
    b = _run(tmp_path / "b", asr=0.25, p50_g_s=20.0, torch_version="2.9")
    for run, t, status, nbytes in ((a, 11.3, "exported", 600.0), (b, 13.1, "cached,exported", 600.0)):
        pd.DataFrame({"codec": ["c"], "engine": ["ort-cpu-int8"], "encode_x": [t], "encode_vs_clean": [t / 10],
                      "decode_vs_clean": [t / 9], "bytes": [nbytes]}).to_csv(
                                                                run / "tables" / "paper_b_deployed.csv", index=False)
        pd.DataFrame({"model": ["c"], "export_status": [status], "onnx_fp32_mib": [t / 100],
                      "params": [1000]}).to_csv(run / "tables" / "model_card.csv", index=False)
    assert compare_runs([a, b], fail_on="any")["failed"].empty
    pd.DataFrame({"codec": ["c"], "engine": ["ort-cpu-int8"], "encode_x": [1.0], "encode_vs_clean": [1.0],
                  "decode_vs_clean": [1.0], "bytes": [612.0]}).to_csv(b / "tables" / "paper_b_deployed.csv",
                                                                      index=False)
    assert not compare_runs([a, b], fail_on="any")["failed"].empty
    for run, t in ((a, 11.3), (b, 13.1)):
        pd.DataFrame({"codec": ["c"], "encode_x": [t]}).to_csv(run / "tables" / "paper_b_deployed.csv", index=False)
        pd.DataFrame({"codec": ["c"], "encode_x": [t]}).to_csv(run / "tables" / "other.csv", index=False)
    failed = compare_runs([a, b], fail_on="any")["failed"]
    assert set(failed["table"]) == {"other"} and set(failed["column"]) == {"encode_x"}
