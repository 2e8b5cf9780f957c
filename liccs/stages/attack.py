"""Adversarial images crafted through each source (LICCS, an ensemble, or the classifier alone): on the PyTorch
models, or on the differentiable replica of a deployed engine's graphs (engine-aware sources, ``A~ENGINE``, and the
differential ones, ``A~ENGINE:differential``; :mod:`liccs.checks.replica`). A replica whose top-1 agreement with its
engine is below ``export.min_top1_agreement`` is not used: its sources are skipped, saying why.

Each attack of ``attack.compare`` crafts every PyTorch source again (``SOURCE[NAME]``, that attack's default
parameters, the same eps and steps), so the transfer stage sets the two side by side on every engine.

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

from liccs.attack.diversity import InputDiversity
from liccs.attack.ensemble import Ensemble
from liccs.attack.eot import EoT
from liccs.attack.spec import AttackSpec
from liccs.checks.replica import replica_parity, replicas
from liccs.core.executor import Task
from liccs.core.fileio import json_digest, load_keyed, save_keyed
from liccs.stage import (
    ATTACK_OBJECTIVES,
    Context,
    Exports,
    Results,
    Source,
    StageBase,
    StageResult,
    TableSpec,
    device_key,
    register,
    task_resources,
)


def compare_label(source: str, attack: str) -> str:
    """The label of ``source`` crafted by the compared ``attack``: ``SOURCE[NAME]``."""
    return f"{source}[{attack}]"


def split_compare(label: str) -> tuple[str, str | None]:
    """(the source, the compared attack or None) of a label."""
    if label.endswith("]") and "[" in label:
        base, _, name = label[:-1].rpartition("[")
        return base, name
    return label, None


def compare_sources(ctx: Context, sources: list[str]) -> list[str]:
    """``SOURCE[NAME]`` for every PyTorch, non-differential source × every attack of ``attack.compare``."""
    torch_sources = [s for s in sources if Source.parse(s).engine == "torch" and not Source.parse(s).differential]
    return [compare_label(s, c) for s in torch_sources for c in ctx.cfg.attack.compare]


def attack_key(ctx: Context, source: str, replica_files: list[str] | None = None) -> str:
    """sha256 of what determines a source's adversarial images (with the ONNX files its replicas execute)."""
    cfg = ctx.cfg
    members = list(Source.parse(split_compare(source)[0]).members)
    key = {"attack": cfg.to_dict()["attack"], "seed": cfg.run.seed, "source": source,
           "weights": {m: ctx.weights[m].get("sha256") or ctx.weights[m].get("source") for m in members},
           "classifier": ctx.weights[cfg.models.classifier].get("sha256"),
           "images": hashlib.sha256(ctx.images.numpy().tobytes()).hexdigest(),
           "labels": ctx.labels.tolist(), **device_key(cfg)}
    if replica_files:
        key["replica_files"] = replica_files
    return json_digest(key)


def source_model(ctx: Context, source: str, exports: Exports | None = None) -> Ensemble:
    """The attacked model, on ``run.device``: LICCS members (surrogate ``attack.surrogate``) or the classifier
    alone; for an engine-aware source the replicas of the members' routes on its engine; for a differential one
    [the PyTorch model, its replica]."""
    src = Source.parse(source)
    members = list(src.members)
    if src.engine == "torch":
        return Ensemble(ctx.attack_members(members), names=members)
    reps = replicas(ctx, src.engine, exports or Exports(), members)
    if src.differential:
        return Ensemble([*ctx.attack_members(members), reps[members[0]]], names=[src.base, src.label])
    return Ensemble([reps[m] for m in members], names=[f"{m}~{src.engine}" for m in members])


def source_objective(ctx: Context, source: str) -> str:
    """The objective of ``source``'s attack: ``differential`` for a differential source, else ``attack.objective``
    (the classification loss for the engine-aware sources of a differential run)."""
    objective = ctx.cfg.attack.objective
    if Source.parse(source).differential:
        return "differential"
    return ATTACK_OBJECTIVES["classification" if objective == "differential" else objective]


def craft(ctx: Context, source: str, exports: Exports | None = None) -> Tensor:
    """Adversarial images of ``source`` (``SOURCE[NAME]``: by the compared attack) over the run's images, in
    ``data.batch_size`` batches."""
    a = ctx.cfg.attack
    source, compared = split_compare(source)
    name, params = (a.name, a.params) if compared is None else (compared, {})
    target: Any = source_model(ctx, source, exports)
    if a.eot_samples > 1:
        target = EoT(target, samples=a.eot_samples)
    atk = AttackSpec.from_run(name, steps=a.steps, step_size=a.step_size, random_start=a.random_start, eps=a.eps,
                              params=params, norm=a.norm, targeted=a.targeted,
                              objective=source_objective(ctx, source), seed=ctx.cfg.run.seed,
                              diversity=InputDiversity() if a.input_diversity else None).build(target)
    labels = target_labels(ctx) if a.targeted else ctx.labels
    bs = ctx.cfg.data.batch_size
    return torch.cat([atk(ctx.images[i:i + bs], labels[i:i + bs]) for i in range(0, len(ctx.images), bs)])


def target_labels(ctx: Context) -> Tensor:
    """Targeted attacks aim at the next class: ``(label + 1) mod classes``."""
    return (ctx.labels + 1) % int(ctx.classifier.num_classes)


def craft_to_file(ctx: Context, source: str, path: Path, key: str, exports: Exports | None = None) -> str:
    """Craft ``source``'s images and store them under ``key`` at ``path`` (a task: the file is its result)."""
    images = craft(ctx, source, exports)
    record = {"key": key, "images": images, "names": ctx.image_names}
    save_keyed(path, record)
    return str(path)


def check_replicas(ctx: Context, exports: Exports) -> tuple[pd.DataFrame, dict[str, list[str]], dict[str, str]]:
    """(replica parity per engine × target, the usable replicas' files per engine-aware source, the sources that
    cannot be crafted: label → why)."""
    sources = [Source.parse(s) for s in ctx.names.sources]
    engines = list(dict.fromkeys(s.engine for s in sources if s.engine != "torch"))
    tables = []
    for e in engines:
        members = list(dict.fromkeys(m for s in sources if s.engine == e for m in s.members))
        if e in ctx.names.unavailable:
            why = ctx.names.unavailable[e]
            tables.append(pd.DataFrame([{"engine": e, "target": m, "usable": False, "why": why} for m in members]))
        else:
            tables.append(replica_parity(ctx, e, exports, members))
    parity = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    files: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for s in (s for s in sources if s.engine != "torch"):
        rows = parity[(parity["engine"] == s.engine) & parity["target"].isin(s.members)]
        bad = rows[~rows["usable"].astype(bool)]
        if bad.empty:
            files[s.label] = sorted(f for v in rows["files"] for f in str(v).split(";"))
        else:
            skipped[f"attack:{s.label}"] = "; ".join(f"{r.target}: {r.why}" for r in bad.itertuples())
    return parity, files, skipped


def _stem(source: str) -> str:
    """A file name for a source label (``A+B~ENGINE:differential``, ``A[apgd]``)."""
    for a, b in (("+", "_"), ("@", "-"), ("~", "--"), (":", "-"), ("[", "-"), ("]", "")):
        source = source.replace(a, b)
    return source


def run_attacks(ctx: Context, out: Path, progress: bool = True,
                exports: Exports | None = None) -> tuple[dict[str, Tensor], pd.DataFrame, dict[str, Any]]:
    """Adversarial images per source (cached; the missing ones crafted as tasks on ``ctx.executor``), a table
    (source, key, cached, L∞ of the perturbation), and for engine-aware sources the replica parity table and the
    sources skipped. A source whose task failed is left out (the run's *Failed* section names it)."""
    folder = out / "adversarial"
    exports = exports or Exports()
    parity, files, skipped = check_replicas(ctx, exports)
    sources = [s for s in ctx.names.sources if f"attack:{s}" not in skipped]
    sources += compare_sources(ctx, sources)
    keys = {s: attack_key(ctx, s, files.get(s)) for s in sources}
    paths = {s: folder / f"{_stem(s)}-{keys[s][:16]}.pt" for s in sources}
    stored = {s: load_keyed(paths[s], keys[s]) for s in sources}
    cached = {s for s, hit in stored.items() if hit is not None}
    shipped = exports if ctx.executor.in_process else Exports(cache=exports.cache)
    tasks = [Task(keys[s], s, craft_to_file, (ctx, s, paths[s], keys[s], shipped), **task_resources(ctx.cfg))
             for s in sources if s not in cached]
    ctx.executor.run(tasks, "attack", progress)
    adv: dict[str, Tensor] = {}
    rows = []
    for source in sources:
        hit = stored[source] or load_keyed(paths[source], keys[source])  # crafted now: read the task's file
        if hit is None:  # its task failed
            continue
        adv[source] = images = hit["images"]
        rows.append({"source": source, "cached": source in cached, "file": str(paths[source].relative_to(out)),
                     "key": keys[source][:16], "linf": float((images - ctx.images).abs().max()),
                     "attack": split_compare(source)[1] or ctx.cfg.attack.name, "eps": ctx.cfg.attack.eps,
                     "steps": ctx.cfg.attack.steps,
                     "surrogate": ctx.cfg.attack.surrogate,
                     "objective": source_objective(ctx, split_compare(source)[0])})
    return adv, pd.DataFrame(rows), {"replica_parity": parity, "skipped": skipped}


class AttackStage(StageBase):
    """Adversarial images crafted in PyTorch through every attack source (cached under the run folder)."""

    name, section, order = "attack", "attack", 30
    tables = (TableSpec("attacks", "Adversarial image sets (cached under the run folder by key).", order=70),
              TableSpec("replica_parity", "Differentiable replicas of the deployed graphs against their engines "
                        "(clean images); a replica is used only where top-1 agreement ≥ export.min_top1_agreement.",
                        ("engine", "target", "route", "n", "max_abs_err", "top1_agreement", "usable", "why"),
                        order=14))

    def run(self, ctx: Context, results: Results) -> StageResult:
        adversarial, table, extra = run_attacks(ctx, ctx.out, ctx.progress, results.exports)
        tables = {"attacks": table}
        if not extra["replica_parity"].empty:
            tables["replica_parity"] = extra["replica_parity"]
        return StageResult(tables, skipped=extra["skipped"], adversarial=adversarial)


register(AttackStage())
