"""Stage profiles over callables and Runners, sweeps, power-law growth, FLOPs and achieved rates."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest
import torch

from liccs.core.errors import InputError
from liccs.engines.base import Runner, TensorMeta
from liccs.profiling.flops import (
    add_rates,
    ceiling_moved,
    count_flops,
    flops_by_op,
    matmul_ceiling,
    robust_ceiling,
    stage_budget,
)
from liccs.profiling.profile import (
    END_TO_END,
    as_callable,
    dominant_stages,
    fit_power_law,
    growth_table,
    in_sequence,
    profile_stages,
    sweep,
)
from liccs.profiling.timer import TimerConfig

FAST = TimerConfig(warmup=1, min_iters=4, min_duration_s=0.0)


class SleepRunner(Runner):
    """A Runner whose inference sleeps a fixed time and doubles its input."""

    def __init__(self, seconds: float) -> None:
        super().__init__("sleep")
        self.seconds = seconds
        self.calls = 0

    def activate_impl(self) -> None:
        pass

    def get_input_metadata_impl(self) -> Mapping[str, TensorMeta]:
        return {"x": TensorMeta("float32", (None, 3, None, None))}

    def infer_impl(self, feed):
        self.calls += 1
        time.sleep(self.seconds)
        return {"y": feed["x"] * 2}


def test_stage_table_and_dominant_stage_over_runners_and_callables():
    runner = SleepRunner(0.012)
    stages = {"small": lambda: time.sleep(0.002), "big": (runner, {"x": torch.zeros(1, 3, 8, 8)})}
    df = profile_stages(stages, FAST, batch_size=1, image_shape=(8, 8), meta={"engine": "fake"},
                        end_to_end=lambda: time.sleep(0.016), progress=False)
    assert list(df["stage"]) == ["small", "big", END_TO_END]
    assert (df["engine"] == "fake").all() and runner.calls == FAST.warmup + df.loc[1, "n"]
    big = df.set_index("stage").loc["big"]
    assert big["p50_ms"] >= 12 and big["share"] > 0.6
    summary = dominant_stages(df)
    assert summary.loc[0, "dominant_stage"] == "big"
    assert summary.loc[0, "end_to_end_p50_ms"] >= 16
    assert "big dominates" in summary.loc[0, "summary"]


def test_runner_feed_is_checked_once_before_timing():
    runner = SleepRunner(0)
    with pytest.raises(InputError, match="'x'"):
        as_callable((runner, {"x": torch.zeros(1, 3, 8, 8, dtype=torch.float64)}), "g_a")
    with pytest.raises(InputError, match="needs its feed"):
        as_callable(runner, "g_a")
    with pytest.raises(InputError, match="callable"):
        as_callable(3, "g_a")


def test_power_law_fit_recovers_exponent():
    px = np.array([256**2, 512**2, 1024**2, 2048**2], dtype=float)
    fit = fit_power_law(px, 3e-6 * px**1.3)
    assert fit.b == pytest.approx(1.3) and fit.a == pytest.approx(3e-6) and fit.r2 == pytest.approx(1.0)
    noisy = 2e-6 * px * np.array([1.05, 0.95, 1.02, 0.99])
    assert fit_power_law(px, noisy).b == pytest.approx(1.0, abs=0.05)
    for bad in ((px, -px), ([4, 4], [1, 2]), (px, px[:2])):
        with pytest.raises(InputError):
            fit_power_law(*bad)


def test_sweep_growth_linear_and_constant_stages(monkeypatch):
    # the stages move a fake clock by their cost: the sweep and the fit are tested, not this machine's scheduler
    import functools

    import liccs.profiling.profile as profile_mod

    now = [0.0]
    monkeypatch.setattr(profile_mod, "measure", functools.partial(profile_mod.measure, clock=lambda: now[0]))
    k = 0.001 / 32**2  # 1 ms at 32×32

    def advance(seconds: float) -> None:
        now[0] += seconds

    def make(b, hw):
        return {"linear": lambda: advance(k * b * hw[0] * hw[1]), "constant": lambda: advance(0.002)}

    df = sweep(make, [1], [(32, 32), (64, 64), (128, 128)], TimerConfig(warmup=1, min_iters=3, min_duration_s=0),
               meta={"engine": "fake"}, progress=False)
    assert len(df) == 6 and set(df["pixels"]) == {32**2, 64**2, 128**2} and df["error"].isna().all()
    growth = growth_table(df).set_index("stage")
    assert growth.loc["linear", "b"] == pytest.approx(1.0, abs=1e-6)
    assert growth.loc["constant", "b"] == pytest.approx(0.0, abs=1e-6)
    assert growth.loc["linear", "points"] == 3


def test_conv_flops_and_achieved_rate():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    x = torch.zeros(2, 3, 16, 16)
    expected = 2 * 3 * 8 * 9 * 16 * 16 * 2  # 2 · Cin · Cout · k² · H · W · B
    assert count_flops(conv, x) == expected
    assert flops_by_op(conv, x) == {"convolution": expected}
    with torch.inference_mode():  # as a profiling run would call it
        assert count_flops(conv, torch.zeros(2, 3, 16, 16)) == expected
    table = pd.DataFrame({"stage": ["conv", "other"], "p50_ms": [2.0, 1.0]})
    rated = add_rates(table, {"conv": 4_000_000_000}, ceiling_gflops=4000.0)
    assert rated.loc[0, "achieved_gflops"] == pytest.approx(2000.0)
    assert rated.loc[0, "fraction_of_ceiling"] == pytest.approx(0.5)
    assert np.isnan(rated.loc[1, "achieved_gflops"])


def test_matmul_ceiling_is_measured():
    c = matmul_ceiling(128, config=TimerConfig(warmup=1, min_iters=3, min_duration_s=0))
    assert c["n"] == 128 and 0 < c["gflops"] <= c["gflops_best"]
    assert c["gflops"] == pytest.approx(2 * 128**3 / (c["p50_ms"] / 1e3) / 1e9)


def test_robust_ceiling_keeps_the_best_run_and_every_measurement():
    c = robust_ceiling((64, 128), repeats=2, config=TimerConfig(warmup=1, min_iters=2, min_duration_s=0))
    assert len(c["runs"]) == 4 and c["gflops"] == max(r["gflops_best"] for r in c["runs"]) > 0
    assert c["n"] in (64, 128) and "loadavg" in c


@pytest.mark.parametrize("before, after, moved", [(100.0, 110.0, False), (100.0, 79.0, True), (100.0, 125.0, True)])
def test_ceiling_moved_flags_a_change_beyond_the_tolerance(before, after, moved):
    why = ceiling_moved({"gflops": before}, {"gflops": after}, tolerance=0.2)
    assert (why is not None) == moved
    if moved:
        assert f"{after:.1f}" in why


def test_stage_budget_says_what_each_stage_would_save_at_the_target_fraction():
    # 10 GFLOP/s ceiling; g_s: 2 GFLOP in 500 ms = 0.4 of it, 250 ms at 0.8; h_s runs twice; the coder has no FLOPs
    t = stage_budget({"g_s": 500.0, "h_s": 10.0, "entropy": 40.0}, {"h_s": 2}, {"g_s": 2e9, "h_s": 1e7}, 10.0)
    t = t.set_index("stage")
    assert t.loc["g_s", "fraction_of_ceiling"] == pytest.approx(0.4)
    assert t.loc["g_s", "ms_at_target"] == pytest.approx(250.0) and t.loc["g_s", "saved_ms"] == pytest.approx(250.0)
    assert t.loc["h_s", "ms"] == 20.0 and t.loc["h_s", "saved_ms"] == pytest.approx(2 * (10.0 - 1.25))
    assert t.loc["entropy", "saved_ms"] == 0.0 and t.loc["entropy", "ms_at_target"] == 40.0
    assert t["share"].sum() == pytest.approx(1.0) and t.loc["g_s", "share"] == pytest.approx(500 / 560)
    fast = stage_budget({"g_s": 100.0}, {}, {"g_s": 2e9}, 10.0)  # already above the target: nothing to save
    assert fast.loc[0, "saved_ms"] == 0.0
    with pytest.raises(InputError):
        stage_budget({"g_s": 1.0}, {}, {}, 10.0, target_fraction=1.5)


def test_in_sequence_sets_end_to_end_against_its_stages_in_the_same_rounds():
    """Stages that sleep known times, an end to end that sleeps their sum (h_s twice) plus 5 ms of glue."""
    waits = {"g_a": 0.004, "h_s": 0.002, "g_s": 0.006}
    stages = {k: (lambda w=w: time.sleep(w)) for k, w in waits.items()}
    out = in_sequence(stages, lambda: time.sleep(0.004 + 2 * 0.002 + 0.006 + 0.005), rounds=5, warmup=1,
                      runs={"h_s": 2})
    assert out["rounds"] == 5 and set(out["stage_ms"]) == set(waits)
    assert out["stage_ms"]["h_s"] == pytest.approx(2.0, abs=1.5)  # one call's time, not the two summed
    assert out["stage_sum_ms"] == pytest.approx(14.0, abs=4.0)
    assert out["end_to_end_ms"] - out["stage_sum_ms"] == pytest.approx(5.0, abs=4.0)
    assert out["e2e_over_sum"] == pytest.approx(out["end_to_end_ms"] / out["stage_sum_ms"])
    with pytest.raises(InputError, match="rounds"):
        in_sequence(stages, lambda: None, rounds=0)


def test_dominant_stages_sets_end_to_end_against_the_stages_as_run():
    table = pd.DataFrame({"engine": ["e"] * 4, "stage": ["g_a", "h_s", "g_s", END_TO_END],
                          "p50_ms": [10.0, 2.0, 20.0, 40.0]})
    row = dominant_stages(table, runs={"h_s": 2}).iloc[0]
    assert row["sum_p50_ms"] == 32.0 and row["sum_as_run_p50_ms"] == 34.0
    assert row["e2e_over_sum"] == pytest.approx(40 / 34)
