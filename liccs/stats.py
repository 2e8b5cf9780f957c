"""Paired statistics for the paper verdicts: one contrast per claim, tested over images.

Every claim a report makes is a *paired* contrast: the same images measured under two conditions (a, b), one
difference ``d_i = a_i − b_i`` per image. For each claim this module gives

- the effect, ``mean(d)``, with a 95% bootstrap CI over images (``scipy.stats.bootstrap``, BCa);
- a p-value: McNemar's exact test when both sides are 0/1 outcomes per image (an attack succeeded or not), the
  Wilcoxon signed-rank test otherwise (``scipy.stats.binomtest`` / ``scipy.stats.wilcoxon``);
- Holm's step-down adjustment across a report's family of claims (:func:`holm`);
- the minimum detectable effect at this image count: ``(z₁₋α/2 + z_power) · sd(d) / √n`` (two-sided, normal
  approximation of the paired test; Cohen 1988), at the family's smallest per-test α (Holm's first step, α/m);
- a verdict from a rule fixed before the run (:func:`verdict`): the claim *holds* when the adjusted p is below α
  and the CI excludes 0 on the predicted side, is *reversed* when both hold on the other side (a significant p
  whose CI still reaches 0, as a skewed mean can give beside Wilcoxon's rank test, decides nothing; this CI
  condition was added after the first paper B run of 2026-11-30 called such a claim "holds"), *did not hold* when it
  is not significant, the CI excludes every effect at least as large as the claim's smallest effect of interest
  (``sesoi``, declared in the config with the claim) and the test had the power for it (at least
  :data:`MIN_IMAGES` images and an MDE no larger than the sesoi), and otherwise *cannot be decided at this size*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from liccs.errors import InputError

HOLDS, REVERSED, NOT_HELD, UNDECIDED = "holds", "reversed", "did not hold", "cannot be decided at this size"
#: below this many paired images a bootstrap CI can collapse to a point (every difference equal): no "did not hold"
MIN_IMAGES = 20


@dataclass(frozen=True)
class PairedResult:
    """One paired contrast over ``n`` images: effect ``mean(a − b)``, its CI, the test and its p-value, the
    standard deviation of the differences, and the minimum detectable effect (filled in by :func:`decide`)."""

    n: int
    effect: float
    ci_low: float
    ci_high: float
    p: float
    test: str
    sd: float
    mean_a: float
    mean_b: float

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _as_pair(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
             what: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InputError(f"{what}: paired samples differ in length ({len(x)} vs {len(y)})")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def bootstrap_ci(d: np.ndarray, *, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """BCa bootstrap CI of ``mean(d)`` (``scipy.stats.bootstrap``); a constant ``d`` gives the point itself."""
    d = np.asarray(d, dtype=np.float64)
    if len(d) == 0:
        return math.nan, math.nan
    if len(d) == 1 or np.ptp(d) == 0:
        return float(d[0]), float(d[0])
    res = stats.bootstrap((d,), np.mean, confidence_level=level, n_resamples=resamples, method="BCa",
                          random_state=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # BCa undefined (e.g. one non-zero value): percentile
        res = stats.bootstrap((d,), np.mean, confidence_level=level, n_resamples=resamples, method="percentile",
                              random_state=np.random.default_rng(seed))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return lo, hi


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value of paired 0/1 outcomes: a binomial test on the discordant pairs."""
    n01 = int(np.sum((a == 1) & (b == 0)))
    n10 = int(np.sum((a == 0) & (b == 1)))
    if n01 + n10 == 0:
        return 1.0
    return float(stats.binomtest(n01, n01 + n10, 0.5).pvalue)


def wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the differences (zeros dropped; 1 when every difference is 0)."""
    nz = d[d != 0]
    if len(nz) == 0:
        return 1.0
    return float(stats.wilcoxon(nz, zero_method="wilcox", alternative="two-sided").pvalue)


def paired(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, what: str = "contrast",
           level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> PairedResult:
    """The paired contrast ``a − b`` over images (see the module docstring). Non-finite pairs are dropped."""
    x, y = _as_pair(a, b, what)
    n = len(x)
    if n == 0:
        return PairedResult(0, math.nan, math.nan, math.nan, math.nan, "none", math.nan, math.nan, math.nan)
    d = x - y
    binary = bool(np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all())
    p = mcnemar_exact(x, y) if binary else wilcoxon_p(d)
    lo, hi = bootstrap_ci(d, level=level, resamples=resamples, seed=seed)
    sd = float(np.std(d, ddof=1)) if n > 1 else math.nan
    return PairedResult(n, float(d.mean()), lo, hi, p, "mcnemar-exact" if binary else "wilcoxon", sd,
                        float(x.mean()), float(y.mean()))


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
    ``(z₁₋α/2 + z_power) · sd / √n``."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * sd / math.sqrt(n))


def verdict(effect: float, ci_low: float, ci_high: float, p_adjusted: float, *, sesoi: float, direction: int = 1,
            alpha: float = 0.05, n: int = MIN_IMAGES, mde: float = 0.0) -> str:
    """The rule fixed before every run (module docstring). ``direction``: +1 if the claim predicts a > b;
    ``n`` and ``mde``: the images and the minimum detectable effect, the power a "did not hold" needs."""
    if direction not in (1, -1):
        raise InputError(f"direction must be +1 or -1, got {direction!r}")
    if not all(math.isfinite(v) for v in (effect, ci_low, ci_high, p_adjusted)):
        return UNDECIDED
    if p_adjusted < alpha:
        if (direction > 0 and ci_low > 0) or (direction < 0 and ci_high < 0):
            return HOLDS
        if (direction > 0 and ci_high < 0) or (direction < 0 and ci_low > 0):
            return REVERSED
        return UNDECIDED
    bound = ci_high if direction > 0 else -ci_low  # the CI's reach in the predicted direction
    powered = n >= MIN_IMAGES and math.isfinite(mde) and mde <= sesoi
    return NOT_HELD if bound < sesoi and powered else UNDECIDED


@dataclass(frozen=True)
class Claim:
    """A declared claim: its name, what the contrast is, the predicted sign and the smallest effect of interest."""

    name: str
    contrast: str
    sesoi: float
    direction: int = 1


def decide(claims: Sequence[tuple[Claim, PairedResult]], *, alpha: float = 0.05,
           power: float = 0.8) -> list[dict[str, float | int | str]]:
    """One row per claim of a family: the contrast, effect, CI, raw and Holm-adjusted p, the MDE at the family's
    smallest per-test α (α/m) and the verdict."""
    adjusted = holm([r.p for _, r in claims])
    m = max(1, sum(math.isfinite(r.p) for _, r in claims))
    rows = []
    for (claim, r), p_adj in zip(claims, adjusted, strict=True):
        m_de = mde(r.sd, r.n, alpha=alpha / m, power=power)
        rows.append({"claim": claim.name, "contrast": claim.contrast, "direction": "a > b" if claim.direction > 0
                     else "a < b", "n_images": r.n, "mean_a": r.mean_a, "mean_b": r.mean_b, "effect": r.effect,
                     "ci_low": r.ci_low, "ci_high": r.ci_high, "test": r.test, "p": r.p, "p_holm": p_adj,
                     "mde": m_de, "sesoi": claim.sesoi,
                     "verdict": verdict(r.effect, r.ci_low, r.ci_high, p_adj, sesoi=claim.sesoi,
                                        direction=claim.direction, alpha=alpha, n=r.n, mde=m_de)})
    return rows


def fmt_claim(row: dict[str, float | int | str]) -> str:
    """A verdict line: claim, effect, CI, p (Holm), MDE, n and verdict."""
    return (f"{row['claim']}: {row['verdict']} — effect {float(row['effect']):+.3f} "
            f"(95% CI {float(row['ci_low']):+.3f} … {float(row['ci_high']):+.3f}), p = {float(row['p']):.2g} "
            f"(Holm {float(row['p_holm']):.2g}, {row['test']}), MDE {float(row['mde']):.3f} at n = {row['n_images']} "
            f"images, smallest effect of interest {float(row['sesoi']):.3f}")
