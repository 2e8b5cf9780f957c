"""Paper A's driver: "Transferable learned image compression-resistant adversarial perturbations" (issue 7).

Runs after the generic stages of ``liccs run`` (enabled by ``[sampling] enabled = true``), which have crafted
the run's attack (PGD) per source, every codec of ``[models]`` and the classifier alone, and replayed each set
on every engine × target (the ``transfer`` table). This stage adds:

1. white-box ASR per architecture and quality, PGD (from the generic stage) and FGSM (crafted here: one step of
   size eps), over clean-correct images (``paper_a_whitebox``);
2. the black-box matrix ASR[source quality, target quality] per architecture, across architectures at matched
   qualities, and whether neighbouring qualities are hit harder than distant ones: mean ASR by |Δq|, the
   least-squares slope of ASR against |Δq| and Spearman's ρ (``paper_a_quality_*``, ``paper_a_cross_arch``);
3. the classifier alone (codec omitted) as source and as target beside the LICCS numbers
   (``paper_a_classifier_alone``);
4. saliency-score vs random sampling of k qualities for an ensemble attack, with equal budgets
   (``paper_a_sampling*``, :mod:`liccs.papers.paper_a_sampling`);
5. beyond the paper: the same matrices on every deployed engine and the transfer gap ASR(PyTorch) − ASR(engine)
   per engine, precision, variant and cell relation (``paper_a_engine_gaps``).

Figures: the generic ASR heatmaps (source × target per engine, float and uint8) already show every matrix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from torch import Tensor
from tqdm.auto import tqdm

from liccs.config import ConfigError, RunConfig
from liccs.papers import paper_a_tables as T
from liccs.papers.paper_a_attacks import attack_labels, craft, heldout_images, metrics, predict_all, variant
from liccs.papers.paper_a_findings import findings
from liccs.papers.paper_a_sampling import arch_ladders, run_sampling
from liccs.run.exports import Exports
from liccs.run.setup import Context, Names, RunError

TABLES: list[tuple[str, str, list[str] | None]] = [
    ("paper_a_whitebox", "Paper A, white-box: the run's attack (PGD) and FGSM (one step, same eps) on each model, "
     "reference engine; ASR over clean-correct images.",
     ["model", "arch", "quality", "attack", "variant", "clean_acc", "asr", "n_clean_correct"]),
    ("paper_a_quality_trend", "Paper A, quality transfer per architecture (off-diagonal cells): neighbour "
     "(|Δq| = 1) vs distant (|Δq| ≥ 2) and farthest (largest |Δq|) mean ASR, slope of ASR per quality step of |Δq|, "
     "Spearman ρ(|Δq|, ASR), two binomial standard errors of the images (noise) and the verdict (a trend only when "
     "the slope has its sign and the neighbours differ from the distant or the farthest cells by more than the "
     "noise); arch 'all' pools every architecture's cells.", None),
    ("paper_a_quality_distance", "Paper A, mean ASR by |Δq| (0: white-box), per engine, variant and architecture.",
     None),
    ("paper_a_cross_arch", "Paper A, across architectures at matched qualities (source q = target q).", None),
    ("paper_a_classifier_alone", "Paper A, the classifier alone (codec omitted) as source and as target, beside "
     "LICCS at each codec.", None),
    ("paper_a_sampling_summary", "Paper A, saliency-score vs random sampling of k qualities per architecture: "
     "mean ASR over the architecture's qualities, the other architectures and the classifier alone; random: "
     "mean ± std over the draws; the same budget (gradient evaluations) per set.", None),
    ("paper_a_sampling", "Paper A, every sampled set (saliency, random draws): coverage score, mean ASRs, budget.",
     None),
    ("paper_a_engine_gaps", "Beyond paper A: transfer gap ASR(reference) − ASR(engine) per deployed engine, "
     "precision, variant and relation of source to target (all: every cell).", None),
    ("paper_a_quality_matrix", "Paper A, ASR[source q, target q] per architecture on every engine and variant "
     "(long form; dq = target q − source q).", None),
    ("paper_a_sampling_targets", "Paper A, every sampled set on every target (long form).", None),
]


def primary_variant(cfg: RunConfig) -> str:
    """The variant the findings and the selection use: ``uint8`` (what a deployed system receives) when run."""
    return "uint8" if "uint8" in cfg.transfer.variants else cfg.transfer.variants[0]


def check_config(cfg: RunConfig, names: Names) -> None:
    """Before any work: what paper A's stage needs from the run; a :class:`ConfigError` names the key."""
    if not (cfg.attack.enabled and cfg.transfer.enabled):
        raise ConfigError("sampling.enabled: paper A's stage reads the transfer table of the generic stages; "
                          "set attack.enabled and transfer.enabled to true")
    if cfg.attack.objective != "classification":
        raise ConfigError(f"attack.objective: paper A measures attack success on the classifier; "
                          f"'classification' is needed, got {cfg.attack.objective!r}")
    for key, have in (("attack.sources", names.sources), ("transfer.targets", names.targets)):
        missing = [c for c in names.codecs if c not in have]
        if missing:
            raise ConfigError(f"{key}: paper A needs every codec of models.codecs here (leave it empty); "
                              f"missing {', '.join(missing)}")
    for i, k in enumerate(cfg.sampling.k):
        for arch, ladder in arch_ladders(names.codecs).items():
            if k > len(ladder):
                raise ConfigError(f"sampling.k[{i}]: k={k} is more than the {len(ladder)} qualities of {arch} in "
                                  f"models.codecs ({', '.join(ladder)})")


def fgsm_rows(ctx: Context, out: Path, fns: dict[str, Any], progress: bool) -> pd.DataFrame:
    """FGSM (one step of size ``attack.eps``) per single-model source, evaluated on itself in every variant."""
    cfg = ctx.cfg
    bs, aim = cfg.transfer.batch_size, (attack_labels(ctx, ctx.labels) if cfg.attack.targeted else None)
    rows = []
    for s in tqdm([s for s in ctx.names.sources if "+" not in s], desc="paper A FGSM", disable=not progress):
        adv, _, _ = craft(ctx, out, [s], ctx.images, ctx.labels, fgsm=True)
        clean = predict_all({s: fns[s]}, ctx.images, bs)
        for v in cfg.transfer.variants:
            m = metrics(ctx.labels, clean, predict_all({s: fns[s]}, variant(adv, v), bs), aim)[s]
            rows.append({"engine": cfg.transfer.reference_engine, "source": s, "target": s, "variant": v,
                         "attack": "fgsm", **m})
    return pd.DataFrame(rows)


def run_stage(ctx: Context, exports: Exports, adversarial: dict[str, Tensor], out: Path, progress: bool = True,
              tables: dict[str, pd.DataFrame] | None = None) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Paper A's tables (see the module docstring) and one-line findings with their numbers."""
    from liccs.engines import ENGINES
    from liccs.run.transfers import predictors

    cfg = ctx.cfg
    check_config(cfg, ctx.names)
    transfer = (tables or {}).get("transfer")
    if transfer is None or transfer.empty:
        raise RunError("paper A's stage found no transfer table: the generic attack and transfer stages must run "
                       "first (attack.enabled, transfer.enabled)")
    ref, clf, primary = cfg.transfer.reference_engine, cfg.models.classifier, primary_variant(cfg)
    fns, _ = predictors(ctx, ref, exports)
    qm = T.quality_matrix(transfer, clf)
    precision = {e: ENGINES.get(e).precision for e in transfer["engine"].unique()}
    result = {"paper_a_whitebox": T.whitebox(transfer, fgsm_rows(ctx, out, fns, progress), ref, cfg.attack.name),
              "paper_a_quality_trend": T.distance_trend(qm), "paper_a_quality_distance": T.distance_summary(qm),
              "paper_a_cross_arch": T.cross_arch(transfer, clf), "paper_a_classifier_alone": T.classifier_alone(
                  transfer, clf), "paper_a_engine_gaps": T.engine_gaps(transfer, clf, ref, precision),
              "paper_a_quality_matrix": qm}
    images, labels, note = heldout_images(ctx, cfg.sampling.images)
    sets, cells, notes = run_sampling(ctx, out, transfer, fns, images, labels, primary, progress)
    result |= {"paper_a_sampling_summary": T.sampling_summary(sets), "paper_a_sampling": sets,
               "paper_a_sampling_targets": cells}
    return result, [note, *notes, *findings(result, ref, primary, cfg.attack.name)]
