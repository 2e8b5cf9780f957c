"""Paper B's one-line findings ("A training-free defense framework for robust learned image compression"), with
their numbers, read off its tables (:mod:`liccs.papers.b.tables`, :mod:`liccs.papers.b.claims`)."""

from __future__ import annotations

import math

import pandas as pd

from liccs.papers.b.claims import claim_lines


def _f(v: float, fmt: str = "+.2f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def attack_findings(t: pd.DataFrame) -> list[str]:
    out = []
    for (atk, obj, eps, steps), g in t.groupby(["attack", "objective", "eps_255", "steps"], sort=False):
        out.append(f"Paper B {atk} on {obj} at {eps:g}/255, {steps} steps, plain codec: PSNR vs clean "
                   f"{_f(-g['psnr_drop'].mean())} dB (vs attacked input {_f(g['psnr_input'].mean(), '.2f')} dB, "
                   f"vs clean reconstruction {_f(g['psnr_recon'].mean(), '.2f')} dB), bpp "
                   f"{_f(g['bpp_change_pct'].mean(), '+.1f')}% (mean over {g['codec'].nunique()} codec(s)).")
    return out


def share_findings(t: pd.DataFrame) -> list[str]:
    return [f"Paper B share of the damage recovered, {r.codec}, {r.objective} ({r.recovered_by}): {_f(r.share, '.2f')} "
            f"(95% CI {_f(r.ci_low, '.2f')} … {_f(r.ci_high, '.2f')}, {r.ci_method}; damage {_f(r.damage)} {r.unit}, "
            f"recovered {_f(r.recovered)} {r.unit}, n = {r.n})." for r in t.itertuples()]


def cost_findings(cost: pd.DataFrame) -> list[str]:
    return [f"Paper B clean cost, {d} K={k}: bpp {_f(g['bpp_change_pct'].mean())}%, PSNR "
            f"{_f(g['psnr_change'].mean(), '+.3f')} dB, non-identity {_f(100 * g['nonidentity'].mean(), '.0f')}% of "
            f"images, encode time ×{_f(g['encode_overhead'].mean(), '.2f')} (mean over codecs)."
            for (d, k), g in cost.groupby(["defense", "k"])]


def adaptive_findings(t: pd.DataFrame) -> list[str]:
    if t.empty:
        return []
    out = []
    for obj, g in t.groupby("objective", sort=False):
        parts = ", ".join(f"{a} {_f(x['gain'].mean())}" for a, x in g.groupby("attack", sort=False))
        unit = "% bpp saved" if obj == "rate" else "dB"
        out.append(f"Paper B adaptive attacks on {obj} (random defense K={int(g['k'].iloc[0])}, gain in {unit} vs "
                   f"plain under PGD): {parts}.")
    return out


def findings(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Every finding of paper B's stage, in the order of its experiments, then the claims' verdicts."""
    return [*attack_findings(tables["paper_b_attack"]), *share_findings(tables["paper_b_share"]),
            *cost_findings(tables["paper_b_clean_cost"]), *adaptive_findings(tables["paper_b_adaptive"]),
            *claim_lines(tables["paper_b_claims"])]
