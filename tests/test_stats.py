"""liccs.stats against textbook values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from liccs import stats
from liccs.errors import InputError


def test_holm_textbook_example() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4·0.005, 3·0.01, 2·0.03, max(that, 1·0.04)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.9, 0.5]) == pytest.approx([1.0, 1.0])  # capped at 1, monotone
    out = stats.holm([0.01, float("nan"), 0.02])
    assert math.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.02)


def test_mcnemar_exact_binomial_on_discordant_pairs() -> None:
    # 10 pairs (1, 0), 2 pairs (0, 1), 20 concordant: 2·P(X ≥ 10 | n=12, p=1/2) = 2·(66 + 12 + 1)/4096
    a = np.array([1] * 10 + [0] * 2 + [1] * 10 + [0] * 10)
    b = np.array([0] * 10 + [1] * 2 + [1] * 10 + [0] * 10)
    assert stats.mcnemar_exact(a, b) == pytest.approx(158 / 4096)
    r = stats.paired(a, b)
    assert r.test == "mcnemar-exact" and r.p == pytest.approx(158 / 4096)
    assert r.effect == pytest.approx(8 / 32) and r.n == 32
    assert stats.mcnemar_exact(a, a) == 1.0


def test_wilcoxon_exact_all_positive() -> None:
    d = np.arange(1.0, 11.0)  # every sign positive: exact two-sided p = 2 / 2^10
    assert stats.wilcoxon_p(d) == pytest.approx(2 / 1024)
    r = stats.paired(d + 0.5, np.full(10, 0.5))
    assert r.test == "wilcoxon" and r.p == pytest.approx(2 / 1024) and r.effect == pytest.approx(5.5)
    assert stats.wilcoxon_p(np.zeros(5)) == 1.0


def test_mde_formula() -> None:
    assert stats.mde(1.0, 100) == pytest.approx((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) / 10)
    assert stats.mde(1.0, 100) == pytest.approx(0.28016, abs=1e-4)
    assert stats.mde(1.0, 100, alpha=0.01) > stats.mde(1.0, 100)
    assert math.isnan(stats.mde(1.0, 1))


def test_bootstrap_ci_close_to_t_interval_on_normal_data() -> None:
    rng = np.random.default_rng(3)
    d = rng.normal(0.3, 1.0, 400)
    lo, hi = stats.bootstrap_ci(d, resamples=4000)
    t_lo, t_hi = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    assert lo == pytest.approx(t_lo, abs=0.02) and hi == pytest.approx(t_hi, abs=0.02)
    assert stats.bootstrap_ci(np.full(7, 0.25)) == (0.25, 0.25)


def test_paired_drops_nonfinite_pairs_and_checks_lengths() -> None:
    r = stats.paired([1.0, float("nan"), 3.0], [0.0, 1.0, 1.0])
    assert r.n == 2 and r.effect == pytest.approx(1.5)
    with pytest.raises(InputError, match="differ in length"):
        stats.paired([1.0], [1.0, 2.0], what="x")


@pytest.mark.parametrize(("effect", "lo", "hi", "p", "direction", "expected"), [
    (0.10, 0.05, 0.15, 0.001, 1, stats.HOLDS),
    (-0.10, -0.15, -0.05, 0.001, 1, stats.REVERSED),
    (-0.10, -0.15, -0.05, 0.001, -1, stats.HOLDS),
    (0.00, -0.01, 0.01, 0.8, 1, stats.NOT_HELD),      # CI excludes the smallest effect of interest (0.05)
    (0.02, -0.04, 0.08, 0.4, 1, stats.UNDECIDED),     # CI still reaches 0.05: too few images
    (0.00, -0.01, 0.01, 0.8, -1, stats.NOT_HELD),
    (-0.02, -0.08, 0.04, 0.4, -1, stats.UNDECIDED),
    (0.02, -0.05, 0.04, 0.001, 1, stats.UNDECIDED),   # significant rank test, but the mean's CI reaches 0
])
def test_verdict_rule(effect: float, lo: float, hi: float, p: float, direction: int, expected: str) -> None:
    assert stats.verdict(effect, lo, hi, p, sesoi=0.05, direction=direction, n=100, mde=0.04) == expected


def test_did_not_hold_needs_power() -> None:
    """A CI that excludes the effect of interest is not enough: too few images, or an MDE above it, is undecided."""
    assert stats.verdict(0.0, 0.0, 0.0, 1.0, sesoi=0.05, n=100, mde=0.04) == stats.NOT_HELD
    assert stats.verdict(0.0, 0.0, 0.0, 1.0, sesoi=0.05, n=8, mde=0.0) == stats.UNDECIDED
    assert stats.verdict(0.0, -0.01, 0.01, 1.0, sesoi=0.05, n=100, mde=0.08) == stats.UNDECIDED
    assert stats.verdict(0.0, 0.0, 0.0, 1.0, sesoi=0.05, n=100, mde=float("nan")) == stats.UNDECIDED


def test_decide_applies_holm_across_the_family() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.2, 1, 60)
    b = np.zeros(60)
    claims = [stats.Claim(f"c{i}", "a − b", 0.1) for i in range(3)]
    r = stats.paired(a, b)
    rows = stats.decide([(c, r) for c in claims])
    assert [row["p_holm"] for row in rows] == pytest.approx([min(1.0, 3 * r.p)] * 3)
    assert rows[0]["mde"] == pytest.approx(stats.mde(r.sd, r.n, alpha=0.05 / 3))
    assert "MDE" in stats.fmt_claim(rows[0]) and rows[0]["claim"] in stats.fmt_claim(rows[0])
