"""Paired statistics for the paper verdicts: one contrast per claim, tested over images.

Every claim a report makes is a *paired* contrast: the same images measured under two conditions (a, b), one
difference ``d_i = a_i − b_i`` per image. The claim is declared before the run with the type of its measure
(``kind``: ``"binary"``, a 0/1 outcome per image, or ``"continuous"``), its predicted sign, its smallest effect
of interest (SESOI) and whether it is a superiority or a non-inferiority claim. For each claim this module gives

- the effect, ``mean(d)``;
- one test, fixed by the declared kind and never chosen from the data: McNemar's exact test for 0/1 outcomes
  (a binomial test on the discordant pairs, ``scipy.stats.binomtest``), otherwise the sign-flip permutation test
  of the mean difference (Fisher 1935; exact over all ``2^n`` sign assignments up to :data:`EXACT_MAX_N` non-zero
  differences, else :data:`PERMUTATIONS` seeded Monte-Carlo draws with ``p = (1 + hits) / (1 + draws)``,
  Phipson & Smyth 2010). Both test the mean, the quantity the CI is about; zero differences are kept (they
  add nothing to any signed sum, so the p-value is the same with or without them);
- Holm's step-down adjustment across a report's family of ``m`` claims (:func:`holm`);
- a CI of ``mean(d)`` at the family's adjusted level ``1 − α/m`` (two-sided; Bonferroni, Holm's first step, the
  level every claim's size judgement uses): the BCa bootstrap (``scipy.stats.bootstrap``); where BCa is undefined
  a named fallback, never a silent one (:func:`confidence_interval`): exact binomial bounds for 0/1 outcomes,
  the percentile bootstrap otherwise, and for a constant ``d`` a degenerate interval that decides nothing;
- the minimum detectable effect at this image count, ``(t₁₋α/2,n−1 + t_power,n−1) · sd(d) / √n`` at ``α/m``
  (two-sided paired t approximation; Cohen 1988). Reported, not part of the verdict.

The verdict (:func:`verdict`), with ``e`` the effect and ``[L, U]`` the adjusted CI, both signed so that the
predicted direction is positive, and "significant" meaning Holm-adjusted ``p < α``:

- *reversed*: significant with ``e < 0``;
- *holds*: significant and ``L ≥ SESOI`` — the *CI's lower bound*, not the point estimate, must reach the
  smallest effect of interest (so "holds" says the data exclude every effect below it);
- *real but below the meaningful size*: significant and ``U < SESOI`` (the whole CI below it);
- *does not hold*: not significant and ``U < SESOI``;
- *cannot be decided at this size*: everything else (a CI that straddles the SESOI, or too little to judge).

The two levels that rest on ``U < SESOI`` need at least :data:`MIN_IMAGES` images (a bootstrap CI under-covers
below that), and no level rests on a degenerate CI. A *non-inferiority* claim (margin δ = its SESOI ≥ 0, the
claim being ``e > −δ``) is tested against the margin: its p is the sign-flip test of ``e + δ`` against 0; it
*holds* when that is significant with ``e > −δ``, *does not hold* when it is significant with ``e < −δ``
(the effect is surely worse than the margin) and is otherwise undecided; continuous measures only.

The rule changed after the committed paper reports (paper A, and paper B of 2026-11-30) were made: they were
decided with the Wilcoxon signed-rank test (McNemar for data that happened to be 0/1), a 95% BCa CI (percentile
fallback, unnamed), a z-based MDE that a "did not hold" had to beat, and three levels (holds: significant and the
95% CI excluding 0, with no size condition; did not hold; undecided), non-inferiority coded as a superiority
claim with SESOI 0 (which could not "not hold"). Rerun a report to get verdicts under this rule.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from liccs.core.errors import InputError

HOLDS, REVERSED, NOT_HELD, UNDECIDED = "holds", "reversed", "does not hold", "cannot be decided at this size"
SMALL = "real but below the meaningful size"
VERDICTS = (HOLDS, SMALL, NOT_HELD, UNDECIDED, REVERSED)
KINDS = ("binary", "continuous")
HYPOTHESES = ("superiority", "non-inferiority")
#: below this many paired images a bootstrap CI under-covers: no "does not hold" or "real but below" from it
MIN_IMAGES = 20
#: Monte-Carlo draws of the sign-flip test; exact enumeration up to EXACT_MAX_N non-zero differences (2^16 < 1e5)
PERMUTATIONS = 100_000
EXACT_MAX_N = 16
BCA, PERCENTILE, EXACT_BINOMIAL = "BCa", "percentile (fallback: BCa undefined)", \
    "exact binomial bounds (fallback: BCa undefined)"
DEGENERATE = "degenerate (fallback: every difference equal)"


@dataclass(frozen=True)
class PairedResult:
    """One paired contrast over ``n`` images: effect ``mean(a − b)``, its CI (``ci_level``, ``ci_method``), the
    declared kind's test and its p-value, the standard deviation of the differences, and the differences."""

    n: int
    effect: float
    ci_low: float
    ci_high: float
    p: float
    test: str
    sd: float
    mean_a: float
    mean_b: float
    kind: str = "continuous"
    ci_method: str = BCA
    ci_level: float = 0.95
    diffs: tuple[float, ...] = field(default=(), repr=False, compare=False)
    #: replicate × image differences (NaN: not counted) of :func:`paired_replicated`, whose CI resamples both
    replicate_diffs: tuple[tuple[float, ...], ...] = field(default=(), repr=False, compare=False)

    def as_dict(self) -> dict[str, float | int | str]:
        """Every field except the differences."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("diffs", "replicate_diffs")}


def _as_pair(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
             what: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InputError(f"{what}: paired samples differ in length ({len(x)} vs {len(y)})")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _bootstrap(d: np.ndarray, level: float, resamples: int, seed: int, method: str) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a BCa failure is handled (and named) by the caller
        res = stats.bootstrap((d,), np.mean, confidence_level=level, n_resamples=resamples, method=method,
                              random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _binomial_bounds(d: np.ndarray, level: float) -> tuple[float, float]:
    """Exact bounds of ``p10 − p01`` for 0/1 pairs: Clopper–Pearson one-sided bounds of each discordant rate at
    ``(1 − level) / 4``, combined (Bonferroni), so that each side errs with probability at most ``(1 − level) / 2``."""
    n, g = len(d), (1 - level) / 4
    lo = lambda k: 0.0 if k == 0 else float(stats.beta.ppf(g, k, n - k + 1))  # noqa: E731
    up = lambda k: 1.0 if k == n else float(stats.beta.ppf(1 - g, k + 1, n - k))  # noqa: E731
    n10, n01 = int(np.sum(d > 0)), int(np.sum(d < 0))
    return lo(n10) - up(n01), up(n10) - lo(n01)


def confidence_interval(d: np.ndarray, *, kind: str = "continuous", level: float = 0.95, resamples: int = 10_000,
                        seed: int = 0) -> tuple[float, float, str]:
    """(low, high, method) of ``mean(d)``: BCa bootstrap, or the named fallback where BCa is undefined (exact
    binomial bounds for 0/1 outcomes, the percentile bootstrap otherwise, a degenerate point for a constant ``d``)."""
    d = np.asarray(d, dtype=np.float64)
    if len(d) == 0:
        return math.nan, math.nan, "none"
    if len(d) > 1 and np.ptp(d) > 0:
        lo, hi = _bootstrap(d, level, resamples, seed, "BCa")
        if math.isfinite(lo) and math.isfinite(hi):
            return lo, hi, BCA
    if kind == "binary":
        return (*_binomial_bounds(d, level), EXACT_BINOMIAL)
    if len(d) == 1 or np.ptp(d) == 0:
        return float(d[0]), float(d[0]), DEGENERATE
    return (*_bootstrap(d, level, resamples, seed, "percentile"), PERCENTILE)


def bootstrap_ci(d: np.ndarray, *, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """(low, high) of :func:`confidence_interval` for a continuous measure (the method dropped)."""
    return confidence_interval(d, level=level, resamples=resamples, seed=seed)[:2]


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value of paired 0/1 outcomes: a binomial test on the discordant pairs."""
    n01 = int(np.sum((a == 1) & (b == 0)))
    n10 = int(np.sum((a == 0) & (b == 1)))
    if n01 + n10 == 0:
        return 1.0
    return float(stats.binomtest(n01, n01 + n10, 0.5).pvalue)


def sign_flip(d: np.ndarray, *, draws: int = PERMUTATIONS, seed: int = 0) -> tuple[float, str]:
    """(two-sided p, test name) of the sign-flip permutation test of ``mean(d) = 0``: the share of sign
    assignments whose ``|Σ ±d_i|`` reaches the observed ``|Σ d_i|``; exact up to :data:`EXACT_MAX_N` non-zero
    differences, else ``draws`` seeded Monte-Carlo draws, ``p = (1 + hits) / (1 + draws)``."""
    nz = np.asarray(d, dtype=np.float64)
    nz = nz[nz != 0]
    n = len(nz)
    if n == 0:
        return 1.0, "sign-flip exact"
    observed = abs(nz.sum()) - 1e-9 * np.abs(nz).sum()  # float round-off must not drop the ties
    if n <= EXACT_MAX_N:
        signs = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1
        return float(np.mean(np.abs(signs @ nz) >= observed)), "sign-flip exact"
    rng, hits, left = np.random.default_rng(seed), 0, draws
    chunk = max(1, 2_000_000 // n)
    while left > 0:
        s = rng.integers(0, 2, size=(min(chunk, left), n)) * 2 - 1
        hits += int(np.sum(np.abs(s @ nz) >= observed))
        left -= len(s)
    return (1 + hits) / (1 + draws), f"sign-flip Monte-Carlo ({draws} draws)"


def declared_test(d: np.ndarray, kind: str, *, seed: int = 0) -> tuple[float, str]:
    """(p, test name) of the declared kind's test of ``mean(d) = 0`` (module docstring)."""
    if kind == "binary":
        return mcnemar_exact((d > 0).astype(float), (d < 0).astype(float)), "mcnemar-exact"
    return sign_flip(d, seed=seed)


def paired(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, kind: str, what: str = "contrast",
           level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> PairedResult:
    """The paired contrast ``a − b`` over images with the test of the declared ``kind`` (``"binary"``: both sides
    0/1 outcomes, refused otherwise; ``"continuous"``). Non-finite pairs are dropped."""
    if kind not in KINDS:
        raise InputError(f"{what}: kind must be one of {KINDS}, got {kind!r}")
    x, y = _as_pair(a, b, what)
    n = len(x)
    if kind == "binary" and not (np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all()):
        raise InputError(f"{what}: declared a 0/1 outcome, but a value is neither 0 nor 1")
    if n == 0:
        return PairedResult(0, math.nan, math.nan, math.nan, math.nan, "none", math.nan, math.nan, math.nan, kind,
                            "none", level)
    d = x - y
    p, test = declared_test(d, kind, seed=seed)
    lo, hi, method = confidence_interval(d, kind=kind, level=level, resamples=resamples, seed=seed)
    sd = float(np.std(d, ddof=1)) if n > 1 else math.nan
    return PairedResult(n, float(d.mean()), lo, hi, p, test, sd, float(x.mean()), float(y.mean()), kind, method,
                        level, tuple(d.tolist()))


#: The CI of :func:`paired_replicated`.
TWO_WAY = "two-way percentile bootstrap (replicates × images)"


def paired_replicated(a: np.ndarray, b: np.ndarray, *, what: str = "contrast", level: float = 0.95,
                      resamples: int = 10_000, seed: int = 0) -> PairedResult:
    """The paired contrast ``a − b`` of a continuous measure where each row is one replicate (a model trained
    under its own seed) over the same images (columns). Effect: the mean over images of each image's difference
    averaged over the replicates; CI: replicates and images resampled independently (the two-way bootstrap of a
    crossed design, percentile), so that it widens with the spread between replicates; test: the sign-flip test
    of the per-image differences. One replicate: :func:`paired`. NaN entries are not counted."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim == 1:
        x, y = x[None], y[None]
    if x.shape != y.shape or x.ndim != 2:
        raise InputError(f"{what}: replicate × image arrays differ in shape ({x.shape} vs {y.shape})")
    if len(x) == 1:
        return paired(x[0], y[0], kind="continuous", what=what, level=level, resamples=resamples, seed=seed)
    d = np.where(np.isfinite(x) & np.isfinite(y), x - y, np.nan)
    cols = np.isfinite(d).any(0)
    d, x, y = d[:, cols], x[:, cols], y[:, cols]
    n = d.shape[1]
    if n == 0:
        return PairedResult(0, math.nan, math.nan, math.nan, math.nan, "none", math.nan, math.nan, math.nan,
                            "continuous", "none", level)
    per_image = np.nanmean(d, 0)
    lo, hi = two_way_ci(d, level=level, resamples=resamples, seed=seed)
    p, test = sign_flip(per_image, seed=seed)
    sd = float(np.std(per_image, ddof=1)) if n > 1 else math.nan
    return PairedResult(n, float(per_image.mean()), lo, hi, p, f"{test}, per image over {len(d)} replicates", sd,
                        float(np.nanmean(x)), float(np.nanmean(y)), "continuous", TWO_WAY, level,
                        tuple(per_image.tolist()), tuple(tuple(row) for row in d.tolist()))


def two_way_ci(d: np.ndarray, *, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile CI of the mean of a replicate × image array ``d`` (NaN: not counted), replicates and images
    resampled independently: each draw's statistic is the mean over its images of their mean over its
    replicates."""
    d = np.asarray(d, dtype=np.float64)
    rng, (r, n) = np.random.default_rng(seed), d.shape
    draws = np.empty(resamples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw whose replicates miss an image: that image drops
        for i in range(resamples):
            draws[i] = np.nanmean(np.nanmean(d[np.ix_(rng.integers(0, r, r), rng.integers(0, n, n))], 0))
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return math.nan, math.nan
    g = (1 - level) / 2
    return float(np.quantile(draws, g)), float(np.quantile(draws, 1 - g))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order; NaN stays NaN and is not counted."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def mde(sd: float, n: int, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable mean difference of a two-sided paired test at ``alpha`` with ``power``:
    ``(t₁₋α/2,n−1 + t_power,n−1) · sd / √n`` (the paired t test's noncentrality, approximated)."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n))


def verdict(effect: float, ci_low: float, ci_high: float, p_adjusted: float, *, sesoi: float, direction: int = 1,
            alpha: float = 0.05, n: int = MIN_IMAGES, ci_method: str = BCA, noninferiority: bool = False) -> str:
    """The rule fixed before every run (module docstring). ``direction``: +1 if the claim predicts a > b; the CI
    is the family-adjusted one; ``noninferiority``: ``sesoi`` is the margin and ``p_adjusted`` tests against it."""
    if direction not in (1, -1):
        raise InputError(f"direction must be +1 or -1, got {direction!r}")
    if not all(math.isfinite(v) for v in (effect, ci_low, ci_high, p_adjusted, sesoi)):
        return UNDECIDED
    e = direction * effect
    lo, hi = sorted((direction * ci_low, direction * ci_high))
    significant = p_adjusted < alpha
    if noninferiority:
        if significant and e != -sesoi:
            return HOLDS if e > -sesoi else NOT_HELD
        return UNDECIDED
    if significant and e < 0:
        return REVERSED
    informative = ci_method not in (DEGENERATE, "none")
    if significant and informative and lo >= sesoi:
        return HOLDS
    if informative and n >= MIN_IMAGES and hi < sesoi:
        return SMALL if significant else NOT_HELD
    return UNDECIDED


@dataclass(frozen=True)
class Claim:
    """A declared claim: its name, what the contrast is, the predicted sign, the smallest effect of interest
    (> 0; for a non-inferiority claim the margin, ≥ 0) and the hypothesis (superiority or non-inferiority)."""

    name: str
    contrast: str
    sesoi: float
    direction: int = 1
    hypothesis: str = "superiority"

    def __post_init__(self) -> None:
        if self.hypothesis not in HYPOTHESES:
            raise InputError(f"claim {self.name!r}: hypothesis must be one of {HYPOTHESES}, got {self.hypothesis!r}")
        floor_ok = self.sesoi >= 0 if self.hypothesis == "non-inferiority" else self.sesoi > 0
        if not (math.isfinite(self.sesoi) and floor_ok):
            raise InputError(f"claim {self.name!r}: a {self.hypothesis} claim needs a finite "
                             f"{'margin ≥ 0' if self.hypothesis == 'non-inferiority' else 'SESOI > 0'}, "
                             f"got {self.sesoi}")


def _claim_p(claim: Claim, r: PairedResult) -> tuple[float, str]:
    """The claim's p-value: the paired result's, or for non-inferiority the test of ``e + δ`` against 0."""
    if claim.hypothesis == "superiority" or r.n == 0:
        return r.p, r.test
    if r.kind != "continuous":
        raise InputError(f"claim {claim.name!r}: non-inferiority is declared for continuous measures only")
    p, test = declared_test(claim.direction * np.asarray(r.diffs) + claim.sesoi, "continuous")
    return p, f"{test}, against the margin"


def decide(claims: Sequence[tuple[Claim, PairedResult]], *, alpha: float = 0.05, power: float = 0.8,
           resamples: int = 10_000, seed: int = 0) -> list[dict[str, float | int | str]]:
    """One row per claim of a family: the contrast, effect, CI at ``1 − α/m`` and its method, raw and
    Holm-adjusted p, the MDE at ``α/m`` and the verdict (module docstring)."""
    tested = [_claim_p(c, r) for c, r in claims]
    adjusted = holm([p for p, _ in tested])
    m = max(1, sum(math.isfinite(p) for p, _ in tested))
    level = 1 - alpha / m
    rows = []
    for (claim, r), (p, test), p_adj in zip(claims, tested, adjusted, strict=True):
        if r.replicate_diffs:
            lo, hi, method = (*two_way_ci(np.array(r.replicate_diffs), level=level, resamples=resamples, seed=seed),
                              TWO_WAY)
        else:
            lo, hi, method = confidence_interval(np.asarray(r.diffs), kind=r.kind, level=level,
                                                 resamples=resamples, seed=seed)
        ni = claim.hypothesis == "non-inferiority"
        rows.append({"claim": claim.name, "contrast": claim.contrast, "hypothesis": claim.hypothesis,
                     "direction": "a > b" if claim.direction > 0 else "a < b", "n_images": r.n,
                     "mean_a": r.mean_a, "mean_b": r.mean_b, "effect": r.effect, "ci_low": lo, "ci_high": hi,
                     "ci_level": level, "ci_method": method, "test": test, "p": p, "p_holm": p_adj,
                     "mde": mde(r.sd, r.n, alpha=alpha / m, power=power), "sesoi": claim.sesoi,
                     "verdict": verdict(r.effect, lo, hi, p_adj, sesoi=claim.sesoi, direction=claim.direction,
                                        alpha=alpha, n=r.n, ci_method=method, noninferiority=ni)})
    return rows


def fmt_claim(row: dict[str, float | int | str]) -> str:
    """A verdict line: claim, effect, CI (level and method), p (Holm, test), MDE, n, SESOI or margin, verdict."""
    level = float(row.get("ci_level", 0.95)) * 100
    size = ("non-inferiority margin" if row.get("hypothesis") == "non-inferiority"
            else "smallest effect of interest")
    return (f"{row['claim']}: {row['verdict']} — effect {float(row['effect']):+.3f} "
            f"({level:.4g}% CI {float(row['ci_low']):+.3f} … {float(row['ci_high']):+.3f}, "
            f"{row.get('ci_method', BCA)}), p = {float(row['p']):.2g} (Holm {float(row['p_holm']):.2g}, "
            f"{row['test']}), MDE {float(row['mde']):.3f} at n = {row['n_images']} images, {size} "
            f"{float(row['sesoi']):.3f}")
