"""The mini zoo report: the JPEG comparison, the quality bars and the whole-zoo cost line, on synthetic results."""

from __future__ import annotations

import copy

import pytest

from liccs.zoo.mini.report import compare_to_jpeg
from liccs.zoo.mini.report_render import _training_order, render

JPEG = [{"quality": q, "bpp": b, "psnr": p} for q, b, p in ((10, 0.2, 24.0), (30, 0.6, 30.0), (70, 1.2, 34.0))]


def test_jpeg_comparison_interpolates_over_the_overlap_only():
    codec = [{"bpp": 0.4, "psnr": 28.0}, {"bpp": 0.9, "psnr": 31.0}]  # JPEG: 27.0 at 0.4, 32.0 at 0.9
    v = compare_to_jpeg(codec, JPEG)
    assert v["overlap_lo"] == 0.4 and v["overlap_hi"] == 0.9
    assert v["min_diff_db"] == pytest.approx(-1.0) and -1.0 < v["mean_diff_db"] < 1.0
    assert compare_to_jpeg([{"bpp": 2.0, "psnr": 40.0}, {"bpp": 3.0, "psnr": 42.0}], JPEG)["min_diff_db"] is None


def test_training_order_starts_at_the_base_and_grows_outward():
    logs = {str(q): [{"step": 1}] * (40 if q == 4 else 4) for q in range(1, 9)}
    assert _training_order(logs) == ["4", "5", "6", "7", "8", "3", "2", "1"]
    top = {q: [{"step": 1}] * (40 if q == 6 else 4) for q in (3, 4, 5, 6)}
    assert _training_order(top) == [6, 5, 4, 3]


def _ladder(name: str, psnrs: list[float], top1s: list[float], wall: float | None) -> dict:
    rows = [{"quality": q, "trained": True, "lambda": 0.01 * q, "bpp": 0.2 * q, "bpp_likelihood_estimate": 0.2 * q,
             "psnr": p, "liccs_top1": t, "train_wall_s": None if wall is None else wall / len(psnrs)}
            for q, (p, t) in enumerate(zip(psnrs, top1s), start=1)]
    logs = {r["quality"]: [{"step": s, "loss": 1.0 / s} for s in range(1, 5)] for r in rows}
    return {"name": name, "rows": rows, "train_wall_s": wall, "train_cpu_s": wall, "logs": logs}


def _results(walls_this_run: dict[str, float]) -> dict:
    return {
        "classifiers": [{"name": "clf", "top1": 0.86, "top1_at_64": 0.86, "train_wall_s": 300.0, "train_cpu_s": 590.0,
                         "log": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]}],
        "cifar_ladders": [_ladder("rising", [28.0, 31.0, 34.0], [0.70, 0.80, 0.85], 900.0),
                          _ladder("flat", [28.0, 31.0, 30.5], [0.84, 0.85, 0.85], 900.0)],
        "natural_ladders": [], "eval_images_cifar": 100, "classifier_on_subset": 0.86, "liccs_classifier": "clf",
        "walls_this_run_s": walls_this_run, "eval_wall_s": 10.0,
    }


def test_report_bars_pass_and_fail_on_the_numbers(tmp_path):
    render(_results({}), tmp_path)
    md = (tmp_path / "report.md").read_text()
    rising = next(line for line in md.splitlines() if line.startswith("- rising:"))
    flat = next(line for line in md.splitlines() if line.startswith("- flat:"))
    assert "strictly rise with quality: PASS" in rising and "visibly lower): PASS" in rising
    assert "strictly rise with quality: FAIL" in flat and "visibly lower): FAIL" in flat
    assert "Whole zoo from scratch, summed" in md and "Whole zoo from scratch, measured" not in md


@pytest.mark.parametrize("minutes,verdict", [(80, "PASS"), (95, "FAIL")])
def test_whole_zoo_cost_is_measured_when_one_call_trained_every_model(tmp_path, minutes, verdict):
    # each model's share of the call, at least its recorded training time
    walls = {"clf": 300.0, "rising": 900.0, "flat": minutes * 60 - 1200.0}
    render(_results(walls), tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert f"in {minutes * 60:.0f} s ({minutes:.1f} min) of wall time; the 90-minute bar: {verdict}" in md


def test_whole_zoo_cost_is_summed_not_measured_when_a_model_came_from_an_earlier_call(tmp_path):
    res = _results({"clf": 300.0, "rising": 900.0, "flat": 2.0})  # "flat" was already cached: 2 s in this call
    render(copy.deepcopy(res), tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "Whole zoo from scratch, measured" not in md
    assert "add up to 2100 s (35.0 min)" in md and "the 90-minute bar: PASS" in md
    res["classifiers"][0]["train_wall_s"] = None  # committed weights: no training record
    render(res, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "Whole zoo from scratch" not in md and "(estimated)" in md
