"""Paper B's report tables ("A training-free defense framework for robust learned image compression"),
long-form (one row per condition, CSV friendly), from the per-image rows of :mod:`liccs.papers.b.stage`, and
the Bjøntegaard delta rate.

Gains are oriented so that positive helps the defender: for the distortion attacks in dB of PSNR against the
clean image, for the rate attack in % of the plain codec's bpp saved. ``defense = "none"`` is the plain codec.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from liccs.papers.b.strength import focus_k, is_adaptive

KEYS = ["codec", "arch", "quality", "attack", "objective", "eps_255", "steps", "target", "defense", "k"]
METRICS = ["bpp", "psnr_clean", "psnr_input", "psnr_recon"]
COND = ["codec", "attack", "objective", "eps_255", "steps", "target"]


def bd_rate(rate_a: Sequence[float], psnr_a: Sequence[float], rate_b: Sequence[float],
            psnr_b: Sequence[float]) -> float:
    """Bjøntegaard delta rate (VCEG-M33, 2001) of curve B against anchor A, in %: the mean log-rate difference
    over the overlapping quality interval, each curve's log rate fitted as a polynomial of quality (cubic
    with 4+ points, degree n−1 below). NaN with fewer than 2 distinct points per curve or no overlap. Unlike
    :func:`liccs.checks.rd.bd_rate` (PCHIP, NaN unless PSNR rises strictly with the rate), it accepts a curve whose
    PSNR dips between qualities, as a defended codec's can."""
    curves = []
    for r, q in ((rate_a, psnr_a), (rate_b, psnr_b)):
        r, q = np.asarray(r, dtype=float), np.asarray(q, dtype=float)
        ok = np.isfinite(r) & np.isfinite(q) & (r > 0)
        r, q = r[ok], q[ok]
        if len(np.unique(q)) < 2:
            return math.nan
        curves.append((np.polyfit(q, np.log(r), min(3, len(q) - 1)), q.min(), q.max()))
    lo, hi = max(curves[0][1], curves[1][1]), min(curves[0][2], curves[1][2])
    if not hi > lo:
        return math.nan
    ints = [np.polyval(np.polyint(p), hi) - np.polyval(np.polyint(p), lo) for p, _, _ in curves]
    return float((math.exp((ints[1] - ints[0]) / (hi - lo)) - 1) * 100)


def summary(images: pd.DataFrame) -> pd.DataFrame:
    """Means over images per condition, with the share of images whose choice is not the identity."""
    df = images.assign(nonidentity=(images["chosen"] != "identity").astype(float))
    agg = {m: "mean" for m in [*METRICS, "nonidentity", "encode_s"] if m in df}
    out = df.groupby(KEYS, dropna=False, sort=False).agg(agg)
    out.insert(0, "images", df.groupby(KEYS, dropna=False, sort=False).size())
    return out.reset_index()


def gain(objective: str, defended: pd.Series | pd.DataFrame, plain: pd.Series | pd.DataFrame) -> object:
    """The defender's gain: dB of PSNR against the clean image, or % of the plain codec's bpp saved (rate)."""
    if objective == "rate":
        return (plain["bpp"] - defended["bpp"]) / plain["bpp"] * 100
    return defended["psnr_clean"] - plain["psnr_clean"]


def _clean(s: pd.DataFrame) -> pd.DataFrame:
    return s[s["attack"] == "none"].set_index(["codec", "defense", "k"])


def attack_table(s: pd.DataFrame) -> pd.DataFrame:
    """Every attack (and the noise control) on the plain codec: PSNR against the three references, bpp change."""
    c = _clean(s)
    t = s[(s["attack"] != "none") & (s["defense"] == "none")].copy()
    base = c.loc[[(r.codec, "none", 1) for r in t.itertuples()]]
    t["bpp_clean"], t["psnr_clean_image"] = base["bpp"].to_numpy(), base["psnr_clean"].to_numpy()
    t["bpp_change_pct"] = (t["bpp"] / t["bpp_clean"] - 1) * 100
    t["psnr_drop"] = t["psnr_clean_image"] - t["psnr_clean"]
    return t.drop(columns=["defense", "k", "nonidentity", "encode_s"], errors="ignore").reset_index(drop=True)


def defense_table(s: pd.DataFrame) -> pd.DataFrame:
    """Every attacked condition through each defense beside the plain codec: the three PSNRs, bpp, the gain."""
    t = s[s["attack"] != "none"]
    rows = []
    for _, g in t.groupby(COND, sort=False):
        p = g[g["defense"] == "none"].iloc[0]
        for _, r in g.iterrows():
            rows.append({**r.drop(["encode_s"], errors="ignore").to_dict(), "gain": gain(r["objective"], r, p)})
    return pd.DataFrame(rows)


def clean_cost_table(s: pd.DataFrame) -> pd.DataFrame:
    """Each defense's cost on clean images per codec: bpp, PSNR, encode time, against the plain codec."""
    c = s[(s["attack"] == "none") & ~s["defense"].str.startswith("oracle")]
    rows = []
    for _, r in c[c["defense"] != "none"].iterrows():
        p = c[(c["codec"] == r["codec"]) & (c["defense"] == "none")].iloc[0]
        rows.append({"arch": r["arch"], "quality": r["quality"], "defense": r["defense"], "k": r["k"],
                     "images": r["images"], "bpp_plain": p["bpp"], "bpp_defended": r["bpp"],
                     "bpp_change_pct": (r["bpp"] / p["bpp"] - 1) * 100, "psnr_plain": p["psnr_clean"],
                     "psnr_defended": r["psnr_clean"], "psnr_change": r["psnr_clean"] - p["psnr_clean"],
                     "nonidentity": r["nonidentity"], "encode_s_plain": p["encode_s"],
                     "encode_s_defended": r["encode_s"],
                     "encode_overhead": r["encode_s"] / p["encode_s"] if p["encode_s"] else math.nan})
    return pd.DataFrame(rows).sort_values(["arch", "defense", "k", "quality"], ignore_index=True)


def bd_rate_table(s: pd.DataFrame) -> pd.DataFrame:
    """BD-rate (PSNR) of each defense against the plain codec over the qualities, per architecture with two or more
    qualities (clean)."""
    c = s[(s["attack"] == "none") & ~s["defense"].str.startswith("oracle")]
    rows = []
    for arch, g in c.groupby("arch", sort=False):
        plain = g[g["defense"] == "none"].sort_values("quality")
        if len(plain) < 2:  # one quality of this architecture (a seed replicate's attacked codec): no curve
            continue
        for (defense, k), d in g[g["defense"] != "none"].groupby(["defense", "k"]):
            d = d.sort_values("quality")
            rows.append({"arch": arch, "defense": defense, "k": k, "qualities": ",".join(str(q) for q in d["quality"]),
                         "bd_rate_psnr_pct": bd_rate(plain["bpp"], plain["psnr_clean"], d["bpp"], d["psnr_clean"])})
    return pd.DataFrame(rows)


def adaptive_table(s: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """The random defense at the claims' K under PGD and each adaptive attack (focus eps), against the plain codec
    under PGD at the same steps; ``worst``: per image, the minimum over these attacks of the gain."""
    rows = []
    adaptive = images["attack"].map(is_adaptive)
    ad = images[adaptive]
    k = focus_k(images)
    for codec, obj, eps, steps in ad.groupby(["codec", "objective", "eps_255", "steps"], sort=False).groups:
        sel = images[(images["codec"] == codec) & (images["objective"] == obj) & (images["eps_255"] == eps)
                     & (images["steps"] == steps) & (adaptive | (images["attack"] == "pgd"))]
        base = sel[(sel["attack"] == "pgd") & (sel["defense"] == "none")].set_index("image")
        per = {}
        for atk, a in sel[(sel["defense"] == "random") & (sel["k"] == k)].groupby("attack"):
            per[atk] = gain(obj, a.set_index("image"), base)
            rows.append({"codec": codec, "objective": obj, "eps_255": eps, "steps": steps, "k": k, "attack": atk,
                         "images": len(a), "bpp": a["bpp"].mean(), "psnr_clean": a["psnr_clean"].mean(),
                         "gain": per[atk].mean()})
        worst = pd.concat(per, axis=1).min(axis=1)
        rows.append({"codec": codec, "objective": obj, "eps_255": eps, "steps": steps, "k": k, "attack": "worst",
                     "images": len(worst), "gain": worst.mean()})
    return pd.DataFrame(rows)
