"""How much of the transfer gap an attacker who knows the deployment recovers, paired over images.

For every engine-aware source ``T~E`` (crafted on the replica of target T's graphs on engine E) and its PyTorch
counterpart ``T`` (crafted on the PyTorch model), evaluated white-box on target T, over the images T classifies
correctly on both the reference engine R (PyTorch) and E, per image (1 = the attack succeeds):

- **gap**: ``ok_R(T) − ok_E(T)``, the PyTorch-crafted attack on R against the same images on E (the transfer gap);
- **recovered**: ``ok_E(T~E) − ok_E(T)``, the engine-aware attack on E against the PyTorch-crafted one on E;
- **share**: recovered / gap, with a paired percentile bootstrap CI over images, reported only where the gap
  claim *holds* (a share of a gap that is not shown to exist means nothing).

For a differential source ``T~E:differential`` (DIVA, Hao et al., MLSys 2022), over the images T classifies
correctly on both engines: **deployed-only**, the rate at which E is fooled while R is not, against the same rate
of the PyTorch-crafted attack. The contrasts were declared before the run (here, with :data:`SESOI`); the tests and
the verdict rule are :mod:`liccs.core.stats`'s (0/1 outcomes declared: McNemar's exact test; BCa CI at the Holm family's
level 1 − α/m, exact binomial bounds where BCa is undefined; MDE at n; four levels).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from liccs.checks.transfer import Predictions
from liccs.core.stats import HOLDS, Claim, decide, paired
from liccs.stage import Source

#: The smallest change of attack success (per image, as a rate) that matters here, declared before the first run.
SESOI = 0.05


def _share_ci(r: np.ndarray, e: np.ndarray, w: np.ndarray, *, resamples: int = 5000,
              seed: int = 0) -> tuple[float, float, float]:
    """recovered / gap, ``(mean(w) − mean(e)) / (mean(r) − mean(e))``, and its 95% percentile bootstrap CI, the
    images resampled in pairs; NaN where more than 5% of the resamples have no gap (the ratio is then unstable)."""
    if len(r) < 2 or r.mean() == e.mean():
        return math.nan, math.nan, math.nan
    gap = r.mean() - e.mean()
    idx = np.random.default_rng(seed).integers(0, len(r), size=(resamples, len(r)))
    g = r[idx].mean(1) - e[idx].mean(1)
    ok = g != 0
    ratios = (w[idx].mean(1)[ok] - e[idx].mean(1)[ok]) / g[ok]
    point = float((w.mean() - e.mean()) / gap)
    if ok.mean() < 0.95:
        return point, math.nan, math.nan
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return point, float(lo), float(hi)


def engine_aware_summary(labels: np.ndarray, preds: Mapping[str, Predictions], sources: list[str], *,
                         reference_engine: str = "torch", variant: str = "uint8") -> pd.DataFrame:
    """One row per contrast (see the module docstring), with :func:`liccs.core.stats.decide`'s columns."""
    y = np.asarray(labels)
    ref = preds.get(reference_engine)
    claims, extra = [], []
    for label in sources:
        s = Source.parse(label)
        if s.engine == "torch" or len(s.members) != 1 or s.engine not in preds or ref is None:
            continue
        t, eng = s.members[0], preds[s.engine]
        need = [(s.base, t, variant), (label, t, variant)]
        if t not in ref.clean or t not in eng.clean or any(k not in ref.adv or k not in eng.adv for k in need):
            continue
        keep = (ref.clean[t] == y) & (eng.clean[t] == y)
        def ok(p: np.ndarray, keep: np.ndarray = keep) -> np.ndarray:  # attack success per kept image
            return (p[keep] != y[keep]).astype(float)

        base_r, base_e = ok(ref.adv[(s.base, t, variant)]), ok(eng.adv[(s.base, t, variant)])
        aware_r, aware_e = ok(ref.adv[(label, t, variant)]), ok(eng.adv[(label, t, variant)])
        common = {"engine": s.engine, "target": t, "source": label, "variant": variant}
        if s.differential:
            only = lambda e_, r_: e_ * (1 - r_)  # noqa: E731  (the deployment fooled, PyTorch not)
            claims.append((Claim(f"{label}: deployed-only fooling", "differential − PyTorch-crafted", SESOI),
                           paired(only(aware_e, aware_r), only(base_e, base_r), kind="binary", what=label)))
            extra.append(common | {"measure": "deployed-only"})
            continue
        claims.append((Claim(f"{t} on {s.engine}: transfer gap", "ASR on reference − ASR on engine", SESOI),
                       paired(base_r, base_e, kind="binary", what=label)))
        extra.append(common | {"measure": "gap"})
        share = _share_ci(base_r, base_e, aware_e)
        claims.append((Claim(f"{label}: gap recovered", "engine-aware − PyTorch-crafted, on the engine", SESOI),
                       paired(aware_e, base_e, kind="binary", what=label)))
        extra.append(common | {"measure": "recovered", "share": share[0], "share_ci_low": share[1],
                               "share_ci_high": share[2]})
    if not claims:
        return pd.DataFrame()
    out = pd.DataFrame([x | r for x, r in zip(extra, decide(claims), strict=True)])
    if "share" in out:  # the gap row sits just before its recovered row
        gap_holds = out["verdict"].shift(1).eq(HOLDS) & out["measure"].shift(1).eq("gap")
        out.loc[out["measure"].eq("recovered") & ~gap_holds, ["share", "share_ci_low", "share_ci_high"]] = math.nan
    return out
