"""One-line findings of paper A's stage ("Transferable learned image compression-resistant adversarial
perturbations"), each with its numbers, read from the stage's tables (reference engine, primary variant)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from liccs.papers.paper_a_tables import binomial_noise


def _f(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(float(v)) else f"{float(v):.3f}"


def _sel(df: pd.DataFrame, **eq: object) -> pd.DataFrame:
    for k, v in eq.items():
        if k in df.columns:
            df = df[df[k] == v]
    return df


def whitebox_finding(wb: pd.DataFrame, variant: str, attack: str) -> str:
    wb = _sel(wb, variant=variant)
    parts = []
    for model in ("LICCS", "classifier alone"):
        for name in (attack, "fgsm"):
            a = wb[(wb["model"] == model) & (wb["attack"] == name)]["asr"].astype(float)
            if len(a):
                rng = f" ({_f(a.min())}–{_f(a.max())} over {len(a)} models)" if len(a) > 1 else ""
                parts.append(f"{model} {name.upper()} {_f(a.mean())}{rng}")
    return f"Paper A white-box ASR ({variant} images, over clean-correct): " + "; ".join(parts)


def quality_findings(trend: pd.DataFrame, dist: pd.DataFrame, engine: str, variant: str) -> list[str]:
    out = []
    trend, dist = _sel(trend, engine=engine, variant=variant), _sel(dist, engine=engine, variant=variant)
    for r in trend.itertuples(index=False):
        d = dist[(dist["arch"] == r.arch) & (dist["abs_dq"] > 0)]
        by = ", ".join(f"|Δq|={int(x.abs_dq)}: {_f(x.mean_asr)}" for x in d.itertuples(index=False))
        verdict = {"neighbours harder": "neighbouring qualities ARE hit harder than distant ones",
                   "distant harder": "neighbouring qualities are NOT hit harder: distant ones are hit harder",
                   }.get(r.verdict, f"no difference between neighbouring and distant qualities beyond the noise of "
                                    f"the images (±{_f(r.noise)})")
        farthest = (f", farthest (|Δq|={int(r.farthest_dq)}) {_f(r.farthest_asr)}"
                    if math.isfinite(float(r.farthest_asr)) else "")
        out.append(f"Paper A quality transfer, {r.arch} ({engine}, {variant}): mean off-diagonal ASR by {by}; "
                   f"neighbour {_f(r.neighbour_asr)} vs distant {_f(r.distant_asr)}{farthest}, slope "
                   f"{_f(r.slope_per_q)} "
                   f"per quality step, Spearman ρ {_f(r.spearman_rho)} over {r.cells} cells: {verdict}")
    return out


def cross_finding(cross: pd.DataFrame, qm: pd.DataFrame, engine: str, variant: str) -> str:
    c = _sel(cross, engine=engine, variant=variant)["asr"].astype(float)
    q = _sel(qm, engine=engine, variant=variant)
    same = q[q["dq"] != 0]["asr"].astype(float)
    return (f"Paper A across architectures at matched qualities ({engine}, {variant}): mean ASR {_f(c.mean())} over "
            f"{c.notna().sum()} cells, against {_f(same.mean())} across qualities within an architecture")


def classifier_finding(ca: pd.DataFrame, engine: str, variant: str) -> str:
    ca = _sel(ca, engine=engine, variant=variant)
    if ca.empty or ca["asr_whitebox_classifier"].isna().all():
        return "Paper A classifier alone: not run (models.classifier_alone = false)"
    wl, wc = ca["asr_whitebox_liccs"].mean(), ca["asr_whitebox_classifier"].iloc[0]
    cl, lc = ca["asr_classifier_to_liccs"].mean(), ca["asr_liccs_to_classifier"].mean()
    acc_l, acc_c = ca["clean_acc_liccs"].mean(), ca["clean_acc_classifier"].iloc[0]
    noise = binomial_noise(float(wc), float(ca["n_clean_correct_classifier"].iloc[0]))
    if not (math.isfinite(wl) and math.isfinite(wc)):
        direction = "cannot be told (undefined ASR)"
    elif abs(wc - wl) <= noise:
        direction = f"omitting the codec does not change white-box ASR beyond the noise of the images (±{_f(noise)})"
    elif wc > wl:
        direction = "omitting the codec makes the system LESS robust here (higher white-box ASR without it)"
    elif wc < wl:
        direction = "omitting the codec makes the system MORE robust here (lower white-box ASR without it)"
    else:
        direction = "omitting the codec does not change white-box ASR here"
    return (f"Paper A classifier alone ({engine}, {variant}): white-box ASR {_f(wc)} without the codec vs "
            f"{_f(wl)} mean with it (clean accuracy {_f(acc_c)} vs {_f(acc_l)}): {direction}; its perturbations "
            f"fool LICCS at {_f(cl)} mean, LICCS perturbations fool it at {_f(lc)} mean")


def sampling_findings(summary: pd.DataFrame) -> list[str]:
    out = []
    for r in summary.itertuples(index=False):
        out.append(f"Paper A sampling {r.arch}, k={r.k}: saliency {{{r.saliency_members}}} mean ASR "
                   f"{_f(r.saliency_same_arch)} over its qualities vs random {_f(r.random_same_arch_mean)} ± "
                   f"{_f(r.random_same_arch_std)} ({r.draws} draws, {_f(r.random_below_saliency)} of them below); "
                   f"other architectures {_f(r.saliency_other_archs)} vs {_f(r.random_other_archs_mean)} ± "
                   f"{_f(r.random_other_archs_std)}; budget {r.grad_evals_per_set} member gradient evaluations "
                   f"per set on {r.images} held-out images, equal on both sides")
    d = summary["saliency_minus_random"].astype(float)
    if len(d):
        noise = summary["noise"].astype(float)
        ahead, behind = int((d > noise).sum()), int((d < -noise).sum())
        out.append(f"Paper A sampling overall: saliency − random mean ASR (own architecture) {_f(d.mean())} on "
                   f"average; saliency ahead by more than the images' noise in {ahead} of {len(d)} (architecture, "
                   f"k) cases, behind in {behind}, indistinguishable in {len(d) - ahead - behind}")
    return out


def gap_findings(gaps: pd.DataFrame, reference: str) -> list[str]:
    out = []
    for (engine, prec), g in gaps.groupby(["engine", "precision"], sort=False, dropna=False):
        alls = g[g["relation"] == "all"]
        per = ", ".join(f"{r.variant} {r.mean_gap:+.3f} (|max| {_f(r.max_abs_gap)}, {r.cells} cells)"
                        for r in alls.itertuples(index=False))
        rel = g[g["relation"] != "all"]
        worst = rel.loc[rel["mean_gap"].abs().idxmax()] if len(rel) and np.isfinite(rel["mean_gap"]).any() else None
        tail = (f"; largest by relation: {worst['relation']} ({worst['variant']}) {worst['mean_gap']:+.3f}"
                if worst is not None else "")
        out.append(f"Beyond paper A, transfer gap ASR({reference}) − ASR({engine}) [{prec}]: {per}{tail}")
    return out


def findings(tables: dict[str, pd.DataFrame], engine: str, variant: str, attack: str) -> list[str]:
    """Every finding of the stage, in the order of the paper's questions, then the deployed engines."""
    return [whitebox_finding(tables["paper_a_whitebox"], variant, attack),
            *quality_findings(tables["paper_a_quality_trend"], tables["paper_a_quality_distance"], engine, variant),
            cross_finding(tables["paper_a_cross_arch"], tables["paper_a_quality_matrix"], engine, variant),
            classifier_finding(tables["paper_a_classifier_alone"], engine, variant),
            *sampling_findings(tables["paper_a_sampling_summary"]), *gap_findings(tables["paper_a_engine_gaps"], engine)]
