"""Paper A's claims, each one paired contrast over images, declared before the run ("Transferable learned image
compression-resistant adversarial perturbations").

The family (Holm-corrected together, :func:`liccs.stats.decide`), all at the focus setting:

- ``neighbours``: perturbations transfer better to neighbouring qualities (|Δq| = 1) than to far ones
  (|Δq| ≥ ``far_dq``) of the same ladder. Per image: mean outcome over the neighbour cells − over the far cells.
- ``neighbours without shared weights``: the same on the lineage-control ladder, whose qualities were each
  trained from scratch (|Δq| = 2 cells − |Δq| = 4 cells, its q2/q4/q6).
- ``shared weights raise transfer``: the chain ladder's cells among the lineage qualities − the independent
  ladder's same cells (a positive effect means part of the "neighbour" transfer is shared weights).
- ``saliency beats the average set (k=K)``: the saliency-chosen set's outcome on the common targets (the same for
  every set: :func:`~liccs.papers.paper_a_sampling.common_targets`) − the mean over every k-set of their outcome
  on them, on the held-out images.
- ``codec-aware beats codec-blind``: LICCS perturbations from a neighbouring quality − the classifier-alone
  perturbations, on every quality of the ladder (the paper's reason for crafting through the codec).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from liccs import stats
from liccs.config import SamplingSection
from liccs.papers.paper_a_cells import Cells, Setting, ladder_pairs
from liccs.papers.paper_a_sampling import chosen
from liccs.papers.paper_a_tables import codec_parts

#: every claim's measure is a per-image mean of 0/1 outcomes over several cells: continuous (sign-flip test)
KIND = "continuous"


def claims(cells: Cells, focus: Setting, ladder: list[str], lineage: list[str], classifier: str,
           sets: pd.DataFrame | None, per_set: dict | None, sc: SamplingSection) -> tuple[pd.DataFrame, list[str]]:
    """The claims table (one row per claim) and its verdict lines."""
    n = len(cells.labels)
    nan = np.full(n, np.nan)
    found: list[tuple[stats.Claim, stats.PairedResult]] = []

    near = cells.per_image(focus, ladder_pairs(ladder, lambda d: d == 1))
    far = cells.per_image(focus, ladder_pairs(ladder, lambda d: d >= sc.far_dq))
    found.append((stats.Claim("neighbours", f"|Δq| = 1 − |Δq| ≥ {sc.far_dq}", sc.sesoi_neighbour),
                  stats.paired(near, far, kind=KIND)))

    lq = {codec_parts(c)[1] for c in lineage}
    if len(lineage) >= 3:
        d = sorted(lq)
        step = min(b - a for a, b in zip(d, d[1:]))
        a = cells.per_image(focus, ladder_pairs(lineage, lambda x: x == step))
        b = cells.per_image(focus, ladder_pairs(lineage, lambda x: x >= 2 * step))
        chain = cells.per_image(focus, ladder_pairs([c for c in ladder if codec_parts(c)[1] in lq], lambda x: True))
        indep = cells.per_image(focus, ladder_pairs(lineage, lambda x: True))
        desc = f"|Δq| = {step} − |Δq| ≥ {2 * step}, independent q{'/q'.join(map(str, d))}"
    else:
        a = b = chain = indep = nan
        desc = "no lineage-control ladder in this run"
    found.append((stats.Claim("neighbours without shared weights", desc, sc.sesoi_lineage),
                  stats.paired(a, b, kind=KIND)))
    found.append((stats.Claim("shared weights raise transfer", "chain-trained − independently trained, same "
                              "quality pairs", sc.sesoi_lineage), stats.paired(chain, indep, kind=KIND)))

    for k in sorted(sc.k):
        if sets is None or per_set is None or len(sets[sets["k"] == k]) < 2:
            res = stats.paired(nan, nan, kind=KIND)  # one set (or none) of this size: nothing to compare
        else:
            c = chosen(sets, k, sc.score, sc.interpolation)
            members = tuple(c["set"].split("+"))
            all_sets = [v["common"] for m, v in per_set.items() if len(m) == k]
            stack = np.stack(all_sets)
            counted = np.isfinite(stack).sum(0)
            mean = np.where(counted > 0, np.nansum(stack, 0) / np.maximum(counted, 1), np.nan)
            res = stats.paired(per_set[members]["common"], mean, kind=KIND)
        found.append((stats.Claim(f"saliency beats the average set (k={k})",
                                  f"{sc.score}/{sc.interpolation} set − mean of every {k}-set, the targets common to "
                                  "every set, held-out images", sc.sesoi_saliency), res))

    q = {c: codec_parts(c)[1] for c in ladder}
    aware = cells.per_image(focus, ladder_pairs(ladder, lambda x: x == 1))
    blind = cells.per_image(focus, [(classifier, t) for t in ladder]) \
        if all((focus, classifier, t) in cells.outcome for t in ladder) else nan
    found.append((stats.Claim("codec-aware beats codec-blind", f"LICCS from |Δq| = 1 − classifier alone, "
                              f"{len(q)} qualities", sc.sesoi_codec_aware), stats.paired(aware, blind, kind=KIND)))
    rows = stats.decide(found, alpha=sc.alpha)
    return pd.DataFrame(rows), [f"Paper A claim, {stats.fmt_claim(r)}" for r in rows]
