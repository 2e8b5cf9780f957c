"""Paper A's saliency-score sampling ("Transferable learned image compression-resistant adversarial
perturbations"): which k qualities of a ladder to ensemble, tested against every k-set.

The ASR matrix of the focus setting on the run's images (sources: the candidate qualities; targets: every
quality of the ladder) scores each k-set (:func:`liccs.papers.a.saliency.score_sets`, every score variant and
interpolation). Every k-set of the candidates is then crafted as an ensemble attack (same setting, seed and
budget: k members × images × steps gradient evaluations) on held-out images disjoint from those that gave the
matrix, and evaluated on every target. A set's held-out ASR is measured on the *common* targets, the same for every
set (:func:`common_targets`: the ladder's qualities outside the candidates, the lineage-control models and the other
architectures), which the claim and the ablation rank sets on; also on its own *non-member* qualities (its members
are white-box there; a different list per set) and on the other architectures alone. Enumeration replaces random
draws: each score's chosen set has an exact percentile among all sets, and the Spearman correlation between
score and held-out ASR across sets says whether the score ranks sets at all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from torch import Tensor

from liccs.core.progress import tqdm
from liccs.papers.a.attacks import craft, stored_as
from liccs.papers.a.cells import Cells, Setting, nanmean
from liccs.papers.a.saliency import (
    INTERPOLATIONS,
    SCORES,
    AsrMatrix,
    enumerate_sets,
    score_sets,
)
from liccs.papers.a.tables import BudgetError, codec_parts
from liccs.stage import Context

#: Where a set's held-out ASR is measured (:func:`set_outcomes`), the common targets first.
WHERE = ("common", "nonmember", "other_arch")


def arch_ladders(codecs: list[str]) -> dict[str, list[str]]:
    """Codecs by architecture, each ladder sorted by quality."""
    ladders: dict[str, list[tuple[int, str]]] = {}
    for c in codecs:
        arch, q = codec_parts(c)
        ladders.setdefault(arch, []).append((q, c))
    return {a: [c for _, c in sorted(v)] for a, v in ladders.items()}


def asr_matrix(cells: Cells, setting: Setting, sources: list[str], targets: list[str]) -> AsrMatrix:
    """ASR[source, target] of one setting; a cell with no clean-correct image counts as ASR 0."""
    v = np.nan_to_num(np.array([[nanmean(cells.get(setting, s, t)) for t in targets] for s in sources]))
    return AsrMatrix(v.clip(0, 1), tuple(sources), tuple(targets))


def label(members: tuple[str, ...]) -> str:
    return "+".join(f"q{codec_parts(m)[1]}" for m in members)


def candidates_of(ladder: list[str], wanted: list[int]) -> list[str]:
    """The qualities of ``ladder`` the ensembles are drawn from: those of ``wanted`` (``paper_a.candidates``;
    empty: all)."""
    return [c for c in ladder if not wanted or codec_parts(c)[1] in wanted]


def common_targets(ladder: list[str], candidates: list[str], lineage: list[str], others: list[str]) -> list[str]:
    """The held-out targets no set has a member in, the same for every set: the ladder's qualities outside the
    candidates, the lineage-control ladder and the other architectures."""
    return [*(c for c in ladder if c not in candidates), *lineage, *others]


def run_sampling(ctx: Context, out: Path, cells: Cells, setting: Setting, ladder: list[str], candidates: list[str],
                 others: list[str], fns: dict[str, Callable[[Tensor], Any]], images: Tensor, labels: Tensor,
                 progress: bool = True, lineage: list[str] | None = None, fresh: frozenset[str] = frozenset(),
                 ) -> tuple[pd.DataFrame, Cells, dict[tuple[str, ...], dict[str, np.ndarray]]]:
    """(one row per enumerated set: k, members, every score variant, held-out ASRs, budget; the held-out cells;
    per set, the per-image outcome on non-member qualities and on the other architectures). ``fresh``: the keys of
    the sets an executor's tasks crafted in this run (:func:`sampling_jobs`), not counted as found stored."""
    sc = ctx.cfg.paper_a
    matrix = asr_matrix(cells, setting, candidates, ladder)
    held = Cells(images, labels, fns, ctx.cfg.transfer.batch_size, cells.memo)
    rows, per_image = [], {}
    jobs = [(k, s) for k in sc.k for s in enumerate_sets(candidates, k)]
    scores = {(sv, iv): {k: score_sets(matrix, enumerate_sets(candidates, k), interpolation=iv, score=sv)
                         for k in sc.k} for sv in SCORES for iv in INTERPOLATIONS}
    index = {k: 0 for k in sc.k}
    common = common_targets(ladder, candidates, lineage or [], others)
    targets = [*ladder, *(lineage or []), *others]
    for k, members in tqdm(jobs, desc="paper A sampling (every k-set)", disable=not progress):
        adv, evals, cached = craft(ctx, out, list(members), images, labels, setting=setting)
        held.add(setting, "+".join(members), adv, targets)
        src = "+".join(members)
        fresh_now = not cached or stored_as(ctx, out, list(members), images, labels, setting=setting)[1] in fresh
        per_image[members] = set_outcomes(held, setting, members, ladder, others, common)
        row = {"unit": codec_parts(ladder[0])[0], "k": k, "members": label(members), "set": src,
               "grad_evals": evals, "steps": setting.steps,
               "images": len(images), "cached": not fresh_now,
               "heldout_asr_common": nanmean(per_image[members]["common"]),
               "heldout_asr_nonmember": nanmean(per_image[members]["nonmember"]),
               "heldout_asr_other_arch": nanmean(per_image[members]["other_arch"])}
        for (sv, iv), by_k in scores.items():
            row[f"score_{sv}_{iv}"] = float(by_k[k][index[k]])
        index[k] += 1
        rows.append(row)
    sets = pd.DataFrame(rows)
    check_budget(sets)
    return sets, held, per_image


def sampling_jobs(ctx: Context, setting: Setting, ladder: list[str], candidates: list[str], others: list[str],
                  images: Tensor, labels: Tensor, lineage: list[str] | None = None,
                  ) -> list[tuple[list[str], Tensor, Tensor, Setting, list[str]]]:
    """Every k-set of :func:`run_sampling` as a craft job (members, images, labels, setting, targets), for an
    executor's tasks (:mod:`liccs.papers.a.tasks`)."""
    targets = [*ladder, *(lineage or []), *others]
    return [(list(m), images, labels, setting, targets)
            for k in ctx.cfg.paper_a.k for m in enumerate_sets(candidates, k)]


def set_outcomes(held: Cells, setting: Setting, members: tuple[str, ...], ladder: list[str],
                 others: list[str], common: list[str]) -> dict[str, np.ndarray]:
    """Per held-out image, one set's mean outcome on the common targets, on its non-member qualities and on the
    other architectures."""
    src = "+".join(members)
    return {"common": held.per_image(setting, [(src, t) for t in common]),
            "nonmember": held.per_image(setting, [(src, t) for t in ladder if t not in members]),
            "other_arch": held.per_image(setting, [(src, t) for t in others])}


def check_budget(sets: pd.DataFrame) -> None:
    """Raise :class:`BudgetError` unless every set of one k had the same, positive, gradient evaluations."""
    for k, g in sets.groupby("k"):
        if g["grad_evals"].nunique() != 1 or int(g["grad_evals"].iloc[0]) <= 0:
            raise BudgetError(f"sampling k={k}: the sets' gradient evaluations differ or are zero: "
                              f"{dict(zip(g['members'], g['grad_evals'], strict=True))}")


def chosen(sets: pd.DataFrame, k: int, score: str, interpolation: str) -> pd.Series:
    """The set of size ``k`` with the highest score (ties: the first in enumeration order)."""
    g = sets[sets["k"] == k]
    return g.loc[g[f"score_{score}_{interpolation}"].idxmax()]


def unit_percentiles(sets: pd.DataFrame, k: int, score: str, interpolation: str) -> pd.DataFrame:
    """Per replication unit (a ladder: ``unit``), the chosen k-set, its held-out ASR on the unit's common targets
    and its mid-rank percentile among the unit's k-sets (0.5: the median set)."""
    rows = []
    for unit, g in sets.groupby("unit", sort=False):
        if len(g[g["k"] == k]) < 2:
            continue
        c = chosen(g, k, score, interpolation)
        vals = g.loc[g["k"] == k, "heldout_asr_common"].to_numpy(float)
        ok = np.isfinite(vals)
        rows.append({"unit": unit, "k": k, "chosen": c["members"], "sets": int(ok.sum()),
                     "chosen_asr": float(c["heldout_asr_common"]),
                     "percentile": percentile(vals[ok], float(c["heldout_asr_common"])) if ok.any() else np.nan})
    return pd.DataFrame(rows, columns=["unit", "k", "chosen", "sets", "chosen_asr", "percentile"])


def percentile(values: np.ndarray, value: float) -> float:
    """Mid-rank percentile of ``value`` among ``values``: share below plus half the share equal."""
    v = np.asarray(values, dtype=float)
    return float(np.mean(v < value) + 0.5 * np.mean(v == value))


def ablation(sets: pd.DataFrame) -> pd.DataFrame:
    """Per unit × k × score × interpolation: the chosen set, its held-out ASRs, its exact percentile among every k-set,
    and Spearman's ρ (with p) between the score and the held-out ASR across sets, on the common targets, on
    non-member qualities and on the other architectures."""
    rows = []
    sets = sets if "unit" in sets else sets.assign(unit="")
    for (unit, k), g in sets.sort_values("k", kind="stable").groupby(["unit", "k"], sort=False):
        for sv in SCORES:
            for iv in INTERPOLATIONS:
                c = chosen(g, k, sv, iv)
                row: dict[str, Any] = {"unit": unit, "k": int(k), "score": sv, "interpolation": iv, "sets": len(g),
                                       "chosen": c["members"]}
                for where in (w for w in WHERE if f"heldout_asr_{w}" in g):
                    col = f"heldout_asr_{where}"
                    vals = g[col].to_numpy(float)
                    s = g[f"score_{sv}_{iv}"].to_numpy(float)
                    ok = np.isfinite(vals)
                    rho = spearmanr(s[ok], vals[ok]) if ok.sum() > 2 and np.ptp(s[ok]) > 0 and np.ptp(vals[ok]) > 0 \
                        else None
                    row |= {f"{where}_chosen": float(c[col]), f"{where}_mean_of_sets": nanmean(vals),
                            f"{where}_best_set": g.loc[g[col].idxmax(), "members"] if ok.any() else None,
                            f"{where}_best": float(np.nanmax(vals)) if ok.any() else float("nan"),
                            f"{where}_percentile": percentile(vals[ok], float(c[col])) if ok.any() else float("nan"),
                            f"{where}_spearman": float(rho.statistic) if rho else float("nan"),
                            f"{where}_spearman_p": float(rho.pvalue) if rho else float("nan")}
                rows.append(row)
    return pd.DataFrame(rows)
