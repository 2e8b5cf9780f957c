"""Paper A's per-image outcomes as one table, and its claims recomputed from that table ("Transferable learned
image compression-resistant adversarial perturbations").

``paper_a_outcomes`` (``tables/paper_a_outcomes.csv.gz``) has one row per image set (``run``: the run's images;
``held-out``: the sampling experiment's; ``focus selection``: those that chose the focus eps) × engine (the
reference engine, and each of ``paper_a.deployed_engines`` for the replayed cells) × setting × source × target ×
image: ``success`` 1 (the target
classified the clean image correctly and the adversarial one wrongly) or 0, empty where the clean image was
already misclassified (not counted), and ``clean_correct``. :func:`recompute_claims` rebuilds the claims table
of a report folder from it, the sweep's focus row, the sampling table and the config in the manifest: what a
reader runs to check the report (``python -c "from liccs.papers.a.outcomes import recompute_claims; ..."``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from liccs.config import from_dict
from liccs.core.errors import InputError
from liccs.papers.a.cells import Cells, Setting
from liccs.papers.a.claims import claims
from liccs.papers.a.deployed import deployed_claims
from liccs.papers.a.sampling import arch_ladders, candidates_of, common_targets, set_outcomes

#: The image sets of the table: the run's images, the sampling experiment's held-out images, and the images that
#: chose the focus eps (``paper_a.focus_images``; disjoint from both).
IMAGE_SETS = ("run", "held-out", "focus selection")
COLUMNS = ["images", "engine", "eps_255", "steps", "source", "target", "image", "clean_correct", "success"]


def outcomes_frame(cells: Cells, image_set: str, engine: str) -> pd.DataFrame:
    """Every cell of ``cells`` per image, labelled ``image_set`` (one of :data:`IMAGE_SETS`) and the ``engine`` its
    targets ran on."""
    parts = [pd.DataFrame({"images": image_set, "engine": engine, "eps_255": st.eps_255, "steps": st.steps,
                           "source": s, "target": t, "image": np.arange(len(v)), "clean_correct": np.isfinite(v),
                           "success": v})
             for (st, s, t), v in cells.outcome.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)


def cells_from(outcomes: pd.DataFrame, image_set: str, engine: str) -> Cells:
    """The :class:`Cells` of one image set on one engine of an outcomes table (no predictors: for recomputing
    only)."""
    g = outcomes[(outcomes["images"] == image_set) & (outcomes["engine"] == engine)]
    if g.empty:
        raise InputError(f"paper_a_outcomes: no rows of the image set {image_set!r} on {engine!r} (sets: "
                         f"{IMAGE_SETS}; engines: {', '.join(map(str, outcomes['engine'].unique()))})")
    n = int(g["image"].max()) + 1
    found: dict[tuple[Setting, str, str], np.ndarray] = {}
    for (eps, steps, s, t), d in g.groupby(["eps_255", "steps", "source", "target"], sort=False):
        v = np.full(n, np.nan)
        v[d["image"].to_numpy(int)] = d["success"].to_numpy(float)
        found[(Setting(float(eps) / 255, int(steps)), str(s), str(t))] = v
    return Cells.of(found, n)


def _read(folder: Path, name: str) -> pd.DataFrame:
    path = folder / "tables" / name
    if not path.is_file():
        raise InputError(f"{path}: missing; a paper A report folder has tables/{name}")
    return pd.read_csv(path)


def recompute_claims(folder: str | Path) -> pd.DataFrame:
    """Paper A's claims table recomputed from the report folder ``folder``'s per-image outcomes (the same
    :func:`~liccs.papers.a.claims.claims` the run calls), to compare with its ``paper_a_claims.csv``."""
    folder = Path(folder)
    try:
        cfg = from_dict(json.loads((folder / "manifest.json").read_text())["config"])
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise InputError(f"{folder / 'manifest.json'}: not a report manifest with its config ({e})") from e
    sc, clf = cfg.paper_a, cfg.models.classifier
    outcomes = _read(folder, "paper_a_outcomes.csv.gz")
    sweep = _read(folder, "paper_a_sweep.csv")
    row = sweep[sweep["focus"].astype(bool)].iloc[-1]  # the run images' row (last) where the sweep has two
    focus = Setting(float(row["eps_255"]) / 255, int(row["steps"]))
    ref = cfg.transfer.reference_engine
    cells = cells_from(outcomes, "run", ref)
    ladders = arch_ladders(sorted({t for t in outcomes["target"].unique() if t != clf}))
    ladder = ladders[sc.arch]
    replicates = [ladders[a] for a in sc.lineage_archs]
    lineage = [c for r in replicates for c in r]
    sets = per_set = None
    if (folder / "tables" / "paper_a_sampling.csv").is_file():
        sets = _read(folder, "paper_a_sampling.csv")
        held = cells_from(outcomes, "held-out", ref)
        per_set = {}
        for unit, g in (sets.groupby("unit", sort=False) if "unit" in sets else [(sc.arch, sets)]):
            lad = ladders[unit]
            rest = [c for a, lad_ in ladders.items() if a != unit and a not in sc.lineage_archs for c in lad_]
            common = common_targets(lad, candidates_of(lad, sc.candidates), lineage, rest)
            per_set |= {tuple(s.split("+")): set_outcomes(held, focus, tuple(s.split("+")), lad, rest, common)
                        for s in g["set"]}
    extra = [c for e in sc.deployed_engines
             for c in deployed_claims(cells, cells_from(outcomes, "run", e), focus, ladder, e, sc)]
    table, _ = claims(cells, focus, ladder, replicates, clf, sets, per_set, sc, extra)
    return table
