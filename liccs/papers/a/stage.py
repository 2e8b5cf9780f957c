"""Paper A's driver: "Transferable learned image compression-resistant adversarial perturbations", run as the
``[paper_a]`` stage of ``liccs run``. Self-contained: it crafts its own attacks (the run's ``[attack]`` settings
with its own eps and steps) and evaluates them on the reference engine, per image, so that every claim is a
paired contrast (:mod:`liccs.papers.a.claims`).

1. **Sweep**: the attack through every quality of the ladder ``paper_a.arch`` at each ``paper_a.eps`` with
   ``steps[0]`` steps, on ``paper_a.focus_images`` images that test no claim, evaluated on the ladder and the
   classifier alone; the focus eps is the one whose off-diagonal ASR falls fastest with |Δq| (declared rule
   ``"steepest"``) or a given one; on the run's images the focus eps runs every one of ``steps``.
2. **At the focus setting**: the quality-transfer matrix, the other architectures as targets, the
   lineage-control ladders (``paper_a.lineage_archs``: qualities trained from scratch, no shared weights, one
   ladder per seed) as
   sources and targets, the classifier alone as source.
3. **Sampling**: every k-set of the candidate qualities as an ensemble on held-out images; every score variant's
   chosen set with its exact percentile and the score/ASR rank correlation (:mod:`.sampling`).
4. **Deployed engines** (``paper_a.deployed_engines``): the focus setting's ladder cells replayed on each
   engine, with two claims per engine (:mod:`.deployed`).
5. **Claims**: the declared family with CIs, Holm-adjusted p and minimum detectable effects; every transfer table
   has both models' bpp beside it, and the transfer at matched rate is tabulated (:mod:`.rates`).

On a parallel executor the crafting, the reference engine's evaluations and the replay run first as three batches
of tasks (:mod:`.tasks`); the steps above then read their results from the run folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from liccs.checks.predictors import predictors
from liccs.config import ConfigError, RunConfig
from liccs.core.errors import LiccsError
from liccs.core.progress import tqdm
from liccs.engines.base import get_engine
from liccs.papers.a.attacks import craft, heldout_images
from liccs.papers.a.cells import (
    Cells,
    Setting,
    decay_slope,
    ladder_pairs,
    nanmean,
)
from liccs.papers.a.claims import claims
from liccs.papers.a.deployed import cell_table, deployed_claims, replay, replay_tasks
from liccs.papers.a.memo import memo_for
from liccs.papers.a.outcomes import outcomes_frame
from liccs.papers.a.rates import models_table, rate_matched, with_bpp
from liccs.papers.a.sampling import (
    ablation,
    arch_ladders,
    candidates_of,
    run_sampling,
    sampling_jobs,
    unit_percentiles,
)
from liccs.papers.a.tables import codec_parts
from liccs.papers.a.tasks import clean_tasks, craft_tasks, fresh_sets, run_tasks
from liccs.papers.driver import PaperStage
from liccs.stage import Context, Exports, Names, TableSpec, register

_TABLES: list[tuple[str, str, list[str] | None]] = [
    ("paper_a_claims", "Paper A, the declared claims: paired over images (sign-flip permutation test of the mean "
     "difference), BCa bootstrap CI of the mean difference at the family's level 1 − α/m (ci_method names any "
     "fallback), Holm-adjusted p across the family, t-based minimum detectable effect (80% power) at this image "
     "count, and the verdict from the rule fixed before the run (liccs.core.stats).",
     ["claim", "contrast", "n_images", "mean_a", "mean_b", "effect", "ci_low", "ci_high", "ci_method", "p", "p_holm",
      "mde", "sesoi", "verdict"]),
    ("paper_a_models", "Paper A, every codec on the run's images: bpp from its real bitstreams, PSNR, and the clean "
     "top-1 of LICCS (the lineage ladder's qualities are trained from scratch, the chain ladder's fine-tuned).", None),
    ("paper_a_sweep", "Paper A, eps × steps sweep over the ladder (images: the focus-selection images, disjoint "
     "from those that test the claims, at every eps; the run's images at the focus eps): white-box ASR, neighbour "
     "(|Δq| = 1) and far ASR, least-squares slope of cell ASR per step of |Δq| and Spearman ρ; focus: where the "
     "decay is steepest (the declared rule) and the later experiments run.", None),
    ("paper_a_distance", "Paper A, mean cell ASR by |Δq| (0: white-box) per image set and setting.", None),
    ("paper_a_lineage", "Paper A, lineage control at the focus setting: the same quality pairs in the chain-trained "
     "ladder (each quality fine-tuned from its neighbour), within each independently trained replicate (one seed) "
     "and across replicates, and the cells between the chain ladder and the independent models (chain ↔ "
     "independent: no shared weights).", None),
    ("paper_a_cross_arch", "Paper A, the ladder's perturbations on the other architectures at the focus setting.",
     None),
    ("paper_a_rate_matched", "Paper A at matched rate, focus setting: for each source of the ladder and each model "
     "family among the targets (architecture or independently trained replicate), the family's model nearest the "
     "source in bpp (its own ladder: the nearest other quality), both rates, their ratio and the cell's ASR.",
     None),
    ("paper_a_classifier_alone", "Paper A, the classifier alone (codec omitted) as source and as target at the "
     "focus setting.", None),
    ("paper_a_sampling_ablation", "Paper A, saliency score ablation over every k-set (no extra attack): each score "
     "variant's chosen set, its held-out ASR on the targets common to every set (the ladder's non-candidate "
     "qualities, the lineage-control models, the other architectures), on its own non-member qualities and on the "
     "other architectures, its exact percentile among all k-sets, and Spearman ρ (p) of score vs held-out ASR "
     "across sets.", None),
    ("paper_a_sampling_units", "Paper A, the saliency selection per replication unit (paper_a.arch and "
     "paper_a.units, each ladder with its own candidates and common targets): the primary score's chosen set, its "
     "held-out ASR on the unit's common targets and its percentile among the unit's k-sets (0.5: the median set).",
     None),
    ("paper_a_sampling", "Paper A, every k-set of the candidate qualities crafted as an ensemble on the held-out "
     "images (equal budget per k): held-out ASRs and every score variant.", None),
    ("paper_a_deployed", "Paper A on deployed engines (paper_a.deployed_engines): the focus setting's ladder "
     "cells replayed on each engine (the same 8-bit adversarial images; how: the route each target runs), PyTorch "
     "and engine ASR, engine − PyTorch over the images both count with its CI at the level 1 − α/cells and exact "
     "McNemar p (raw, Holm over the engine's cells), and how often the engine's clean top-1 correctness agrees with "
     "PyTorch's.", None),
    ("paper_a_cells", "Paper A, every evaluated cell (setting × source × target): ASR over the clean-correct images.",
     None),
]
#: The report shows the paper stages' tables first (order 0), in this order.
TABLES = (*(TableSpec(n, c, tuple(cols) if cols else None, order=0) for n, c, cols in _TABLES),
          TableSpec("paper_a_outcomes", "Paper A, every cell's outcome per image (gzip CSV: image set × setting × "
                    "source × target × image; success empty where the clean image was misclassified), from which "
                    "liccs.papers.a.outcomes.recompute_claims recomputes the claims table.", order=0,
                    files=("csv.gz",)))


def check_config(cfg: RunConfig, names: Names) -> None:
    """Before any work: what paper A's stage needs from the run; a :class:`ConfigError` names the key."""
    sc = cfg.paper_a
    if cfg.attack.objective != "classification":
        raise ConfigError(f"attack.objective: paper A measures attack success on the classifier; "
                          f"'classification' is needed, got {cfg.attack.objective!r}")
    if not cfg.models.classifier_alone:
        raise ConfigError("models.classifier_alone: paper A compares with the classifier alone; set it to true")
    ladders = arch_ladders(names.codecs)
    for key, a in [("arch", sc.arch), *((f"lineage_archs[{i}]", x) for i, x in enumerate(sc.lineage_archs))]:
        if a not in ladders or (key != "arch" and a == sc.arch):
            raise ConfigError(f"paper_a.{key}: {a!r} is not an architecture of models.codecs other than the "
                              f"swept one; valid: {', '.join(ladders)}")
    ladder = ladders[sc.arch]
    if len(ladder) < 2:
        raise ConfigError(f"paper_a.arch: {sc.arch} has {len(ladder)} quality in models.codecs; a ladder needs 2+")
    have = {codec_parts(c)[1] for c in ladder}
    for i, q in enumerate(sc.candidates):
        if q not in have:
            raise ConfigError(f"paper_a.candidates[{i}]: q{q} is not a quality of {sc.arch} in models.codecs "
                              f"({', '.join(f'q{x}' for x in sorted(have))})")
    n = len(sc.candidates or have)
    for i, k in enumerate(sc.k):
        if k > n:
            raise ConfigError(f"paper_a.k[{i}]: k={k} is more than the {n} candidate qualities")
    for i, u in enumerate(sc.units):
        if u not in ladders or u == sc.arch or u in sc.lineage_archs:
            raise ConfigError(f"paper_a.units[{i}]: {u!r} is not a ladder of models.codecs other than paper_a.arch "
                              f"and the lineage ladders; valid: {', '.join(ladders)}")
        if len(candidates_of(ladders[u], sc.candidates)) < max(sc.k):
            raise ConfigError(f"paper_a.units[{i}]: {u} has fewer of the candidate qualities than k={max(sc.k)}")
    for i, e in enumerate(sc.deployed_engines):
        if e == cfg.transfer.reference_engine:
            raise ConfigError(f"paper_a.deployed_engines[{i}]: {e!r} is the reference engine the claims are "
                              "measured on (transfer.reference_engine); name the engines to replay them on")
        try:
            get_engine(e)
        except LiccsError as err:
            raise ConfigError(f"paper_a.deployed_engines[{i}]: {err}") from err
    if sc.focus_images < 0:
        raise ConfigError(f"paper_a.focus_images: {sc.focus_images} is negative (0: choose the focus on the run's "
                          "images)")
    if isinstance(sc.focus_eps, float) and not any(math.isclose(sc.focus_eps, e) for e in sc.eps):
        raise ConfigError(f"paper_a.focus_eps: {sc.focus_eps * 255:g}/255 must be one of paper_a.eps")


def _sweep_row(cells: Cells, st: Setting, ladder: list[str], far_dq: int) -> dict:
    diag = [nanmean(cells.get(st, c, c)) for c in ladder]
    slope, rho = decay_slope(cells, st, ladder)

    def mean(pairs: list[tuple[str, str]]) -> float:
        v = [nanmean(cells.get(st, s, t)) for s, t in pairs if np.isfinite(cells.get(st, s, t)).any()]
        return float(np.mean(v)) if v else float("nan")

    return {"eps_255": st.eps_255, "steps": st.steps, "step_size_255": round(st.step_size * 255, 4),
            "whitebox_asr": float(np.mean(diag)), "neighbour_asr": mean(ladder_pairs(ladder, lambda d: d == 1)),
            "far_asr": mean(ladder_pairs(ladder, lambda d: d >= far_dq)), "slope_per_q": slope, "spearman_rho": rho}


def _subset(df: pd.DataFrame, st: Setting, **eq: object) -> pd.DataFrame:
    m = (df["eps_255"] == st.eps_255) & (df["steps"] == st.steps)
    for k, v in eq.items():
        m &= df[k].isin(v) if isinstance(v, list) else df[k] == v
    return df[m].reset_index(drop=True)


def run_stage(ctx: Context, exports: Exports, adversarial: dict[str, Tensor], out: Path, progress: bool = True,
              tables: dict[str, pd.DataFrame] | None = None) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Paper A's tables (see the module docstring) and one-line findings with their numbers."""
    check_config(ctx.cfg, ctx.names)
    with predictors(ctx, ctx.cfg.transfer.reference_engine, exports) as (fns, _):  # runners released after
        return _run_stage(ctx, fns, exports, out, progress)


def _run_stage(ctx: Context, fns: dict[str, Any], exports: Exports, out: Path,
               progress: bool) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """:func:`run_stage` with the reference engine's predictors ``fns``."""
    cfg, sc = ctx.cfg, ctx.cfg.paper_a
    clf, ref = cfg.models.classifier, cfg.transfer.reference_engine
    ladders = arch_ladders(ctx.names.codecs)
    ladder, replicates = ladders[sc.arch], [ladders[a] for a in sc.lineage_archs]
    lineage = [c for r in replicates for c in r]
    others = [c for c in ctx.names.codecs if c not in ladder and c not in lineage]
    bs = cfg.transfer.batch_size
    memo = memo_for(ctx, out)  # the reference engine's predictions, kept: an interrupted run resumes them
    cells = Cells(ctx.images, ctx.labels, fns, bs, memo)
    images, labels, note, held_names = heldout_images(ctx, sc.images)
    if sc.focus_images:  # the focus eps is chosen on images that test no claim
        fx, fy, fnote, _ = heldout_images(ctx, sc.focus_images, frozenset(held_names), "focus selection")
        sel, sel_set = Cells(fx, fy, fns, bs, memo), "focus selection"
    else:
        sel, sel_set = cells, "run"
        fnote = "focus selection: on the run's own images, which also test the claims"

    def attack(st: Setting, sources: list[str], targets: list[str], desc: str, on: Cells = cells) -> None:
        x, y = on.images, torch.as_tensor(on.labels)
        for s in tqdm(sources, desc=f"paper A {desc} ({st.label()})", disable=not progress):
            adv, _, _ = craft(ctx, out, [s], x, y, setting=st)
            on.add(st, s, adv, targets)

    codecs = [*ladder, *lineage, *others]
    base = [Setting(e, sc.steps[0]) for e in sc.eps]
    sel_y = torch.as_tensor(sel.labels)
    run_tasks(ctx, [*craft_tasks(ctx, out, [([s], sel.images, sel_y, st, [*ladder, clf]) for st in base
                                            for s in ladder]),
                    *clean_tasks(ctx, out, [(ctx.images, [*codecs, clf]), (sel.images, [*ladder, clf]),
                                            (images, codecs)])], "paper A sweep + clean top-1 (tasks)")
    for st in base:
        attack(st, ladder, [*ladder, clf], "sweep", sel)
    sweep = pd.DataFrame([_sweep_row(sel, st, ladder, sc.far_dq) for st in base]).assign(images=sel_set)
    slopes = sweep["slope_per_q"].to_numpy(float)
    if sc.focus_eps == "steepest":  # no slope (one quality distance only): the middle eps
        focus = base[int(np.nanargmin(slopes))] if np.isfinite(slopes).any() else base[len(base) // 2]
    else:
        focus = next(st for st in base if math.isclose(st.eps, float(sc.focus_eps)))
    extra = [Setting(focus.eps, s) for s in sc.steps[1:]]
    y = torch.as_tensor(cells.labels)
    units = {u: (ladders[u], [c for c in ctx.names.codecs if c not in ladders[u] and c not in lineage])
             for u in sc.units}
    jobs = [*(([s], ctx.images, y, focus, [*codecs, clf]) for s in ladder),
            *(([s], ctx.images, y, st, [*ladder, clf]) for st in extra for s in ladder),
            *(([s], ctx.images, y, focus, [*ladder, *lineage, clf]) for s in [*lineage, clf]),
            *sampling_jobs(ctx, focus, ladder, candidates_of(ladder, sc.candidates), others, images, labels, lineage),
            *(([s], ctx.images, y, focus, unit) for unit, _ in units.values() for s in unit),
            *(j for unit, rest in units.values()
              for j in sampling_jobs(ctx, focus, unit, candidates_of(unit, sc.candidates), rest, images, labels,
                                     lineage))]
    fresh = fresh_sets(run_tasks(ctx, craft_tasks(ctx, out, jobs), f"paper A at {focus.label()} (tasks)"))
    attack(focus, ladder, [*ladder, *lineage, *others, clf], "focus")
    for st in extra:
        attack(st, ladder, [*ladder, clf], "steps")
    run_rows = [*([focus] if sel is not cells else []), *extra]
    sweep = pd.concat([sweep, pd.DataFrame([_sweep_row(cells, st, ladder, sc.far_dq) for st in run_rows])
                       .assign(images="run")], ignore_index=True)
    sweep["focus"] = (sweep["eps_255"] == focus.eps_255) & (sweep["steps"] == focus.steps)
    attack(focus, [*lineage, clf], [*ladder, *lineage, clf], "lineage + classifier")

    sets, held, per_set = run_sampling(ctx, out, cells, focus, ladder, candidates_of(ladder, sc.candidates), others,
                                       fns, images, labels, progress, lineage, fresh)
    helds = [held]
    for u, (unit, rest) in units.items():  # the selection repeated on each replication unit's ladder
        attack(focus, unit, unit, f"unit {u}")
        s_u, h_u, p_u = run_sampling(ctx, out, cells, focus, unit, candidates_of(unit, sc.candidates), rest, fns,
                                     images, labels, progress, lineage, fresh)
        sets, per_set = pd.concat([sets, s_u], ignore_index=True), per_set | p_u
        helds.append(h_u)
    done = run_tasks(ctx, replay_tasks(ctx, exports, out, focus, ladder, sc.deployed_engines),
                     "paper A deployed replay (tasks)")
    deployed = {e: replay(ctx, exports, out, focus, ladder, e, progress, done) for e in sc.deployed_engines}
    extra = [c for e, (ec, _) in deployed.items() for c in deployed_claims(cells, ec, focus, ladder, e, sc)]
    claim_table, claim_lines = claims(cells, focus, ladder, replicates, clf, sets, per_set, sc, extra)
    frame = cells.frame(clf)
    models = models_table(ctx, cells)
    bpp = dict(zip(models["codec"], models["bpp"], strict=True))
    dist = _subset(frame, focus, source=ladder, target=ladder)
    sel_frame = sel.frame(clf).assign(images=sel_set)
    distance = (pd.concat([*(_subset(sel_frame, st, source=ladder, target=ladder) for st in base),
                           *(_subset(frame.assign(images="run"), st, source=ladder, target=ladder)
                             for st in run_rows)])
                .assign(abs_dq=lambda d: (d["target_q"] - d["source_q"]).abs())
                .groupby(["images", "eps_255", "steps", "abs_dq"], sort=False)["asr"]
                .agg(mean_asr="mean", cells="count").reset_index())
    lq = {codec_parts(c)[1] for c in lineage}
    chain = dist[dist["source_q"].isin(lq) & dist["target_q"].isin(lq)].assign(training="chain (fine-tuned)")
    seed_of = {c: codec_parts(c)[0] for c in lineage}
    indep = _subset(frame, focus, source=lineage, target=lineage)
    indep["training"] = np.where(indep["source"].map(seed_of) == indep["target"].map(seed_of), "independent",
                                 "independent, across seeds")
    across = pd.concat([_subset(frame, focus, source=ladder, target=lineage),
                        _subset(frame, focus, source=lineage, target=ladder)]).assign(training="chain ↔ independent")
    result = {
        "paper_a_claims": claim_table, "paper_a_models": models, "paper_a_sweep": sweep,
        "paper_a_distance": distance,
        "paper_a_lineage": with_bpp(pd.concat([chain, indep, across], ignore_index=True)[
            ["training", "source", "target", "source_q", "target_q", "asr", "n_clean_correct"]], bpp),
        "paper_a_cross_arch": with_bpp(_subset(frame, focus, source=ladder, target=others), bpp),
        "paper_a_rate_matched": rate_matched(_subset(frame, focus, source=ladder), bpp, ladder),
        "paper_a_classifier_alone": with_bpp(pd.concat([_subset(frame, focus, source=clf),
                                                        _subset(frame, focus, source=ladder, target=clf)],
                                                       ignore_index=True), bpp),
        "paper_a_sampling_ablation": ablation(sets), "paper_a_sampling": sets,
        "paper_a_sampling_units": pd.concat([unit_percentiles(sets, k, sc.score, sc.interpolation) for k in sc.k],
                                            ignore_index=True),
        "paper_a_cells": with_bpp(pd.concat([frame.assign(images="run"), *([sel_frame] if sel is not cells else []),
                                             *(h.frame(clf).assign(images="held-out") for h in helds)],
                                            ignore_index=True), bpp),
        "paper_a_outcomes": pd.concat([outcomes_frame(cells, "run", ref),
                                       *([outcomes_frame(sel, sel_set, ref)] if sel is not cells else []),
                                       *(outcomes_frame(h, "held-out", ref) for h in helds),
                                       *(outcomes_frame(ec, "run", e) for e, (ec, _) in deployed.items())],
                                      ignore_index=True),
        "paper_a_deployed": pd.concat([cell_table(cells, ec, focus, e, how, sc.alpha)
                                       for e, (ec, how) in deployed.items()] or [pd.DataFrame()],
                                      ignore_index=True),
    }
    notes = [note, fnote, f"Paper A: {len(ctx.images)} images of {cfg.data.source}; ladder {sc.arch} "
             f"({', '.join(f'q{codec_parts(c)[1]}' for c in ladder)}); {cfg.attack.name} {cfg.attack.norm} ("
             f"{'its own step-size schedule' if cfg.attack.name == 'apgd' else 'step min(eps, 2.5·eps/steps)'}), "
             f"{cfg.attack.surrogate} through the quantizers, random start, seed {cfg.run.seed}; images rounded to "
             f"8 bits before evaluation on {cfg.transfer.reference_engine}. Focus setting (rule "
             f"{sc.focus_eps!r}, declared before the run, applied to the {sel_set} images): {focus.label()}."]
    return result, [*notes, *claim_lines, *_ablation_lines(result["paper_a_sampling_ablation"], sc)]


def _ablation_lines(ab: pd.DataFrame, sc: object) -> list[str]:
    lines = []
    for _, r in ab.iterrows():
        if r["score"] == sc.score and r["interpolation"] == sc.interpolation:
            lines.append(f"Paper A sampling {r['unit']}, k={r['k']}: the {r['score']}/{r['interpolation']} score chose "
                         f"{r['chosen']}, held-out ASR on the targets common to every set {r['common_chosen']:.3f} "
                         f"(percentile {r['common_percentile']:.2f} of {r['sets']} sets; best "
                         f"{r['common_best_set']} {r['common_best']:.3f}); Spearman ρ(score, held-out ASR) "
                         f"{r['common_spearman']:+.2f} (p {r['common_spearman_p']:.2g}); on its own non-member "
                         f"qualities: percentile {r['nonmember_percentile']:.2f}, ρ {r['nonmember_spearman']:+.2f}; "
                         f"other architectures: percentile {r['other_arch_percentile']:.2f}, ρ "
                         f"{r['other_arch_spearman']:+.2f}")
    return lines


#: Paper A as a stage of ``liccs run``, on by ``[paper_a]``.
register(PaperStage("paper-a", "paper_a", 50, TABLES, check_config,
                    lambda ctx, r: run_stage(ctx, r.exports, r.adversarial, ctx.out, ctx.progress, tables=r.tables)))
