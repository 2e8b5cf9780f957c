"""Adversarial images crafted in PyTorch through each source (LICCS, an ensemble, or the classifier alone).

Each source's images are cached under ``<run.out>/adversarial/`` by a key of the attack and data config,
the models' weights (sha256), the images and the seed: a re-run with the same key loads them instead of
attacking again; any change of the key attacks again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from liccs.attack.base import create_attack
from liccs.attack.diversity import InputDiversity
from liccs.attack.ensemble import Ensemble
from liccs.attack.eot import EoT
from liccs.executor import Task
from liccs.export.cache import atomic_write
from liccs.fileio import json_digest, load_keyed
from liccs.stage import (
    ATTACK_OBJECTIVES,
    Context,
    Results,
    StageBase,
    StageResult,
    TableSpec,
    device_key,
    register,
    task_resources,
)


def attack_key(ctx: Context, source: str) -> str:
    """sha256 of what determines a source's adversarial images."""
    cfg = ctx.cfg
    members = source.split("+")
    key = {"attack": cfg.to_dict()["attack"], "seed": cfg.run.seed, "source": source,
           "weights": {m: ctx.weights[m].get("sha256") or ctx.weights[m].get("source") for m in members},
           "classifier": ctx.weights[cfg.models.classifier].get("sha256"),
           "images": hashlib.sha256(ctx.images.numpy().tobytes()).hexdigest(),
           "labels": ctx.labels.tolist(), **device_key(cfg)}
    return json_digest(key)


def source_model(ctx: Context, source: str) -> Ensemble:
    """The attacked model, on ``run.device``: LICCS members (surrogate ``attack.surrogate``) or the classifier
    alone."""
    return Ensemble(ctx.attack_members(source.split("+")), names=source.split("+"))


def craft(ctx: Context, source: str) -> Tensor:
    """Adversarial images of ``source`` over the run's images, in ``data.batch_size`` batches."""
    a = ctx.cfg.attack
    target: Any = source_model(ctx, source)
    if a.eot_samples > 1:
        target = EoT(target, samples=a.eot_samples)
    atk = create_attack(a.name, target, eps=a.eps, norm=a.norm, steps=a.steps, alpha=min(a.step_size, a.eps),
                        random_start=a.random_start, targeted=a.targeted, objective=ATTACK_OBJECTIVES[a.objective],
                        seed=ctx.cfg.run.seed, diversity=InputDiversity() if a.input_diversity else None)
    labels = target_labels(ctx) if a.targeted else ctx.labels
    bs = ctx.cfg.data.batch_size
    return torch.cat([atk(ctx.images[i:i + bs], labels[i:i + bs]) for i in range(0, len(ctx.images), bs)])


def target_labels(ctx: Context) -> Tensor:
    """Targeted attacks aim at the next class: ``(label + 1) mod classes``."""
    return (ctx.labels + 1) % int(ctx.classifier.num_classes)


def craft_to_file(ctx: Context, source: str, path: Path, key: str) -> str:
    """Craft ``source``'s images and store them under ``key`` at ``path`` (a task: the file is its result)."""
    images = craft(ctx, source)
    record = {"key": key, "images": images, "names": ctx.image_names}
    atomic_write(path, lambda tmp: torch.save(record, tmp))
    return str(path)


def run_attacks(ctx: Context, out: Path, progress: bool = True) -> tuple[dict[str, Tensor], pd.DataFrame]:
    """Adversarial images per source (cached; the missing ones crafted as tasks on ``ctx.executor``), and a table:
    source, key, cached, L∞ of the perturbation. A source whose task failed is left out (the run's *Failed*
    section names it)."""
    folder = out / "adversarial"
    keys = {s: attack_key(ctx, s) for s in ctx.names.sources}
    paths = {s: folder / f"{s.replace('+', '_').replace('@', '-')}-{keys[s][:16]}.pt" for s in ctx.names.sources}
    stored = {s: load_keyed(paths[s], keys[s]) for s in ctx.names.sources}
    cached = {s for s, hit in stored.items() if hit is not None}
    tasks = [Task(keys[s], s, craft_to_file, (ctx, s, paths[s], keys[s]), **task_resources(ctx.cfg))
             for s in ctx.names.sources if s not in cached]
    ctx.executor.run(tasks, "attack", progress)
    adv: dict[str, Tensor] = {}
    rows = []
    for source in ctx.names.sources:
        hit = stored[source] or load_keyed(paths[source], keys[source])  # crafted now: read the task's file
        if hit is None:  # its task failed
            continue
        adv[source] = images = hit["images"]
        rows.append({"source": source, "cached": source in cached, "file": str(paths[source].relative_to(out)),
                     "key": keys[source][:16], "linf": float((images - ctx.images).abs().max()),
                     "attack": ctx.cfg.attack.name, "eps": ctx.cfg.attack.eps, "steps": ctx.cfg.attack.steps,
                     "surrogate": ctx.cfg.attack.surrogate})
    return adv, pd.DataFrame(rows)


class AttackStage(StageBase):
    """Adversarial images crafted in PyTorch through every attack source (cached under the run folder)."""

    name, section, order = "attack", "attack", 30
    tables = (TableSpec("attacks", "Adversarial image sets (cached under the run folder by key).", order=70),)

    def run(self, ctx: Context, results: Results) -> StageResult:
        adversarial, table = run_attacks(ctx, ctx.out, ctx.progress)
        return StageResult({"attacks": table}, adversarial=adversarial)


register(AttackStage())
