"""Paper B's claims ("A training-free defense framework for robust learned image compression"), each one primary
contrast paired over images (:mod:`liccs.stats`), declared with its smallest effect of interest in the config
(``defense.claims``) before the run, decided together (Holm) by :func:`liccs.stats.decide`.

Every contrast is taken at ``defense.focus_eps`` and ``defense.steps``, with the random defense at its largest
K, per image averaged over the attacked codecs:

- ``attack-lowers-psnr``: plain codec, PSNR (vs the clean image) of the clean image − of the distortion PGD image;
- ``defense-raises-psnr``: under distortion PGD, the defense's PSNR vs clean − the plain codec's;
- ``defense-lowers-rate-attack``: under rate PGD, the plain codec's bpp rise − the defense's (% of the plain
  codec's clean bpp);
- ``gain-survives-adaptive``: under the strongest distortion attack per image (minimum over PGD, EoT and the
  selection-aware attack of the defense's PSNR) − the plain codec's PSNR under PGD;
- ``clean-cost-noninferior``: non-inferiority of the clean bpp: the defense's bpp change (%) − 0, predicted
  below the declared margin (a non-inferiority claim, :class:`liccs.stats.Claim`: it holds when the change is
  significantly below the margin and does not hold when it is significantly above it).

Every measure is continuous (dB, %): the sign-flip permutation test of the mean (:func:`liccs.stats.paired`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from liccs import stats

CLAIMS: dict[str, str] = {
    "attack-lowers-psnr": "plain codec: PSNR vs clean of the clean image − of the distortion-PGD image (dB)",
    "defense-raises-psnr": "distortion PGD: PSNR vs clean, random defense − plain codec (dB)",
    "defense-lowers-rate-attack": "rate PGD: bpp rise of the plain codec − of the random defense (% of clean bpp)",
    "gain-survives-adaptive": "min over PGD/EoT/selection-aware of the defense's PSNR vs clean − plain under PGD (dB)",
    "clean-cost-noninferior": "clean images: bpp change of the random defense (%), below the margin",
}

#: the non-inferiority claims: (direction, hypothesis); the declared value is their margin
NONINFERIORITY: dict[str, tuple[int, str]] = {"clean-cost-noninferior": (-1, "non-inferiority")}


def _per_image(df: pd.DataFrame, col: str) -> pd.Series:
    return df.groupby("image", sort=True)[col].mean()


def contrasts(images: pd.DataFrame, eps_255: float, steps: int) -> dict[str, tuple[pd.Series, pd.Series]]:
    """(a, b) per image of every claim (see the module docstring)."""
    t = images
    kmax = int(t[t["defense"] == "random"]["k"].max())
    clean = t[t["attack"] == "none"]
    at = t[(t["eps_255"] == eps_255) & (t["steps"] == steps)]
    attacked = set(at["codec"])
    clean_att = clean[clean["codec"].isin(attacked)]

    def sel(attack: str, objective: str, defense: str) -> pd.DataFrame:
        k = 1 if defense == "none" else kmax
        return at[(at["attack"] == attack) & (at["objective"] == objective) & (at["defense"] == defense)
                  & (at["k"] == k)]

    out: dict[str, tuple[pd.Series, pd.Series]] = {}
    plain_clean = clean_att[clean_att["defense"] == "none"]
    pgd_plain, pgd_def = sel("pgd", "distortion", "none"), sel("pgd", "distortion", "random")
    if len(pgd_plain):
        out["attack-lowers-psnr"] = (_per_image(plain_clean, "psnr_clean"), _per_image(pgd_plain, "psnr_clean"))
        out["defense-raises-psnr"] = (_per_image(pgd_def, "psnr_clean"), _per_image(pgd_plain, "psnr_clean"))
        worst = pd.concat([pgd_def, sel("eot", "distortion", "random"), sel("select", "distortion", "random")])
        w = worst.groupby(["codec", "image"])["psnr_clean"].min().groupby("image").mean()
        out["gain-survives-adaptive"] = (w, _per_image(pgd_plain, "psnr_clean"))
    rate_plain, rate_def = sel("pgd", "rate", "none"), sel("pgd", "rate", "random")
    if len(rate_plain):
        base = plain_clean.set_index(["codec", "image"])["bpp"]

        def rise(df: pd.DataFrame) -> pd.Series:
            r = df.set_index(["codec", "image"])["bpp"]
            return ((r / base.loc[r.index] - 1) * 100).groupby("image").mean()

        out["defense-lowers-rate-attack"] = (rise(rate_plain), rise(rate_def))
    cc = clean[clean["defense"].isin(["none", "random"])]
    p = cc[cc["defense"] == "none"].set_index(["codec", "image"])["bpp"]
    d = cc[(cc["defense"] == "random") & (cc["k"] == kmax)].set_index(["codec", "image"])["bpp"]
    change = ((d / p.loc[d.index] - 1) * 100).groupby("image").mean()
    out["clean-cost-noninferior"] = (change, change * 0)
    return out


def claims_table(images: pd.DataFrame, declared: dict[str, float], eps_255: float, steps: int,
                 alpha: float = 0.05) -> pd.DataFrame:
    """One row per declared claim (:func:`liccs.stats.decide`); a claim whose data were not produced gets NaN."""
    pairs = contrasts(images, eps_255, steps)
    family = []
    for name, sesoi in declared.items():
        a, b = pairs.get(name, (pd.Series(dtype=float), pd.Series(dtype=float)))
        a, b = a.align(b, join="inner")
        claim = stats.Claim(name, CLAIMS[name], float(sesoi), *NONINFERIORITY.get(name, (1, "superiority")))
        family.append((claim, stats.paired(a.to_numpy(), b.to_numpy(), kind="continuous", what=name)))
    rows = stats.decide(family, alpha=alpha) if family else []
    return pd.DataFrame(rows)


def claim_lines(table: pd.DataFrame) -> list[str]:
    """One verdict line per claim (:func:`liccs.stats.fmt_claim`)."""
    return [f"Paper B claim {stats.fmt_claim(r)}." for r in table.to_dict("records")] \
        or ["Paper B claims: none declared (defense.claims)."]


def check(declared: dict[str, Any]) -> list[str]:
    """The unknown claim names of ``declared``."""
    return [n for n in declared if n not in CLAIMS]
