"""Paper B's report tables, long-form (one row per condition, CSV friendly), from the per-image rows of
:mod:`liccs.papers.paper_b`, and the Bjøntegaard delta rate.

Gains are oriented so that positive helps the defender: for the distortion attack in dB of PSNR, for the rate
attack in % of bpp saved. ``k = 1`` is the plain codec (no defense).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

KEYS = ["codec", "arch", "quality", "engine", "attack", "objective", "eps_255", "target_k", "defense", "k"]
METRICS = ["bpp", "psnr", "ms_ssim"]


def bd_rate(rate_a: Sequence[float], psnr_a: Sequence[float], rate_b: Sequence[float],
            psnr_b: Sequence[float]) -> float:
    """Bjøntegaard delta rate (VCEG-M33, 2001) of curve B against anchor A, in %: the mean log-rate difference
    over the overlapping quality interval, each curve's log rate fitted as a polynomial of quality (cubic
    with 4+ points, degree n−1 below). NaN with fewer than 2 distinct points per curve or no overlap."""
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
    agg = {m: "mean" for m in [*METRICS, "nonidentity", "encode_s", "decode_s"] if m in df}
    out = df.groupby(KEYS, dropna=False, sort=False).agg(agg)
    out.insert(0, "images", df.groupby(KEYS, dropna=False, sort=False).size())
    return out.reset_index()


def _gain(objective: str, defended: pd.Series, plain: pd.Series, which: str) -> pd.Series:
    """The defender's gain of ``defended`` over ``plain``: dB of PSNR (distortion), % of bpp saved (rate)."""
    if objective == "rate":
        return (plain[f"bpp{which}"] - defended[f"bpp{which}"]) / plain[f"bpp{which}"] * 100
    return defended[f"psnr{which}"] - plain[f"psnr{which}"]


def attack_table(s: pd.DataFrame) -> pd.DataFrame:
    """Table 1: clean and PGD-attacked images through each PyTorch codec, no defense."""
    t = defense_table(s)
    return t[t["k"] == 1].drop(columns=["k", "gain", "nonidentity_adv"]).reset_index(drop=True)


def defense_table(s: pd.DataFrame) -> pd.DataFrame:
    """Table 2: clean and PGD-attacked images through each PyTorch codec, plain (k = 1) and K-way."""
    torch_ = s[s["engine"] == "torch"]
    clean = torch_[torch_["attack"] == "none"][["codec", "k", *METRICS]]
    adv = torch_[torch_["attack"] == "pgd"]
    t = adv.merge(clean, on=["codec", "k"], suffixes=("_adv", "_clean"))
    base = t[t["k"] == 1].set_index(["codec", "objective", "eps_255"])
    rows = []
    for _, r in t.iterrows():
        b = base.loc[(r["codec"], r["objective"], r["eps_255"])]
        rows.append({"arch": r["arch"], "quality": r["quality"], "objective": r["objective"],
                     "eps_255": r["eps_255"], "k": r["k"], "images": r["images"],
                     **{f"{m}_{w}": r[f"{m}_{w}"] for m in METRICS for w in ("clean", "adv")},
                     "bpp_change_pct": (r["bpp_adv"] / r["bpp_clean"] - 1) * 100,
                     "psnr_drop": r["psnr_clean"] - r["psnr_adv"],
                     "gain": _gain(r["objective"], r, b, "_adv"), "nonidentity_adv": r["nonidentity"]})
    return pd.DataFrame(rows).sort_values(["arch", "quality", "objective", "eps_255", "k"], ignore_index=True)


def clean_cost_table(s: pd.DataFrame) -> pd.DataFrame:
    """The defense's cost on clean images per PyTorch codec and K: bpp, PSNR, MS-SSIM, encode/decode time."""
    c = s[(s["engine"] == "torch") & (s["attack"] == "none")].set_index(["codec", "k"])
    rows = []
    for (codec, k), r in c.iterrows():
        if k == 1:
            continue
        p = c.loc[(codec, 1)]
        rows.append({"arch": r["arch"], "quality": r["quality"], "k": k, "images": r["images"],
                     "bpp_plain": p["bpp"], "bpp_kway": r["bpp"], "bpp_change_pct": (r["bpp"] / p["bpp"] - 1) * 100,
                     "psnr_plain": p["psnr"], "psnr_kway": r["psnr"], "psnr_change": r["psnr"] - p["psnr"],
                     "ms_ssim_plain": p["ms_ssim"], "ms_ssim_kway": r["ms_ssim"], "nonidentity": r["nonidentity"],
                     "encode_s_plain": p["encode_s"], "encode_s_kway": r["encode_s"],
                     "encode_overhead": r["encode_s"] / p["encode_s"], "decode_s_plain": p["decode_s"],
                     "decode_s_kway": r["decode_s"]})
    return pd.DataFrame(rows).sort_values(["arch", "k", "quality"], ignore_index=True)


def _msssim_db(v: pd.Series) -> pd.Series:
    return -10 * np.log10(1 - v.astype(float))


def bd_rate_table(s: pd.DataFrame) -> pd.DataFrame:
    """BD-rate of each K-way defense against the plain codec over the qualities, per architecture (clean)."""
    c = s[(s["engine"] == "torch") & (s["attack"] == "none")]
    rows = []
    for arch, g in c.groupby("arch", sort=False):
        plain = g[g["k"] == 1].sort_values("quality")
        for k, d in g[g["k"] > 1].groupby("k"):
            d = d.sort_values("quality")
            rows.append({"arch": arch, "k": k, "qualities": ",".join(str(q) for q in d["quality"]),
                         "bd_rate_psnr_pct": bd_rate(plain["bpp"], plain["psnr"], d["bpp"], d["psnr"]),
                         "bd_rate_ms_ssim_pct": bd_rate(plain["bpp"], _msssim_db(plain["ms_ssim"]), d["bpp"],
                                                        _msssim_db(d["ms_ssim"]))})
    return pd.DataFrame(rows)


def adaptive_table(s: pd.DataFrame) -> pd.DataFrame:
    """The adaptive EoT attack against each K-way defense, beside the plain PGD at the same eps (PyTorch).

    ``gain``: the defended codec under this attack against the plain codec under plain PGD; ``gain_kept``
    (EoT rows): the share of the gain against plain PGD that survives the adaptive attack.
    """
    t = s[s["engine"] == "torch"]
    eot = t[t["attack"] == "eot"]
    rows = []
    for (codec, obj, eps, k), e in eot.groupby(["codec", "objective", "eps_255", "target_k"], sort=False):
        pgd = t[(t["attack"] == "pgd") & (t["codec"] == codec) & (t["objective"] == obj) & (t["eps_255"] == eps)]
        base = pgd[pgd["k"] == 1].iloc[0]
        conds = {"pgd": (base, pgd[pgd["k"] == k].iloc[0]), "eot": (e[e["k"] == 1].iloc[0], e[e["k"] == k].iloc[0])}
        gains = {a: _gain(obj, d, base, "") for a, (_, d) in conds.items()}
        for a, (plain, d) in conds.items():
            rows.append({"arch": d["arch"], "quality": d["quality"], "objective": obj, "eps_255": eps, "k": k,
                         "attack": a, "images": d["images"],
                         **{f"{m}_{w}": r[m] for m in ("bpp", "psnr") for w, r in (("plain", plain), ("kway", d))},
                         "nonidentity": d["nonidentity"], "gain": gains[a],
                         "gain_kept": gains["eot"] / gains["pgd"] if a == "eot" and gains["pgd"] > 0 else math.nan})
    return pd.DataFrame(rows)


def deployed_table(s: pd.DataFrame) -> pd.DataFrame:
    """Images crafted on the PyTorch codec, through each deployed engine beside PyTorch: the damage (PSNR drop,
    bpp rise against the same engine's clean images, same K), its ratio engine/PyTorch, and the K-way gain."""
    t = s[s["attack"].isin(["none", "pgd"])]
    idx = t.set_index(["codec", "engine", "attack", "objective", "eps_255", "k"])
    rows = []
    for _, r in t[(t["engine"] != "torch") & (t["attack"] == "pgd")].iterrows():
        row: dict[str, object] = {"arch": r["arch"], "quality": r["quality"], "engine": r["engine"],
                                  "objective": r["objective"], "eps_255": r["eps_255"], "k": r["k"]}
        for eng, w in ((r["engine"], "engine"), ("torch", "torch")):
            key = (r["codec"], eng, "pgd", r["objective"], r["eps_255"], r["k"])
            ckey = (r["codec"], eng, "none", "none", 0.0, r["k"])
            if key not in idx.index or ckey not in idx.index:
                break
            a, c = idx.loc[key], idx.loc[ckey]
            p = idx.loc[(r["codec"], eng, "pgd", r["objective"], r["eps_255"], 1)]
            row |= {f"bpp_{w}": a["bpp"], f"psnr_{w}": a["psnr"], f"psnr_drop_{w}": c["psnr"] - a["psnr"],
                    f"bpp_rise_{w}_pct": (a["bpp"] / c["bpp"] - 1) * 100, f"gain_{w}": _gain(r["objective"], a, p, "")}
        else:
            m = "psnr_drop" if r["objective"] == "distortion" else "bpp_rise"
            sfx = "" if m == "psnr_drop" else "_pct"
            row["damage_ratio"] = row[f"{m}_engine{sfx}"] / row[f"{m}_torch{sfx}"] if row[f"{m}_torch{sfx}"] else math.nan
            rows.append(row)
    return pd.DataFrame(rows)
