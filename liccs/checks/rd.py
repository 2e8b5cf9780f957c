"""Bjøntegaard delta rate (BD-rate): the average bitrate difference of one codec against another at equal quality.

G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves", VCEG-M33, 2001, with the
piecewise-cubic (PCHIP) interpolation of later practice instead of the cubic polynomial fit: log rate is
interpolated as a function of PSNR on each curve, integrated over the PSNR interval both curves cover, and the mean
log difference is returned as a percentage (positive: the test codec needs more bits for the same PSNR).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator

from liccs.core.errors import InputError


def _curve(rate: Sequence[float], psnr: Sequence[float], which: str) -> tuple[np.ndarray, np.ndarray]:
    r, p = np.asarray(rate, dtype=np.float64), np.asarray(psnr, dtype=np.float64)
    if r.shape != p.shape or len(r) < 2 or not (np.isfinite(r).all() and np.isfinite(p).all()) or (r <= 0).any():
        raise InputError(f"BD-rate: the {which} curve needs >= 2 finite points with rate > 0, got rate {r.tolist()} "
                         f"and PSNR {p.tolist()}")
    order = np.argsort(p)
    return np.log(r[order]), p[order]


def bd_rate(ref_rate: Sequence[float], ref_psnr: Sequence[float], test_rate: Sequence[float],
            test_psnr: Sequence[float]) -> float:
    """BD-rate of ``test`` against ``ref`` in percent; NaN when the curves' PSNR ranges do not overlap or a curve's
    PSNR does not rise strictly with its rate (a broken codec has no RD curve to integrate)."""
    lr_ref, p_ref = _curve(ref_rate, ref_psnr, "reference")
    lr_test, p_test = _curve(test_rate, test_psnr, "test")
    for lr, p in ((lr_ref, p_ref), (lr_test, p_test)):
        if not (np.diff(p) > 0).all() or not (np.diff(lr) > 0).all():
            return math.nan
    lo, hi = max(p_ref.min(), p_test.min()), min(p_ref.max(), p_test.max())
    if hi <= lo:
        return math.nan
    ref_i = PchipInterpolator(p_ref, lr_ref).integrate(lo, hi)
    test_i = PchipInterpolator(p_test, lr_test).integrate(lo, hi)
    return float((math.exp((test_i - ref_i) / (hi - lo)) - 1) * 100)


def bd_rate_table(rd: pd.DataFrame, reference_engine: str = "torch") -> pd.DataFrame:
    """Per architecture and engine, the BD-rate against ``reference_engine`` over the qualities of a
    ``rate_distortion`` table (columns arch, engine, bpp, psnr)."""
    rows = []
    for arch, g in rd.groupby("arch", sort=False):
        ref = g[g["engine"] == reference_engine]
        if len(ref) < 2:
            continue
        for engine, t in g[g["engine"] != reference_engine].groupby("engine", sort=False):
            if len(t) < 2:
                continue
            rows.append({"arch": arch, "engine": engine, "reference": reference_engine, "qualities": len(t),
                         "bd_rate_pct": bd_rate(ref["bpp"], ref["psnr"], t["bpp"], t["psnr"])})
    return pd.DataFrame(rows)
