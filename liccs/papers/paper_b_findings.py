"""Paper B's one-line findings, with their numbers, read off its tables (:mod:`liccs.papers.paper_b_tables`)."""

from __future__ import annotations

import math

import pandas as pd


def _f(v: float, fmt: str = "+.2f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _unit(objective: str) -> str:
    return "dB PSNR" if objective == "distortion" else "% bpp saved"


def attack_findings(t: pd.DataFrame) -> list[str]:
    out = []
    for obj, g in t.groupby("objective", sort=False):
        g = g[g["eps_255"] == g["eps_255"].max()]
        what = (f"lowers PSNR by {_f(g['psnr_drop'].mean(), '.2f')} dB (codec range "
                f"{_f(g['psnr_drop'].min(), '.2f')}–{_f(g['psnr_drop'].max(), '.2f')})" if obj == "distortion" else
                f"raises bpp by {_f(g['bpp_change_pct'].mean(), '.1f')}% (codec range "
                f"{_f(g['bpp_change_pct'].min(), '.1f')}–{_f(g['bpp_change_pct'].max(), '.1f')}%)")
        out.append(f"Paper B attack: PGD on {obj} at {g['eps_255'].iloc[0]:g}/255 {what}, mean over "
                   f"{len(g)} codec(s), no defense.")
    return out


def defense_findings(t: pd.DataFrame, focus_255: float) -> list[str]:
    out = []
    for obj, g in t[(t["eps_255"] == focus_255) & (t["k"] > 1)].groupby("objective", sort=False):
        plain = t[(t["eps_255"] == focus_255) & (t["k"] == 1) & (t["objective"] == obj)]
        damage = (plain["psnr_drop"] if obj == "distortion" else plain["bpp_change_pct"]).mean()
        gains = "; ".join(f"K={k} {_f(x['gain'].mean())}" for k, x in g.groupby("k"))
        out.append(f"Paper B defense under PGD on {obj} at {focus_255:g}/255: gain {gains} {_unit(obj)} (mean over "
                   f"codecs; the attack's damage without defense: {_f(damage, '.2f')} "
                   f"{'dB' if obj == 'distortion' else '% bpp'}).")
    return out


def cost_findings(cost: pd.DataFrame, bd: pd.DataFrame) -> list[str]:
    out = []
    for k, g in cost.groupby("k"):
        b = bd[bd["k"] == k]
        bds = ", ".join(f"{r.arch} {_f(r.bd_rate_psnr_pct)}%" for r in b.itertuples())
        out.append(f"Paper B clean cost, K={k}: bpp {_f(g['bpp_change_pct'].mean())}%, PSNR "
                   f"{_f(g['psnr_change'].mean(), '+.3f')} dB, a transform chosen for "
                   f"{_f(100 * g['nonidentity'].mean(), '.0f')}% of images; BD-rate (PSNR) {bds or 'n/a'}; "
                   f"encode time ×{_f(g['encode_overhead'].mean(), '.2f')} (measured, mean over codecs).")
    return out


def adaptive_findings(t: pd.DataFrame) -> list[str]:
    out = []
    for obj, g in t[t["attack"] == "eot"].groupby("objective", sort=False):
        parts = []
        for k, x in g.groupby("k"):
            pgd = t[(t["attack"] == "pgd") & (t["objective"] == obj) & (t["k"] == k)]
            parts.append(f"K={k} gain {_f(pgd['gain'].mean())} → {_f(x['gain'].mean())} "
                         f"(kept {_f(100 * x['gain_kept'].mean(), '.0f')}%)")
        out.append(f"Paper B adaptive EoT on {obj} at {g['eps_255'].iloc[0]:g}/255 ({_unit(obj)}, plain PGD → EoT): "
                   + "; ".join(parts) + ".")
    return out


def deployed_findings(t: pd.DataFrame, focus_255: float) -> list[str]:
    out = []
    if t.empty:
        return ["Paper B deployed replay: no deployed engine besides torch was built."]
    plain = t[t["k"] == 1]
    for (engine, obj), g in plain.groupby(["engine", "objective"], sort=False):
        top = g[g["eps_255"] == g["eps_255"].max()]
        m = "psnr_drop" if obj == "distortion" else "bpp_rise"
        sfx, unit = ("", " dB") if obj == "distortion" else ("_pct", "%")
        d = t[(t["engine"] == engine) & (t["objective"] == obj) & (t["eps_255"] == focus_255) & (t["k"] > 1)]
        kmax = d[d["k"] == d["k"].max()] if not d.empty else d
        defense = (f"; K={int(kmax['k'].iloc[0])} defense gain there {_f(kmax['gain_engine'].mean())} vs "
                   f"{_f(kmax['gain_torch'].mean())} on PyTorch ({_unit(obj)}, {focus_255:g}/255)") if not kmax.empty else ""
        out.append(f"Paper B deployed replay on {engine}, PGD on {obj} at {top['eps_255'].iloc[0]:g}/255 crafted on "
                   f"PyTorch: damage {_f(top[f'{m}_engine{sfx}'].mean(), '.2f')}{unit} vs "
                   f"{_f(top[f'{m}_torch{sfx}'].mean(), '.2f')}{unit} on PyTorch (ratio "
                   f"{_f(top['damage_ratio'].mean(), '.2f')}){defense}.")
    return out


def findings(tables: dict[str, pd.DataFrame], focus_255: float) -> list[str]:
    """Every finding of paper B's stage, in the order of its experiments (``focus_255``: defense.focus_eps × 255)."""
    d, adaptive, focus = tables["paper_b_defense"], tables["paper_b_adaptive"], round(focus_255, 3)
    return [*attack_findings(tables["paper_b_attack"]), *defense_findings(d, focus),
            *cost_findings(tables["paper_b_clean_cost"], tables["paper_b_bd_rate"]),
            *adaptive_findings(adaptive), *deployed_findings(tables["paper_b_deployed"], focus)]
