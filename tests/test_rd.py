"""BD-rate: zero against itself, the sign and size of a known shift, NaN for a curve that is not one."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from liccs.checks.rd import bd_rate, bd_rate_table
from liccs.core.errors import InputError

RATE = [0.2, 0.4, 0.8, 1.6]
PSNR = [28.0, 31.0, 34.0, 37.0]


def test_same_curve_is_zero_and_a_rate_scaled_curve_gives_its_scale() -> None:
    assert bd_rate(RATE, PSNR, RATE, PSNR) == pytest.approx(0, abs=1e-9)
    assert bd_rate(RATE, PSNR, [r * 1.1 for r in RATE], PSNR) == pytest.approx(10.0, rel=1e-6)
    assert bd_rate(RATE, PSNR, [r * 0.9 for r in RATE], PSNR) == pytest.approx(-10.0, rel=1e-6)


def test_a_curve_shifted_in_psnr_costs_rate_where_it_is_lower() -> None:
    # 1 dB lower at every rate: on this curve (3 dB per doubling) the same PSNR needs 2^(1/3) the rate
    assert bd_rate(RATE, PSNR, RATE, [p - 1 for p in PSNR]) == pytest.approx((2 ** (1 / 3) - 1) * 100, rel=1e-6)


def test_broken_or_disjoint_curves_give_nan_and_bad_input_is_refused() -> None:
    assert math.isnan(bd_rate(RATE, PSNR, RATE, [28.0, 31.0, 34.0, 15.0]))  # PSNR falls at the top rate
    assert math.isnan(bd_rate(RATE, PSNR, RATE, [50.0, 51.0, 52.0, 53.0]))  # no PSNR overlap
    with pytest.raises(InputError, match="test curve"):
        bd_rate(RATE, PSNR, [0.2], [28.0])


def test_table_per_arch_and_engine() -> None:
    rd = pd.DataFrame({"arch": ["a"] * 8, "engine": ["torch"] * 4 + ["int8"] * 4,
                       "bpp": RATE + list(np.array(RATE) * 1.05), "psnr": PSNR * 2})
    (row,) = bd_rate_table(rd).to_dict("records")
    assert row["engine"] == "int8" and row["bd_rate_pct"] == pytest.approx(5.0, rel=1e-6)
