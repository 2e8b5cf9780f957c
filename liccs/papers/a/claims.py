"""Paper A's claims, each one paired contrast over images, declared before the run ("Transferable learned image
compression-resistant adversarial perturbations").

The family (Holm-corrected together, :func:`liccs.core.stats.decide`), all at the focus setting:

- ``neighbours``: perturbations transfer better to neighbouring qualities (|Δq| = 1) than to far ones
  (|Δq| ≥ ``far_dq``) of the same ladder. Per image: mean outcome over the neighbour cells − over the far cells.
- ``neighbours without shared weights``: the same within each lineage-control replicate, whose qualities were
  each trained from scratch under the replicate's seed (|Δq| = step cells − |Δq| ≥ 2·step cells).
- ``neighbours across training (chain ↔ independent)``: the cells between the chain ladder and each replicate's
  models, which share no weights: |Δq| = 1 − |Δq| ≥ ``far_dq``, both directions.
- ``shared weights raise transfer``: the chain ladder's cells among the lineage qualities − each replicate's same
  cells (a positive effect means part of the "neighbour" transfer is shared weights).
- ``saliency beats the average set (k=K)``: the saliency-chosen set's outcome on the common targets (the same for
  every set: :func:`~liccs.papers.a.sampling.common_targets`) − the mean over every k-set of their outcome
  on them, on the held-out images.
- ``saliency ranks above the median set across units (k=K)``: with ``paper_a.units``, the selection repeated on
  each ladder (its own candidates and common targets): the chosen set's percentile among its unit's k-sets − 0.5,
  over the units (the unit, not the image, is the sample here).
- ``codec-aware beats codec-blind``: LICCS perturbations from a neighbouring quality − the classifier-alone
  perturbations, on every quality of the ladder (the paper's reason for crafting through the codec).

- with ``paper_a.deployed_engines``, two claims per engine (:mod:`liccs.papers.a.deployed`): the neighbour
  contrast on the engine, and the engine's ASR non-inferior to PyTorch's on the same cells.

The three lineage claims are contrasts over replicates × images (:func:`liccs.core.stats.paired_replicated`: the CI
resamples both, so that the spread between seeds widens it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from liccs.config import PaperASection
from liccs.core import stats
from liccs.papers.a.cells import Cells, Setting, ladder_pairs
from liccs.papers.a.sampling import chosen, unit_percentiles
from liccs.papers.a.tables import codec_parts

#: every claim's measure is a per-image mean of 0/1 outcomes over several cells: continuous (sign-flip test)
KIND = "continuous"


Pairs = list[tuple[str, str]]


def _replicated(cells: Cells, focus: Setting, replicates: list[list[str]],
                pairs: Callable[[list[str]], tuple[Pairs, Pairs]]) -> stats.PairedResult:
    """The contrast of ``pairs(replicate) → (a cells, b cells)`` per image, stacked over the replicates."""
    a, b = zip(*((cells.per_image(focus, pa), cells.per_image(focus, pb))
                 for pa, pb in (pairs(r) for r in replicates)), strict=True)
    return stats.paired_replicated(np.stack(a), np.stack(b))


def claims(cells: Cells, focus: Setting, ladder: list[str], replicates: list[list[str]], classifier: str,
           sets: pd.DataFrame | None, per_set: dict | None, sc: PaperASection,
           extra: Sequence[tuple[stats.Claim, stats.PairedResult]] = ()) -> tuple[pd.DataFrame, list[str]]:
    """The claims table (one row per claim) and its verdict lines; ``replicates``: the lineage-control ladders,
    one per seed; ``extra``: more claims of the family (the deployed engines', :mod:`.deployed`)."""
    n = len(cells.labels)
    nan = np.full(n, np.nan)
    found: list[tuple[stats.Claim, stats.PairedResult]] = []

    near = cells.per_image(focus, ladder_pairs(ladder, lambda d: d == 1))
    far = cells.per_image(focus, ladder_pairs(ladder, lambda d: d >= sc.far_dq))
    found.append((stats.Claim("neighbours", f"|Δq| = 1 − |Δq| ≥ {sc.far_dq}", sc.sesoi_neighbour),
                  stats.paired(near, far, kind=KIND)))

    replicates = [r for r in replicates if len(r) >= 3]
    q = {c: codec_parts(c)[1] for c in [*ladder, *(c for r in replicates for c in r)]}
    if replicates:
        d = sorted({q[c] for c in replicates[0]})
        step = min(b - a for a, b in zip(d, d[1:]))
        within = _replicated(cells, focus, replicates, lambda r: (ladder_pairs(r, lambda x: x == step),
                                                                  ladder_pairs(r, lambda x: x >= 2 * step)))

        def across(r: list[str], dq: Callable[[int], bool]) -> list[tuple[str, str]]:
            return [p for c in ladder for m in r if dq(abs(q[c] - q[m])) for p in ((c, m), (m, c))]

        chain_indep = _replicated(cells, focus, replicates, lambda r: (across(r, lambda x: x == 1),
                                                                       across(r, lambda x: x >= sc.far_dq)))
        chain = [c for c in ladder if q[c] in set(d)]
        shared = _replicated(cells, focus, replicates, lambda r: (ladder_pairs(chain, lambda x: True),
                                                                  ladder_pairs(r, lambda x: True)))
        desc = f"|Δq| = {step} − |Δq| ≥ {2 * step}, independent q{'/q'.join(map(str, d))}"
        seeds = f", {len(replicates)} replicate(s)"
    else:
        within = chain_indep = shared = stats.paired(nan, nan, kind=KIND)
        desc, seeds = "no lineage-control ladder in this run", ""
    found.append((stats.Claim("neighbours without shared weights", desc + seeds, sc.sesoi_lineage), within))
    found.append((stats.Claim("neighbours across training (chain ↔ independent)",
                              f"|Δq| = 1 − |Δq| ≥ {sc.far_dq}, chain ladder ↔ independent models, both directions"
                              + seeds, sc.sesoi_lineage), chain_indep))
    found.append((stats.Claim("shared weights raise transfer", "chain-trained − independently trained, same "
                              "quality pairs" + seeds, sc.sesoi_lineage), shared))

    unit = codec_parts(ladder[0])[0]
    main = sets[sets["unit"] == unit] if sets is not None and "unit" in sets else sets
    for k in sorted(sc.k):
        if main is None or per_set is None or len(main[main["k"] == k]) < 2:
            res = stats.paired(nan, nan, kind=KIND)  # one set (or none) of this size: nothing to compare
        else:
            c = chosen(main, k, sc.score, sc.interpolation)
            members = tuple(c["set"].split("+"))
            stack = np.stack([per_set[tuple(m.split("+"))]["common"] for m in main.loc[main["k"] == k, "set"]])
            counted = np.isfinite(stack).sum(0)
            mean = np.where(counted > 0, np.nansum(stack, 0) / np.maximum(counted, 1), np.nan)
            res = stats.paired(per_set[members]["common"], mean, kind=KIND)
        found.append((stats.Claim(f"saliency beats the average set (k={k})",
                                  f"{sc.score}/{sc.interpolation} set − mean of every {k}-set, the targets common to "
                                  "every set, held-out images", sc.sesoi_saliency), res))
    if sets is not None and "unit" in sets and sets["unit"].nunique() > 1:
        for k in sorted(sc.k):
            pct = unit_percentiles(sets, k, sc.score, sc.interpolation)["percentile"].to_numpy(float)
            found.append((stats.Claim(f"saliency ranks above the median set across units (k={k})",
                                      f"chosen set's percentile among the {k}-sets − 0.5, over {len(pct)} ladders "
                                      "(replication units; n_images counts units)", sc.sesoi_percentile),
                          stats.paired(pct, np.full(len(pct), 0.5), kind=KIND)))

    aware = cells.per_image(focus, ladder_pairs(ladder, lambda x: x == 1))
    blind = cells.per_image(focus, [(classifier, t) for t in ladder]) \
        if all((focus, classifier, t) in cells.outcome for t in ladder) else nan
    found.append((stats.Claim("codec-aware beats codec-blind", f"LICCS from |Δq| = 1 − classifier alone, "
                              f"{len(ladder)} qualities", sc.sesoi_codec_aware), stats.paired(aware, blind, kind=KIND)))
    rows = stats.decide([*found, *extra], alpha=sc.alpha)
    return pd.DataFrame(rows), [f"Paper A claim, {stats.fmt_claim(r)}" for r in rows]
