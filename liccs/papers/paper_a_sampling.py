"""Paper A's saliency-score sampling against random sampling ("Transferable learned image compression-resistant
adversarial perturbations"): which k qualities of an architecture to ensemble.

Per architecture, the PyTorch ASR matrix of the run (its sources and targets are that architecture's qualities,
measured on the run's images, reference engine, primary variant) goes to
:func:`liccs.attack.saliency.select_sources`; the chosen k qualities are attacked together (the run's attack,
same eps, steps, step size, seed) on held-out images, and so are ``sampling.random_draws`` random k-sets
(:func:`liccs.attack.saliency.random_baseline`, seed ``run.seed``). Every set is evaluated on every target of
the run (all qualities of all architectures, and the classifier alone) on the reference engine. A set drawn twice
is crafted once: with one seed and one set of members the attack is deterministic, so its images are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import Tensor
from tqdm.auto import tqdm

from liccs.attack.saliency import AsrMatrix, Coverage, random_baseline, select_sources
from liccs.papers.paper_a_attacks import attack_labels, craft, metrics, predict_all, variant
from liccs.papers.paper_a_tables import codec_parts
from liccs.run.setup import Context


def arch_ladders(codecs: list[str]) -> dict[str, list[str]]:
    """Codecs by architecture, each ladder sorted by quality."""
    ladders: dict[str, list[tuple[int, str]]] = {}
    for c in codecs:
        arch, q = codec_parts(c)
        ladders.setdefault(arch, []).append((q, c))
    return {a: [c for _, c in sorted(v)] for a, v in ladders.items()}


def asr_matrix(transfer: pd.DataFrame, engine: str, variant_name: str, codecs: list[str]) -> tuple[AsrMatrix, int]:
    """ASR[source, target] over ``codecs`` from ``transfer`` (one engine and variant); undefined cells (no
    clean-correct image) become 0. Returns the matrix and how many cells were undefined."""
    sub = transfer[(transfer["engine"] == engine) & (transfer["variant"] == variant_name)]
    m = sub.pivot_table(index="source", columns="target", values="asr", aggfunc="mean", dropna=False)
    m = m.reindex(index=codecs, columns=codecs)
    undefined = int(m.isna().to_numpy().sum())
    return AsrMatrix(m.fillna(0.0).clip(0, 1).to_numpy(), tuple(codecs), tuple(codecs)), undefined


def run_sampling(ctx: Context, out: Path, transfer: pd.DataFrame, fns: dict[str, Callable[[Tensor], Any]],
                 images: Tensor, labels: Tensor, primary: str,
                 progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(one row per set: arch, k, method, draw, members, coverage, mean ASRs, budget; one row per set × target;
    notes). ``fns``: target → images-to-logits on the reference engine."""
    cfg, sc = ctx.cfg, ctx.cfg.sampling
    ref = cfg.transfer.reference_engine
    bs = cfg.transfer.batch_size
    aim = attack_labels(ctx, labels) if cfg.attack.targeted else None
    clean = predict_all(fns, images, bs)
    ladders = arch_ladders(ctx.names.codecs)
    sets, cells, notes = [], [], []
    memo: dict[tuple[str, ...], dict[str, Any]] = {}

    def evaluate(members: tuple[str, ...]) -> dict[str, Any]:
        if members not in memo:
            adv, evals, cached = craft(ctx, out, list(members), images, labels)
            m = metrics(labels, clean, predict_all(fns, variant(adv, primary), bs), aim)
            memo[members] = {"per_target": m, "grad_evals": evals, "cached": cached}
        return memo[members]

    jobs = [(a, k) for a in ladders for k in sc.k]
    for arch, k in tqdm(jobs, desc="paper A sampling", disable=not progress):
        ladder = ladders[arch]
        matrix, undefined = asr_matrix(transfer, ref, primary, ladder)
        if undefined:
            notes.append(f"sampling {arch}: {undefined} cell(s) of its ASR matrix had no clean-correct image; "
                         "taken as ASR 0 for the selection")
        cov = Coverage(matrix, sc.interpolation)
        sel = select_sources(matrix, k, interpolation=sc.interpolation)
        base = random_baseline(matrix, k, sc.random_draws, seed=cfg.run.seed, interpolation=sc.interpolation,
                               evaluate=lambda s: 0.0)  # the draws only; evaluated below
        for method, draw, members in [("saliency", 0, sel.sources),
                                      *(("random", i + 1, s) for i, s in enumerate(base.sets))]:
            rec = evaluate(tuple(members))
            label = "+".join(f"q{codec_parts(m)[1]}" for m in members)
            row = {"arch": arch, "k": k, "method": method, "draw": draw, "members": label,
                   "coverage": cov.score([ladder.index(m) for m in members])}
            per = []
            for t, m in rec["per_target"].items():
                parts = codec_parts(t)
                rel = ("classifier" if t == cfg.models.classifier else
                       "same arch" if parts and parts[0] == arch else "other arch" if parts else "other")
                per.append({**row, "target": t, "relation": rel, "member": t in members, "asr": m["asr"],
                            "n_clean_correct": m["n_clean_correct"], "clean_acc": m["clean_acc"]})
            p = pd.DataFrame(per)

            def mean(mask: pd.Series, df: pd.DataFrame = p) -> float:
                v = df.loc[mask, "asr"].to_numpy(float)
                return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

            sets.append({**row, "asr_same_arch": mean(p["relation"] == "same arch"),
                         "asr_same_arch_nonmember": mean((p["relation"] == "same arch") & ~p["member"]),
                         "asr_other_archs": mean(p["relation"] == "other arch"),
                         "asr_classifier": mean(p["relation"] == "classifier"),
                         "grad_evals": rec["grad_evals"], "steps": cfg.attack.steps, "images": len(images),
                         "eot_samples": cfg.attack.eot_samples, "cached": rec["cached"]})
            cells.extend(per)
    return pd.DataFrame(sets), pd.DataFrame(cells), notes
