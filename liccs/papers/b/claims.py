"""Paper B's claims ("A training-free defense framework for robust learned image compression"), each one primary
contrast paired over images (:mod:`liccs.core.stats`), declared with its smallest effect of interest in the config
(``paper_b.claims``) before the run, decided together (Holm) by :func:`liccs.core.stats.decide`.

Every contrast is taken per attacked codec (no pooling over codecs: one claim row per codec), at
``paper_b.focus_eps`` on the claims' objective ``paper_b.claim_objective`` (``distortion-clean``: the decoded image
against the clean image), at the adaptive attacks' steps, with the random defense at the K of its oracles
(``paper_b.focus_k``):

- ``attack-lowers-psnr``: plain codec, PSNR (vs the clean image) of the clean image − of the attacked image;
- ``defense-raises-psnr``: under the attack, the defense's PSNR vs clean − the plain codec's;
- ``defense-lowers-rate-attack``: under the rate attack, the plain codec's bpp rise − the defense's (% of the
  plain codec's clean bpp);
- ``gain-survives-adaptive``: under the strongest attack per image (minimum over the plain attack and every
  adaptive one of the defense's PSNR) − the plain codec's PSNR under the plain attack;
- ``clean-cost-noninferior``: non-inferiority of the clean bpp: the defense's bpp change (%) − 0, predicted
  below the declared margin (a non-inferiority claim, :class:`liccs.core.stats.Claim`: it holds when the change is
  significantly below the margin and does not hold when it is significantly above it).

Every measure is continuous (dB, %): the sign-flip permutation test of the mean (:func:`liccs.core.stats.paired`).

Where an attacked model was trained under two seeds (both attacked: a mini-zoo ladder and its ``replicates``), each
claim is decided on each and replicated only where every seed gives the same verdict
(:func:`replication_table`; otherwise too close to call).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from liccs.core import stats
from liccs.papers.b.strength import focus_k, is_adaptive
from liccs.zoo.mini.recipes import replicate_of, seed_of

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


def contrasts(images: pd.DataFrame, eps_255: float, steps: int,
              objective: str = "distortion") -> dict[tuple[str, str], tuple[pd.Series, pd.Series]]:
    """(a, b) per image of every claim × attacked codec (see the module docstring), keyed ``(claim, codec)``."""
    t = images
    kmax = focus_k(t)
    clean = t[t["attack"] == "none"]
    at = t[(t["eps_255"] == eps_255) & (t["steps"] == steps)]
    out: dict[tuple[str, str], tuple[pd.Series, pd.Series]] = {}
    for codec in sorted(set(t[t["attack"] == "pgd"]["codec"])):
        ca, cc = at[at["codec"] == codec], clean[clean["codec"] == codec]

        def sel(attack: str, obj: str, defense: str, ca=ca) -> pd.DataFrame:
            k = 1 if defense == "none" else kmax
            hit = ca["attack"].map(is_adaptive) if attack == "adaptive" else ca["attack"] == attack
            return ca[hit & (ca["objective"] == obj) & (ca["defense"] == defense) & (ca["k"] == k)]

        plain_clean = cc[cc["defense"] == "none"]
        pgd_plain, pgd_def = sel("pgd", objective, "none"), sel("pgd", objective, "random")
        if len(pgd_plain):
            out[("attack-lowers-psnr", codec)] = (_per_image(plain_clean, "psnr_clean"),
                                                  _per_image(pgd_plain, "psnr_clean"))
            out[("defense-raises-psnr", codec)] = (_per_image(pgd_def, "psnr_clean"),
                                                   _per_image(pgd_plain, "psnr_clean"))
            worst = pd.concat([pgd_def, sel("adaptive", objective, "random")]).groupby("image")["psnr_clean"].min()
            out[("gain-survives-adaptive", codec)] = (worst, _per_image(pgd_plain, "psnr_clean"))
        rate_plain, rate_def = sel("pgd", "rate", "none"), sel("pgd", "rate", "random")
        if len(rate_plain):
            base = _per_image(plain_clean, "bpp")

            def rise(df: pd.DataFrame, base=base) -> pd.Series:
                r = _per_image(df, "bpp")
                return (r / base.loc[r.index] - 1) * 100

            out[("defense-lowers-rate-attack", codec)] = (rise(rate_plain), rise(rate_def))
        p = _per_image(plain_clean, "bpp")
        d = _per_image(cc[(cc["defense"] == "random") & (cc["k"] == kmax)], "bpp")
        change = (d / p.loc[d.index] - 1) * 100
        out[("clean-cost-noninferior", codec)] = (change, change * 0)
    return out


def claims_table(images: pd.DataFrame, declared: dict[str, float], eps_255: float, steps: int,
                 alpha: float = 0.05, objective: str = "distortion") -> pd.DataFrame:
    """One row per declared claim × attacked codec (:func:`liccs.core.stats.decide`, Holm over all of them); a claim
    whose data were not produced gets NaN."""
    pairs = contrasts(images, eps_255, steps, objective)
    codecs = sorted({c for _, c in pairs}) or [""]
    family, where = [], []
    for name, sesoi in declared.items():
        for codec in codecs:
            a, b = pairs.get((name, codec), (pd.Series(dtype=float), pd.Series(dtype=float)))
            a, b = a.align(b, join="inner")
            claim = stats.Claim(f"{name} [{codec}]", CLAIMS[name], float(sesoi),
                                *NONINFERIORITY.get(name, (1, "superiority")))
            family.append((claim, stats.paired(a.to_numpy(), b.to_numpy(), kind="continuous", what=name)))
            where.append(codec)
    rows = stats.decide(family, alpha=alpha) if family else []
    return pd.DataFrame([{**r, "codec": c} for r, c in zip(rows, where, strict=True)])


#: The replicated verdict where the training seeds of one model give different verdicts.
TOO_CLOSE = "too close to call (the training seeds disagree)"


def replication_table(table: pd.DataFrame) -> pd.DataFrame:
    """Each claim on each attacked model trained under more than one seed (codecs grouped by
    :func:`liccs.zoo.mini.replicate_of`): effect and verdict per seed, and the replicated verdict, the seeds' one
    where they all give it, otherwise :data:`TOO_CLOSE`. Empty where no model has a second seed."""
    if table.empty or "codec" not in table:
        return pd.DataFrame()
    t = table.assign(name=table["claim"].str.split(" [", regex=False).str[0], model=table["codec"].map(replicate_of),
                     seed=table["codec"].map(seed_of))
    rows = []
    for (name, model), g in t.groupby(["name", "model"], sort=False):
        if len(g) < 2:
            continue
        g = g.sort_values("seed", na_position="first")
        verdicts = g["verdict"].tolist()
        rows.append({"claim": name, "model": model, "seeds": ", ".join(str(x) for x in g["seed"]),
                     "codecs": ", ".join(g["codec"]), "effects": ", ".join(f"{e:+.3g}" for e in g["effect"]),
                     "verdicts": " | ".join(verdicts),
                     "replicated": verdicts[0] if len(set(verdicts)) == 1 else TOO_CLOSE})
    return pd.DataFrame(rows)


def replication_lines(table: pd.DataFrame) -> list[str]:
    """One line per replicated claim."""
    return [f"Paper B claim {r['claim']} on {r['model']} over training seeds {r['seeds']}: {r['replicated']} "
            f"(effects {r['effects']}; verdicts {r['verdicts']})." for r in table.to_dict("records")]


def claim_lines(table: pd.DataFrame) -> list[str]:
    """One verdict line per claim (:func:`liccs.core.stats.fmt_claim`)."""
    return [f"Paper B claim {stats.fmt_claim(r)}." for r in table.to_dict("records")] \
        or ["Paper B claims: none declared (paper_b.claims)."]


def check(declared: dict[str, Any]) -> list[str]:
    """The unknown claim names of ``declared``."""
    return [n for n in declared if n not in CLAIMS]
