"""Paper A on deployed engines ("Transferable learned image compression-resistant adversarial perturbations"): do
its transfer findings survive deployment?

The focus setting's ladder cells (every quality of ``paper_a.arch`` as source; the ladder and the classifier alone
as targets) are replayed on each engine of ``paper_a.deployed_engines``: the same adversarial images (crafted
through the PyTorch models, rounded to 8 bits) go through the targets as that engine runs them
(:func:`liccs.checks.predictors.routes`: an int8 engine's codec graph quantized as its deployed codec runs). Per
cell, engine − PyTorch ASR paired over the images both count (exact McNemar, Holm over the engine's cells), and two
declared claims per engine join paper A's family (:func:`claims`):

- ``neighbours on ENGINE``: the neighbour claim's contrast (|Δq| = 1 − |Δq| ≥ ``far_dq``) on the engine's outcomes;
- ``attacks survive deployment on ENGINE``: per image, the mean outcome over the ladder cells on the engine −
  on PyTorch, non-inferior within ``sesoi_deployed`` (a deployed engine that blunts the attacks fails it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from liccs.checks.predictors import predictors
from liccs.checks.transfer import as_uint8_variant
from liccs.config import PaperASection
from liccs.core import stats
from liccs.core.executor import Task
from liccs.core.progress import tqdm
from liccs.export.cache import ArtifactCache
from liccs.papers.a.attacks import craft
from liccs.papers.a.cells import Cells, Setting, ladder_pairs, nanmean, predict
from liccs.papers.a.tables import codec_parts
from liccs.stage import Context, Exports, task_resources

KIND = "continuous"  # per-image means over cells (as paper A's other claims)


def _replay_key(engine: str, target: str, focus: Setting) -> str:
    return f"replay:{engine}:{target}:{focus.eps_255:g}:{focus.steps}"


def _replay_task(ctx: Context, cache: ArtifactCache, out: Path, focus: Setting, ladder: list[str], engine: str,
                 target: str) -> tuple[str, np.ndarray, dict[str, np.ndarray]]:
    """One target on ``engine``: (how it runs there, its clean top-1, its top-1 on every source's images)."""
    bs = ctx.cfg.transfer.batch_size
    with predictors(ctx, engine, Exports(cache=cache), targets=[target]) as (fns, how):
        clean = predict(fns[target], ctx.images, bs)
        adv = {s: as_uint8_variant(craft(ctx, out, [s], ctx.images, ctx.labels, setting=focus)[0]) for s in ladder}
        return how[target], clean, {s: predict(fns[target], x, bs) for s, x in adv.items()}


def replay_tasks(ctx: Context, exports: Exports, out: Path, focus: Setting, ladder: list[str],
                 engines: list[str]) -> list[Task]:
    """The replay as executor tasks, one per (engine, target): each builds its target's runners on the engine (the
    artifact cache shared) and reads the sources' images from the crafting cache."""
    targets = [*ladder, ctx.cfg.models.classifier]
    return [Task(_replay_key(e, t, focus), f"{e} {t}", _replay_task, (ctx, exports.cache, out, focus, ladder, e, t),
                 **task_resources(ctx.cfg)) for e in engines for t in targets]


def replay(ctx: Context, exports: Exports, out: Path, focus: Setting, ladder: list[str], engine: str,
           progress: bool = True, done: dict[str, Any] | None = None) -> tuple[Cells, dict[str, str]]:
    """The ladder's focus-setting cells on ``engine`` (the adversarial images from the crafting cache), and how each
    target runs there; from the :func:`replay_tasks` results in ``done`` where every target has one."""
    clf = ctx.cfg.models.classifier
    targets = [*ladder, clf]
    got = {t: (done or {}).get(_replay_key(engine, t, focus)) for t in targets}
    if all(v is not None for v in got.values()):
        cells = Cells(ctx.images, ctx.labels, {}, ctx.cfg.transfer.batch_size,
                      clean_top1={t: v[1] for t, v in got.items()})
        for s in ladder:
            cells.add(focus, s, ctx.images, targets, {t: v[2][s] for t, v in got.items()})
        return cells, {t: v[0] for t, v in got.items()}
    with predictors(ctx, engine, exports, targets=targets) as (fns, how):
        cells = Cells(ctx.images, ctx.labels, fns, ctx.cfg.transfer.batch_size)
        for s in tqdm(ladder, desc=f"paper A deployed ({engine})", disable=not progress):
            adv, _, _ = craft(ctx, out, [s], ctx.images, ctx.labels, setting=focus)
            cells.add(focus, s, adv, targets)
        for t in targets:
            cells.clean_correct(t)  # evaluated while the runners are active
    return cells, dict(how)


def cell_table(torch_cells: Cells, engine_cells: Cells, focus: Setting, engine: str, how: dict[str, str],
               alpha: float) -> pd.DataFrame:
    """One row per replayed cell: PyTorch and engine ASR, engine − PyTorch paired over the images both count, its
    CI at the family's level over the engine's cells and exact McNemar p (raw and Holm-adjusted)."""
    keys = [(s, t) for (st, s, t) in engine_cells.outcome if st == focus]
    level = 1 - alpha / max(1, len(keys))
    rows = []
    for s, t in keys:
        e, p = engine_cells.get(focus, s, t), torch_cells.get(focus, s, t)
        r = stats.paired(e, p, kind="binary", what=f"{engine} {s}→{t}", level=level)
        ps, pt = codec_parts(s), codec_parts(t)
        rows.append({"engine": engine, "source": s, "target": t, "source_q": ps[1] if ps else None,
                     "target_q": pt[1] if pt else None, "how": how.get(t, ""),
                     "torch_asr": nanmean(p), "engine_asr": nanmean(e), "n_both": r.n, "diff": r.effect,
                     "ci_low": r.ci_low, "ci_high": r.ci_high, "ci_method": r.ci_method, "p": r.p})
    df = pd.DataFrame(rows)
    if not df.empty:
        finite = df["p"].notna()
        df["p_holm"] = np.nan
        df.loc[finite, "p_holm"] = stats.holm(df.loc[finite, "p"].tolist())
        df["clean_agree"] = [float(np.mean(engine_cells.clean_correct(t) == torch_cells.clean_correct(t)))
                             for t in df["target"]]
    return df


def deployed_claims(torch_cells: Cells, engine_cells: Cells, focus: Setting, ladder: list[str], engine: str,
                    sc: PaperASection) -> list[tuple[stats.Claim, stats.PairedResult]]:
    """The two declared claims of one engine (module docstring), undecided until :func:`liccs.core.stats.decide`."""
    near = engine_cells.per_image(focus, ladder_pairs(ladder, lambda d: d == 1))
    far = engine_cells.per_image(focus, ladder_pairs(ladder, lambda d: d >= sc.far_dq))
    pairs = [(s, t) for (st, s, t) in engine_cells.outcome if st == focus and (st, s, t) in torch_cells.outcome]
    return [(stats.Claim(f"neighbours on {engine}", f"|Δq| = 1 − |Δq| ≥ {sc.far_dq}, targets on {engine}",
                         sc.sesoi_neighbour), stats.paired(near, far, kind=KIND)),
            (stats.Claim(f"attacks survive deployment on {engine}", f"{engine} − PyTorch, the ladder's "
                         f"{len(pairs)} cells (sources × ladder and classifier)", sc.sesoi_deployed,
                         hypothesis="non-inferiority"),
             stats.paired(engine_cells.per_image(focus, pairs), torch_cells.per_image(focus, pairs), kind=KIND))]

