"""Paper B's two questions about strength ("A training-free defense framework for robust learned image
compression"), from the per-image rows of :mod:`liccs.papers.b.stage`:

- :func:`adaptive_check_table`: is every adaptive attack on the random defense at least as strong as the plain
  attack (crafted on the undefended codec, same steps) replayed through the defense? Per codec, objective and
  attack, :func:`liccs.attack.sanity.adaptive_check` over the images (Carlini et al. 2019); a weaker one is flagged.
- :func:`share_table`: the defense's gain as a share of the damage, per codec, with a paired bootstrap CI over the
  images: under the distortion attack, the PSNR (vs the clean image) recovered over the PSNR lost; under the rate
  attack, the bpp rise removed over the bpp rise. Beside it the RD-cost oracle's share (``oracle-rd``: the
  defense's criterion with the true distortion), its gain on clean images subtracted, defined before the run as
  what selection among the drawn candidates can recover of the attack's damage.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats as sps

from liccs.attack.sanity import adaptive_check


def is_adaptive(label: str) -> bool:
    """Whether a table's attack label is an adaptive attack (``eot``, ``select-τ``)."""
    return label == "eot" or label.startswith("select")


def focus_k(images: pd.DataFrame) -> int:
    """The random defense's K of the claims and the adaptive attacks: the K its oracles were computed at (the largest
    K where there are none)."""
    o = images[images["defense"].isin(["oracle", "oracle-rd"])]
    return int((o if len(o) else images[images["defense"] == "random"])["k"].max())


def _at(images: pd.DataFrame, codec: str, objective: str, eps: float, steps: int) -> pd.DataFrame:
    t = images
    return t[(t["codec"] == codec) & (t["objective"] == objective) & (t["eps_255"] == eps) & (t["steps"] == steps)]


def _series(df: pd.DataFrame, col: str) -> pd.Series:
    return df.set_index("image")[col].sort_index()


def adaptive_check_table(images: pd.DataFrame, eps: float, steps: int) -> pd.DataFrame:
    """Per codec, objective and adaptive attack at ``eps`` (/255) and ``steps``: the adaptive attack against the plain
    one, both through the random defense at its largest K (PSNR vs clean, lower is stronger; or bpp, higher is)."""
    rows = []
    ad = images[images["attack"].map(is_adaptive) & (images["eps_255"] == eps) & (images["steps"] == steps)]
    for (codec, obj), g in ad.groupby(["codec", "objective"], sort=False):
        k = focus_k(images)
        at = _at(images, codec, obj, eps, steps)
        plain = at[(at["attack"] == "pgd") & (at["defense"] == "random") & (at["k"] == k)]
        if plain.empty:
            continue
        col, higher = ("bpp", True) if obj == "rate" else ("psnr_clean", False)
        for atk, a in g[(g["defense"] == "random") & (g["k"] == k)].groupby("attack", sort=False):
            p, q = _series(plain, col).align(_series(a, col), join="inner")
            r = adaptive_check(p.to_numpy(), q.to_numpy(), higher_is_stronger=higher, what=f"{atk} vs pgd on {codec}")
            rows.append({"codec": codec, "objective": obj, "k": k, "steps": steps, "attack": atk, "measure": col,
                         **{x: r[x] for x in ("n", "plain_mean", "adaptive_mean", "gain", "ci_low", "ci_high", "p",
                                              "weaker_share", "flagged", "why")}})
    return pd.DataFrame(rows)


def ratio_ci(num: np.ndarray, den: np.ndarray, level: float = 0.95, seed: int = 0) -> tuple[float, float, float, str]:
    """(mean(num) / mean(den), CI low, CI high, method): a paired bootstrap over the images (BCa; the percentile
    interval where BCa is undefined, named)."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    ok = np.isfinite(num) & np.isfinite(den)
    num, den = num[ok], den[ok]
    if len(num) < 3 or den.mean() == 0:
        return math.nan, math.nan, math.nan, "none"
    share = float(num.mean() / den.mean())

    def stat(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return a.mean(axis=axis) / b.mean(axis=axis)

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():  # a degenerate BCa gives NaN bounds (and a warning): the percentile then
            warnings.simplefilter("ignore")
            res = sps.bootstrap((num, den), stat, paired=True, vectorized=True, confidence_level=level,
                                n_resamples=4999, method=method, random_state=np.random.default_rng(seed))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return share, lo, hi, f"bootstrap {method}"
    return share, math.nan, math.nan, "none"


def _share_row(codec: str, objective: str, what: str, num: pd.Series, den: pd.Series,
               unit: str) -> dict[str, object]:
    n, d = num.align(den, join="inner")
    share, lo, hi, method = ratio_ci(n.to_numpy(), d.to_numpy())
    return {"codec": codec, "objective": objective, "recovered_by": what, "n": len(n), "damage": float(d.mean()),
            "recovered": float(n.mean()), "unit": unit, "share": share, "ci_low": lo, "ci_high": hi,
            "ci_method": method}


def share_table(images: pd.DataFrame, eps: float, steps: int, objective: str) -> pd.DataFrame:
    """Per attacked codec: the share of the damage recovered by the random defense (at its largest K), by it under
    the strongest attack per image (the plain and every adaptive one), and by the RD-cost oracle (clean gain
    subtracted); under ``objective`` (dB of PSNR vs clean) and under the rate attack (bpp, % of the clean bpp)."""
    rows: list[dict[str, object]] = []
    clean = images[images["attack"] == "none"]
    for codec in images[images["attack"] == "pgd"]["codec"].unique():
        c = clean[clean["codec"] == codec]
        kmax = focus_k(images)

        def pick(df: pd.DataFrame, defense: str, col: str, c=c, kmax=kmax) -> pd.Series:
            k = 1 if defense == "none" else kmax
            return _series(df[(df["defense"] == defense) & (df["k"] == k)], col)

        for obj, col, unit in ((objective, "psnr_clean", "dB"), ("rate", "bpp", "% of clean bpp")):
            at = _at(images, codec, obj, eps, steps)
            plain_adv = at[at["attack"] == "pgd"]
            if plain_adv.empty:
                continue
            base = pick(c, "none", col)
            sign = -1.0 if col == "bpp" else 1.0
            scale: Callable[[pd.Series], pd.Series] = ((lambda v, b=base: v / b * 100) if col == "bpp"
                                                       else (lambda v: v))
            damage = scale(sign * (base - pick(plain_adv, "none", col)))
            rec = scale(sign * (pick(plain_adv, "random", col) - pick(plain_adv, "none", col)))
            rows.append(_share_row(codec, obj, "defense", rec, damage, unit))
            adaptive = [pick(at[at["attack"] == a], "random", col) for a in at["attack"].unique() if is_adaptive(a)]
            if adaptive:
                cols = pd.concat([pick(plain_adv, "random", col), *adaptive], axis=1)
                worst = cols.max(axis=1) if col == "bpp" else cols.min(axis=1)
                rows.append(_share_row(codec, obj, "defense, strongest attack per image",
                                       scale(sign * (worst - pick(plain_adv, "none", col))), damage, unit))
            oracle_adv = pick(plain_adv, "oracle-rd", col) - pick(plain_adv, "none", col)
            oracle_clean = pick(c, "oracle-rd", col) - base
            if len(oracle_adv):
                rows.append(_share_row(codec, obj, "oracle-rd − its clean gain",
                                       scale(sign * (oracle_adv - oracle_clean)), damage, unit))
    return pd.DataFrame(rows)
