"""liccs.core.stats against textbook values and scipy, and the four verdict levels on constructed data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from liccs.core import stats
from liccs.core.errors import InputError


def test_holm_textbook_example() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4·0.005, 3·0.01, 2·0.03, max(that, 1·0.04)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.9, 0.5]) == pytest.approx([1.0, 1.0])  # capped at 1, monotone
    out = stats.holm([0.01, float("nan"), 0.02])
    assert math.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.02)


def test_mcnemar_exact_against_scipy_binomtest() -> None:
    # 10 pairs (1, 0), 2 pairs (0, 1), 20 concordant: 2·P(X ≥ 10 | n=12, p=1/2) = 2·(66 + 12 + 1)/4096
    a = np.array([1] * 10 + [0] * 2 + [1] * 10 + [0] * 10)
    b = np.array([0] * 10 + [1] * 2 + [1] * 10 + [0] * 10)
    assert stats.mcnemar_exact(a, b) == pytest.approx(158 / 4096)
    assert stats.mcnemar_exact(a, b) == pytest.approx(sps.binomtest(10, 12, 0.5).pvalue)
    r = stats.paired(a, b, kind="binary")
    assert r.test == "mcnemar-exact" and r.p == pytest.approx(sps.binomtest(10, 12, 0.5).pvalue)
    assert r.effect == pytest.approx(8 / 32) and r.n == 32
    assert stats.mcnemar_exact(a, a) == 1.0
    for n10, n01 in [(7, 3), (0, 5), (15, 15)]:  # the test of paired() is scipy's binomial test on the discordant
        a = np.array([1] * n10 + [0] * n01 + [1, 0] * 5)
        b = np.array([0] * n10 + [1] * n01 + [1, 0] * 5)
        assert stats.paired(a, b, kind="binary").p == pytest.approx(sps.binomtest(n10, n10 + n01, 0.5).pvalue)


def test_sign_flip_exact_against_enumeration() -> None:
    """n = 8 differences: p = the share of the 2^8 sign assignments whose |sum| reaches the observed one.

    By hand: Σd = 24; flipping a subset of sum T gives 24 − 2T, so |24 − 2T| ≥ 24 iff T ≤ 0 or T ≥ 24. The
    subsets with T ≤ 0 are {}, {−1}, {−2}, {−1, −2}, {−2, 2}, {−1, −2, 2}, {−1, −2, 3}; their complements are
    those with T ≥ 24: 14 of 256."""
    d = np.array([3.0, 5.0, -1.0, 7.0, 2.0, -2.0, 4.0, 6.0])
    observed = abs(d.sum())
    hits = sum(abs(sum(s * x for s, x in zip(signs, d, strict=True))) >= observed
               for signs in itertools.product((1, -1), repeat=8))
    p, test = stats.sign_flip(d)
    assert hits == 14 and test == "sign-flip exact" and p == pytest.approx(14 / 256)
    r = stats.paired(d / 10 + 0.3, np.full(8, 0.3), kind="continuous")  # float round-off keeps the ties
    assert r.p == pytest.approx(hits / 256) and r.test == "sign-flip exact"
    assert stats.sign_flip(np.r_[d, 0.0, 0.0])[0] == pytest.approx(hits / 256)  # zeros change no signed sum
    assert stats.sign_flip(np.zeros(5))[0] == 1.0
    assert stats.sign_flip(np.arange(1.0, 11.0))[0] == pytest.approx(2 / 1024)  # every sign positive


def test_sign_flip_monte_carlo_is_seeded_and_close_to_exact() -> None:
    d = np.random.default_rng(1).normal(0.3, 1.0, 40)
    p, test = stats.sign_flip(d)
    assert test == "sign-flip Monte-Carlo (100000 draws)" and p == stats.sign_flip(d)[0]  # fixed seed
    # 40 values: far from the exact enumeration, close to the t test of the mean (a permutation test's limit)
    assert p == pytest.approx(sps.ttest_1samp(d, 0).pvalue, abs=0.01)
    assert stats.sign_flip(np.full(30, 0.1))[0] == pytest.approx(1 / 100_001)  # nothing reaches it: (1 + 0)/(1 + B)


def test_mde_is_t_based() -> None:
    # by hand (t table): t_{0.975, 23} = 2.0687, t_{0.80, 23} = 0.8575, sd 1, n 24: 2.9262 / √24 = 0.5973
    assert stats.mde(1.0, 24) == pytest.approx((2.0687 + 0.8575) / math.sqrt(24), abs=1e-4)
    assert stats.mde(1.0, 24) == pytest.approx(0.5973, abs=1e-4)
    # at Holm's first step of 5 claims (α = 0.01): t_{0.995, 23} = 2.8073; the z formula was 7% low
    z = (sps.norm.ppf(0.995) + sps.norm.ppf(0.8)) / math.sqrt(24)
    assert stats.mde(1.0, 24, alpha=0.01) == pytest.approx((2.8073 + 0.8575) / math.sqrt(24), abs=1e-4)
    assert stats.mde(1.0, 24, alpha=0.01) / z == pytest.approx(1.072, abs=1e-3)
    assert stats.mde(1.0, 100, alpha=0.01) > stats.mde(1.0, 100)
    assert math.isnan(stats.mde(1.0, 1))


def test_ci_is_bca_close_to_t_interval_and_names_every_fallback() -> None:
    d = np.random.default_rng(3).normal(0.3, 1.0, 400)
    lo, hi, method = stats.confidence_interval(d, resamples=4000)
    t_lo, t_hi = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    assert method == stats.BCA and lo == pytest.approx(t_lo, abs=0.02) and hi == pytest.approx(t_hi, abs=0.02)
    assert stats.confidence_interval(np.full(7, 0.25)) == (0.25, 0.25, stats.DEGENERATE)
    # 0/1 outcomes with no discordant pair: BCa undefined, exact bounds instead (never a point)
    lo, hi, method = stats.confidence_interval(np.zeros(400), kind="binary")
    assert method == stats.EXACT_BINOMIAL and -0.02 < lo < 0 < hi < 0.02
    assert hi == pytest.approx(sps.beta.ppf(1 - 0.05 / 4, 1, 400))  # Clopper–Pearson at (1 − level)/4
    r = stats.paired(np.zeros(30), np.zeros(30), kind="binary")
    assert r.ci_method == stats.EXACT_BINOMIAL and r.ci_high > 0.05


def test_paired_checks_its_input_and_the_declared_kind() -> None:
    r = stats.paired([1.0, float("nan"), 3.0], [0.0, 1.0, 1.0], kind="continuous")
    assert r.n == 2 and r.effect == pytest.approx(1.5) and "diffs" not in r.as_dict()
    with pytest.raises(InputError, match="differ in length"):
        stats.paired([1.0], [1.0, 2.0], kind="continuous", what="x")
    with pytest.raises(InputError, match="neither 0 nor 1"):
        stats.paired([0.5, 1.0], [0.0, 1.0], kind="binary")
    with pytest.raises(InputError, match="kind must be"):
        stats.paired([1.0], [0.0], kind="auto")
    # the kind decides the test, not the data: 0/1 data declared continuous get the sign-flip test
    assert stats.paired([1, 1, 0], [0, 0, 0], kind="continuous").test == "sign-flip exact"


def _row(d: np.ndarray, sesoi: float, direction: int = 1, hypothesis: str = "superiority") -> dict:
    claim = stats.Claim("c", "a − b", sesoi, direction, hypothesis)
    return stats.decide([(claim, stats.paired(d, np.zeros(len(d)), kind="continuous"))])[0]


def test_the_four_levels_on_constructed_data() -> None:
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 1, 60)
    noise = (noise - noise.mean()) / noise.std(ddof=1)  # mean 0, sd 1: the CI half-width is ~0.26·2.58/2
    holds = _row(2.0 + noise, 0.5)  # significant, the whole CI above 0.5
    small = _row(0.25 + 0.2 * noise, 0.5)  # significant (t ≈ 9.7), the whole CI below 0.5
    absent = _row(0.2 * noise, 0.5)  # not significant, the whole CI below 0.5
    undecided = _row(0.6 + noise, 0.5)  # significant, but the CI straddles 0.5
    assert holds["verdict"] == stats.HOLDS and holds["ci_low"] >= 0.5
    assert small["verdict"] == stats.SMALL and small["p_holm"] < 0.05 and small["ci_high"] < 0.5
    assert absent["verdict"] == stats.NOT_HELD and absent["p_holm"] > 0.05
    assert undecided["verdict"] == stats.UNDECIDED and undecided["ci_low"] < 0.5 < undecided["ci_high"]
    assert _row(-2.0 + noise, 0.5)["verdict"] == stats.REVERSED
    assert _row(-2.0 + noise, 0.5, direction=-1)["verdict"] == stats.HOLDS
    assert _row(0.2 * noise[:10], 0.5)["verdict"] == stats.UNDECIDED  # 10 images: no "does not hold"


@pytest.mark.parametrize(("effect", "lo", "hi", "p", "direction", "expected"), [
    (0.10, 0.06, 0.15, 0.001, 1, stats.HOLDS),
    (0.10, 0.02, 0.15, 0.001, 1, stats.UNDECIDED),   # significant, point ≥ SESOI, but the CI reaches below it
    (0.03, 0.01, 0.04, 0.001, 1, stats.SMALL),
    (0.02, -0.01, 0.04, 0.001, 1, stats.SMALL),      # significant test, a CI still reaching 0: below the SESOI
    (-0.10, -0.15, -0.06, 0.001, 1, stats.REVERSED),
    (-0.10, -0.15, -0.06, 0.001, -1, stats.HOLDS),
    (0.00, -0.01, 0.01, 0.8, 1, stats.NOT_HELD),
    (0.00, -0.01, 0.01, 0.8, -1, stats.NOT_HELD),
    (0.02, -0.04, 0.08, 0.4, 1, stats.UNDECIDED),
    (-0.02, -0.08, 0.04, 0.4, -1, stats.UNDECIDED),
])
def test_verdict_rule(effect: float, lo: float, hi: float, p: float, direction: int, expected: str) -> None:
    assert stats.verdict(effect, lo, hi, p, sesoi=0.05, direction=direction, n=100) == expected


def test_size_judgements_need_images_and_an_informative_ci() -> None:
    assert stats.verdict(0.0, -0.01, 0.01, 1.0, sesoi=0.05, n=100) == stats.NOT_HELD
    assert stats.verdict(0.0, -0.01, 0.01, 1.0, sesoi=0.05, n=8) == stats.UNDECIDED
    assert stats.verdict(0.0, 0.0, 0.0, 1.0, sesoi=0.05, n=100, ci_method=stats.DEGENERATE) == stats.UNDECIDED
    assert stats.verdict(0.3, 0.3, 0.3, 0.001, sesoi=0.05, n=100, ci_method=stats.DEGENERATE) == stats.UNDECIDED


def test_noninferiority_can_hold_and_not_hold() -> None:
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 1, 40)
    noise = (noise - noise.mean()) / noise.std(ddof=1)
    # bpp change (%) predicted below a 1% margin: direction −1, the margin as the claim's SESOI
    ok = _row(-0.5 + noise, 1.0, -1, "non-inferiority")
    bad = _row(3.0 + noise, 1.0, -1, "non-inferiority")
    open_ = _row(1.0 + noise, 1.0, -1, "non-inferiority")
    assert ok["verdict"] == stats.HOLDS and "against the margin" in ok["test"]
    assert bad["verdict"] == stats.NOT_HELD and open_["verdict"] == stats.UNDECIDED
    assert "non-inferiority margin 1.000" in stats.fmt_claim(ok)
    assert _row(-0.5 + noise, 0.0, -1, "non-inferiority")["verdict"] == stats.HOLDS  # margin 0 allowed
    with pytest.raises(InputError, match="SESOI > 0"):
        stats.Claim("c", "a − b", 0.0)


def test_decide_applies_holm_and_the_adjusted_level_across_the_family() -> None:
    a = np.random.default_rng(0).normal(0.2, 1, 60)
    b = np.zeros(60)
    claims = [stats.Claim(f"c{i}", "a − b", 0.1) for i in range(3)]
    r = stats.paired(a, b, kind="continuous")
    rows = stats.decide([(c, r) for c in claims])
    assert [row["p_holm"] for row in rows] == pytest.approx([min(1.0, 3 * r.p)] * 3)
    assert rows[0]["mde"] == pytest.approx(stats.mde(r.sd, r.n, alpha=0.05 / 3))
    assert rows[0]["ci_level"] == pytest.approx(1 - 0.05 / 3) and rows[0]["ci_method"] == stats.BCA
    assert rows[0]["ci_low"] < r.ci_low and rows[0]["ci_high"] > r.ci_high  # wider than the 95% CI
    line = stats.fmt_claim(rows[0])
    assert "MDE" in line and rows[0]["claim"] in line and "98.33% CI" in line and "BCa" in line
    empty = stats.decide([(claims[0], stats.paired([np.nan], [np.nan], kind="continuous"))])[0]
    assert empty["verdict"] == stats.UNDECIDED


def test_paired_replicated_widens_with_the_spread_between_replicates():
    rng = np.random.default_rng(0)
    a = rng.normal(0.3, 1.0, 200)
    b = np.zeros(200)
    same = stats.paired_replicated(np.stack([a, a, a]), np.stack([b, b, b]))
    alone = stats.paired(a, b, kind="continuous")
    assert same.effect == pytest.approx(alone.effect) and same.ci_method == stats.TWO_WAY
    assert same.ci_high - same.ci_low == pytest.approx(alone.ci_high - alone.ci_low, rel=0.15)
    spread = stats.paired_replicated(np.stack([a - 0.5, a, a + 0.5]), np.stack([b, b, b]))
    assert spread.effect == pytest.approx(alone.effect)
    assert spread.ci_high - spread.ci_low > 1.5 * (same.ci_high - same.ci_low)
    one = stats.paired_replicated(a[None], b[None])
    assert one.ci_method != stats.TWO_WAY and one.effect == pytest.approx(alone.effect)
    with pytest.raises(InputError, match="differ in shape"):
        stats.paired_replicated(np.zeros((2, 3)), np.zeros((3, 3)))
    row = stats.decide([(stats.Claim("c", "a − b", 0.1), spread)])[0]
    assert row["ci_method"] == stats.TWO_WAY and row["ci_low"] <= spread.ci_low  # the family's wider level
