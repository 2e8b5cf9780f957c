"""Paper A's tables from the generic ``transfer`` table and the driver's own rows (pandas only, no model runs).

Paper A: "Transferable learned image compression-resistant adversarial perturbations". Its questions, as tables:
white-box ASR per quality (PGD, FGSM), the black-box matrix ASR[source quality, target quality] per architecture
and across architectures at matched qualities, whether neighbouring qualities are hit harder than distant ones,
the classifier alone (codec omitted) as source and target, saliency-score vs random ensembles; beyond the paper,
the same matrices on the deployed engines and their gaps to PyTorch. Every table is long-form (one row per cell).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from liccs.errors import LiccsError
from liccs.zoo.codecs import parse_codec

#: relation of a transfer cell's source to its target
WHITEBOX, SAME_ARCH, CROSS_ARCH = "white-box", "same arch", "cross arch"
CLF_TO_LICCS, LICCS_TO_CLF, OTHER = "classifier → LICCS", "LICCS → classifier", "other"


class BudgetError(LiccsError):
    """Saliency and random ensembles of one (architecture, k) did not get the same attack budget."""


def codec_parts(name: str) -> tuple[str, int] | None:
    """(architecture, quality) of ``ARCH@qN`` (``ARCH:metric`` for non-MSE weights); None for a non-codec."""
    try:
        spec = parse_codec(name)
    except LiccsError:
        return None
    return (spec.arch if spec.metric == "mse" else f"{spec.arch}:{spec.metric}"), spec.quality


def annotate(transfer: pd.DataFrame, classifier: str) -> pd.DataFrame:
    """The transfer rows with source/target architecture and quality and the cell's relation."""
    df = transfer.copy()
    for side in ("source", "target"):
        parts = df[side].map(codec_parts)
        df[f"{side}_arch"] = parts.map(lambda p: p[0] if p else None)
        df[f"{side}_q"] = parts.map(lambda p: p[1] if p else None).astype("Int64")

    def relation(r: pd.Series) -> str:
        if r["source"] == r["target"]:
            return WHITEBOX
        src, tgt = pd.notna(r["source_arch"]), pd.notna(r["target_arch"])  # pandas may store None as NaN
        if src and tgt:
            return SAME_ARCH if r["source_arch"] == r["target_arch"] else CROSS_ARCH
        if r["source"] == classifier and tgt:
            return CLF_TO_LICCS
        if r["target"] == classifier and src:
            return LICCS_TO_CLF
        return OTHER

    df["relation"] = df.apply(relation, axis=1) if len(df) else pd.Series(dtype=str)
    return df


def quality_matrix(transfer: pd.DataFrame, classifier: str) -> pd.DataFrame:
    """ASR[source quality, target quality] per engine, variant and architecture (diagonal = white-box)."""
    df = annotate(transfer, classifier)
    df = df[df["relation"].isin([WHITEBOX, SAME_ARCH]) & df["source_arch"].notna()]
    out = df.rename(columns={"source_arch": "arch"}).assign(dq=df["target_q"] - df["source_q"])
    cols = ["engine", "variant", "arch", "source_q", "target_q", "dq", "asr", "n_clean_correct", "clean_acc"]
    return _ordered(out[cols], ["engine", "variant", "arch", "source_q", "target_q"])


def cross_arch(transfer: pd.DataFrame, classifier: str) -> pd.DataFrame:
    """ASR across architectures at matched qualities (source q = target q), per engine and variant."""
    df = annotate(transfer, classifier)
    df = df[(df["relation"] == CROSS_ARCH) & (df["source_q"] == df["target_q"])]
    out = df.rename(columns={"source_q": "quality"})
    cols = ["engine", "variant", "quality", "source_arch", "target_arch", "asr", "n_clean_correct"]
    return _ordered(out[cols], ["engine", "variant", "quality", "source_arch", "target_arch"])


def _ordered(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sorted by ``by``, engines in their first-seen order (the reference engine first)."""
    if df.empty:
        return df.reset_index(drop=True)
    order = {e: i for i, e in enumerate(dict.fromkeys(df["engine"]))} if "engine" in by else {}
    key = (lambda s: s.map(order)) if order else None
    return df.sort_values(by, key=lambda s: key(s) if s.name == "engine" and key else s, kind="stable") \
        .reset_index(drop=True)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Rank correlation (average ranks for ties); NaN when either side is constant."""
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if len(x) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _pooled(qm: pd.DataFrame) -> pd.DataFrame:
    """Every architecture's cells, and the same cells again as architecture ``all``."""
    return pd.concat([qm, qm.assign(arch="all")], ignore_index=True) if qm["arch"].nunique() > 1 else qm


def distance_summary(qm: pd.DataFrame) -> pd.DataFrame:
    """Mean ASR by |Δq| (0 = white-box) per engine, variant and architecture (``all``: pooled cells)."""
    df = _pooled(qm.dropna(subset=["asr"])).assign(abs_dq=lambda d: d["dq"].abs())
    out = (df.groupby(["engine", "variant", "arch", "abs_dq"], sort=False)["asr"]
           .agg(mean_asr="mean", std_asr="std", cells="count").reset_index())
    return _ordered(out, ["engine", "variant", "arch", "abs_dq"])


def _mean(v: np.ndarray) -> float:
    return float(v.mean()) if len(v) else float("nan")


def binomial_noise(p: float, n: float) -> float:
    """Two binomial standard errors of an ASR ``p`` measured on ``n`` images: differences smaller than this
    are not told apart from the sampling noise of the images (floor: one image, ``1/n``)."""
    if not (n and n > 0 and math.isfinite(p)):
        return float("nan")
    return max(2.0 * math.sqrt(max(p * (1.0 - p), 0.0) / n), 1.0 / n)


def distance_trend(qm: pd.DataFrame) -> pd.DataFrame:
    """Off-diagonal cells only: neighbour (|Δq| = 1) vs distant (|Δq| ≥ 2) mean ASR, the mean at the farthest
    distance (``farthest_asr``, the largest |Δq|), least-squares slope of ASR against |Δq| (per quality step) and
    Spearman ρ(|Δq|, ASR). Negative slope and ρ: neighbours hit harder.

    ``noise``: :func:`binomial_noise` at the mean ASR and the median clean-correct count of the cells.
    ``verdict`` says "neighbours harder" / "distant harder" only when the slope has that sign and the neighbour
    mean differs by more than the noise from the distant mean or from the farthest one. The second contrast is
    there because a gradual fall with |Δq| is diluted in the distant mean, whose |Δq| = 2 cells sit next to the
    neighbours (paper A observes a fall with quality distance, not a step after |Δq| = 1).
    """
    df = _pooled(qm.dropna(subset=["asr"]))
    df = df[df["dq"] != 0].assign(abs_dq=lambda d: d["dq"].abs())
    rows = []
    for (engine, variant, arch), g in df.groupby(["engine", "variant", "arch"], sort=False):
        x, y = g["abs_dq"].to_numpy(float), g["asr"].to_numpy(float)
        slope = float(np.polyfit(x, y, 1)[0]) if len(np.unique(x)) > 1 else float("nan")
        n = float(g["n_clean_correct"].median()) if "n_clean_correct" in g else float("nan")
        noise = binomial_noise(float(y.mean()), n)
        near_m, far_m = _mean(y[x == 1]), _mean(y[x >= 2])
        farthest = float(x.max())  # groups are never empty
        farthest_m = _mean(y[x == farthest]) if farthest >= 2 else float("nan")
        diffs = [d for d in (near_m - far_m, near_m - farthest_m) if math.isfinite(d)]
        verdict = ("neighbours harder" if slope < 0 and any(d > noise for d in diffs) else
                   "distant harder" if slope > 0 and any(-d > noise for d in diffs) else "no difference beyond noise")
        rows.append({"engine": engine, "variant": variant, "arch": arch, "cells": len(g), "neighbour_asr": near_m,
                     "distant_asr": far_m, "farthest_dq": farthest, "farthest_asr": farthest_m, "slope_per_q": slope,
                     "spearman_rho": _spearman(x, y), "images": n, "noise": noise, "verdict": verdict})
    out = pd.DataFrame(rows, columns=["engine", "variant", "arch", "cells", "neighbour_asr", "distant_asr",
                                      "farthest_dq", "farthest_asr", "slope_per_q", "spearman_rho", "images", "noise",
                                      "verdict"])
    out["neighbours_harder"] = out["verdict"] == "neighbours harder"
    return out


def whitebox(transfer: pd.DataFrame, extra: pd.DataFrame, reference_engine: str, attack: str) -> pd.DataFrame:
    """White-box ASR per model: the generic attack (diagonal of ``transfer`` on the reference engine) and the
    rows of ``extra`` (FGSM; columns of a transfer table plus ``attack``), over clean-correct images."""
    ref = transfer[(transfer["engine"] == reference_engine) & (transfer["source"] == transfer["target"])]
    df = pd.concat([ref.assign(attack=attack), extra[extra["source"] == extra["target"]]], ignore_index=True)
    parts = df["source"].map(codec_parts)
    df["arch"] = [p[0] if p else s for p, s in zip(parts, df["source"], strict=True)]
    df["quality"] = parts.map(lambda p: p[1] if p else None).astype("Int64")
    df["model"] = np.where(parts.map(bool), "LICCS", "classifier alone")
    cols = ["model", "arch", "quality", "attack", "variant", "clean_acc", "adv_acc", "asr", "n_clean_correct",
            "source"]
    return df[cols].sort_values(["model", "arch", "quality", "attack", "variant"], kind="stable",
                                na_position="last").reset_index(drop=True)


def classifier_alone(transfer: pd.DataFrame, classifier: str) -> pd.DataFrame:
    """Per engine, variant and codec: the classifier alone as source and as target beside the LICCS numbers."""
    df = annotate(transfer, classifier)
    key = ["engine", "variant"]
    cell = df.set_index(["engine", "variant", "source", "target"])

    def get(e: str, v: str, s: str, t: str, col: str = "asr") -> float:
        try:
            return float(cell.loc[(e, v, s, t), col])
        except KeyError:
            return float("nan")

    rows = []
    codecs = df.loc[df["target_arch"].notna(), ["target", "target_arch", "target_q"]].drop_duplicates("target")
    for (e, v), _ in df.groupby(key, sort=False):
        for c in codecs.itertuples(index=False):
            rows.append({"engine": e, "variant": v, "arch": c.target_arch, "quality": c.target_q,
                         "clean_acc_liccs": get(e, v, c.target, c.target, "clean_acc"),
                         "clean_acc_classifier": get(e, v, classifier, classifier, "clean_acc"),
                         "asr_whitebox_liccs": get(e, v, c.target, c.target),
                         "asr_whitebox_classifier": get(e, v, classifier, classifier),
                         "n_clean_correct_classifier": get(e, v, classifier, classifier, "n_clean_correct"),
                         "asr_classifier_to_liccs": get(e, v, classifier, c.target),
                         "asr_liccs_to_classifier": get(e, v, c.target, classifier)})
    return pd.DataFrame(rows)


def engine_gaps(transfer: pd.DataFrame, classifier: str, reference_engine: str,
                precision: Mapping[str, str]) -> pd.DataFrame:
    """Transfer gap ASR(reference) − ASR(engine) per deployed engine, precision, variant and cell relation
    (``all``: every cell); cells where either ASR is undefined are left out."""
    df = annotate(transfer, classifier)
    keys = ["source", "target", "variant"]
    ref = df[df["engine"] == reference_engine][keys + ["asr"]].rename(columns={"asr": "asr_reference"})
    m = df[df["engine"] != reference_engine].merge(ref, on=keys).dropna(subset=["asr", "asr_reference"])
    m = m.assign(gap=m["asr_reference"] - m["asr"], precision=m["engine"].map(lambda e: precision.get(e)))
    m = pd.concat([m, m.assign(relation="all")], ignore_index=True)
    cols = ["engine", "precision", "variant", "relation", "asr_reference", "asr_engine", "mean_gap", "max_abs_gap",
            "cells"]
    if m.empty:
        return pd.DataFrame(columns=cols)
    out = (m.groupby(["engine", "precision", "variant", "relation"], sort=False, dropna=False)
           .agg(asr_reference=("asr_reference", "mean"), asr_engine=("asr", "mean"), mean_gap=("gap", "mean"),
                max_abs_gap=("gap", lambda g: g.abs().max()), cells=("gap", "count")).reset_index())
    return out[cols]


def check_budget(sampling: pd.DataFrame) -> None:
    """Raise :class:`BudgetError` unless every set of one (architecture, k) had the same members count, steps,
    images and gradient evaluations."""
    for (arch, k), g in sampling.groupby(["arch", "k"], sort=False):
        for col in ("grad_evals", "steps", "images", "k"):
            if g[col].nunique() != 1:
                raise BudgetError(f"sampling budget differs within {arch}, k={k}: {col} = "
                                  f"{dict(zip(g['method'] + '#' + g['draw'].astype(str), g[col], strict=True))}")
        if int(g["grad_evals"].iloc[0]) <= 0:
            raise BudgetError(f"sampling {arch}, k={k}: no gradient evaluation was counted")


def sampling_summary(sampling: pd.DataFrame) -> pd.DataFrame:
    """Per (architecture, k): the saliency-selected set against the random draws (mean ± std, ddof = 1) of the
    mean ASR over the architecture's qualities and over the other architectures; budget checked first."""
    check_budget(sampling)
    rows = []
    for (arch, k), g in sampling.groupby(["arch", "k"], sort=False):
        sal, rnd = g[g["method"] == "saliency"].iloc[0], g[g["method"] == "random"]
        row = {"arch": arch, "k": int(k), "saliency_members": sal["members"], "draws": len(rnd),
               "grad_evals_per_set": int(sal["grad_evals"]), "images": int(sal["images"])}
        for col in ("asr_same_arch", "asr_other_archs", "asr_classifier"):
            short = col.removeprefix("asr_")
            vals = rnd[col].to_numpy(float)
            mean = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
            std = float(np.nanstd(vals, ddof=1)) if np.isfinite(vals).sum() > 1 else float("nan")
            row |= {f"saliency_{short}": float(sal[col]), f"random_{short}_mean": mean,
                    f"random_{short}_std": std}
            if short == "same_arch":
                row["saliency_minus_random"] = float(sal[col]) - mean
                row["random_below_saliency"] = float(np.mean(vals < float(sal[col]))) if len(vals) else math.nan
                # the ASRs are means over the held-out images: a smaller difference is the images' noise
                row["noise"] = binomial_noise(mean, float(sal["images"]))
        rows.append(row)
    return pd.DataFrame(rows)
