"""The matmul ceiling per precision: fp32 always, bf16 and int8 only where the CPU computes them natively, and each
stage held against the ceiling of the precision it executed in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from liccs.core import isa
from liccs.profiling.flops import (
    add_rates,
    ceiling_for,
    ceiling_skip_reason,
    matmul_ceiling,
    robust_ceilings,
)
from liccs.profiling.timer import TimerConfig
from liccs.stages.profile import engine_ceiling

RECORDED = Path(__file__).parents[1] / "cpuinfo"
QUICK = TimerConfig(warmup=1, min_iters=2, min_duration_s=0)


def _recorded(name: str) -> isa.Isa:
    flags, model = isa.read_cpuinfo(RECORDED / f"{name}.txt")
    return isa.parse_flags(flags or [], model)


@pytest.fixture
def as_cpu(monkeypatch):
    def patch(name: str) -> isa.Isa:
        cpu = _recorded(name)
        monkeypatch.setattr(isa, "this_cpu", lambda: cpu)
        return cpu

    return patch


def test_int8_matmul_ceiling_counts_int_mm():
    c = matmul_ceiling(20, dtype=torch.int8, config=QUICK)  # rounded up: 32 at least, a multiple of 8
    assert c["dtype"] == "int8" and c["n"] == 32 and c["gflops"] > 0


def test_an_avx2_cpu_measures_fp32_only_and_says_why_not_the_others(as_cpu):
    as_cpu("epyc-avx2")
    c = robust_ceilings(sizes=(64,), repeats=1, config=QUICK)
    assert c["fp32"]["gflops"] > 0 and c["fp32"]["precision"] == "fp32"
    assert c["bf16"]["skipped"] == f"no bf16 ceiling on this CPU: {isa.this_cpu().missing('bf16')}"
    assert c["int8"]["skipped"].startswith("no int8 ceiling on this CPU: this CPU (AMD EPYC) has no VNNI")
    assert ceiling_for(c, "int8") == (None, c["int8"]["skipped"])
    gflops, label = ceiling_for(c, "fp32")
    assert gflops == c["fp32"]["gflops"] and label == "cpu float32 matmul n=64"
    assert ceiling_for(c, "fp16") == (None, "no fp16 ceiling measured")


@pytest.mark.parametrize("name, measured", [("ice-lake", {"fp32", "int8"}),
                                            ("sapphire-rapids", {"fp32", "bf16", "int8"})])
def test_each_precision_the_cpu_has_is_measured(as_cpu, name, measured):
    as_cpu(name)  # measured here on this CPU (emulated), as the plumbing would on the real one
    c = robust_ceilings(sizes=(48,), repeats=1, config=QUICK)
    assert {p for p, v in c.items() if "skipped" not in v} == measured
    for p in measured:
        assert c[p]["gflops"] > 0 and ceiling_for(c, p)[0] == c[p]["gflops"]
    assert ceiling_skip_reason("bf16", device="cuda") is None  # a GPU has every precision


def test_bf16_ceiling_exceeds_fp32_where_amx_is_present():
    cpu = isa.this_cpu()
    if "amx_bf16" not in cpu.flags:
        pytest.skip(f"no AMX-BF16 on this CPU ({cpu.model}; features: {', '.join(cpu.features) or 'none'}): "
                    "its bf16 ceiling is not measured, so it cannot exceed fp32's")
    c = robust_ceilings(("fp32", "bf16"), sizes=(1024, 2048), repeats=2)
    assert c["bf16"]["gflops"] > c["fp32"]["gflops"] > 0


def test_rates_without_a_ceiling_of_their_precision_stay_empty():
    table = pd.DataFrame({"stage": ["g_a"], "p50_ms": [2.0]})
    rated = add_rates(table, {"g_a": 4_000_000_000}, None)
    assert rated.loc[0, "achieved_gflops"] == pytest.approx(2000.0) and np.isnan(rated.loc[0, "fraction_of_ceiling"])


def test_profile_holds_an_int8_engine_against_the_int8_ceiling_or_says_there_is_none(as_cpu):
    as_cpu("epyc-avx2")
    cache: dict = {}
    none = engine_ceiling("ort-cpu-int8", 32, cache)
    assert none["gflops"] is None and none["label"].startswith("no int8 ceiling on this CPU")
    fp32 = engine_ceiling("ort-cpu", 32, cache)
    assert fp32["gflops"] > 0 and fp32["label"] == "cpu float32 matmul n=32"
    as_cpu("ice-lake")
    int8 = engine_ceiling("ort-cpu-int8", 32, {})
    assert int8["gflops"] > 0 and int8["label"] == "cpu int8 matmul n=32"
