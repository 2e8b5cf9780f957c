"""Before any work: every name of a run checked, then the models and images loaded, with header notes.

:func:`check_names` refuses an unknown codec, classifier, engine, attack or transfer target (listing the
valid names) and says which engines cannot run on this machine; :func:`load_context` loads what the run
uses and records where each model's weights came from.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from liccs.attack.base import load_families
from liccs.attack.spec import AttackSpec
from liccs.config import ConfigError, RunConfig
from liccs.core.errors import LiccsError, UnknownNameError, WeightsError
from liccs.data import ImageSource, load_batch, open_source
from liccs.engines import ENGINES
from liccs.stage import ATTACK_OBJECTIVES, Context, Names, RunError, attack_sources
from liccs.zoo import CLASSIFIERS, image_geometry, load_classifier, load_codec, parse_codec
from liccs.zoo.mini.resolve import resolve_models
from liccs.zoo.weights import ResolvedWeights, random_weights_banner

log = logging.getLogger("liccs")

MINI_NOTE = ("Models come from liccs's offline mini zoo (trained by liccs on the shared data: CIFAR-10 for the "
             "classifier and the CIFAR-scale codecs, imagenet-samples crops for the mini-nat codecs), NOT from "
             "pretrained CompressAI/torchvision weights.")


def _known(kind: str, key: str, name: str, valid: list[str]) -> None:
    if name not in valid:
        raise ConfigError(f"{key}: {str(UnknownNameError(kind, name, valid))}")


def _check_attack(cfg: RunConfig) -> None:
    """``attack.params`` against the attack's own parameters, and the objectives the attack can serve."""
    a = cfg.attack
    cls = load_families().get(a.name)
    try:
        AttackSpec.from_run(a.name, steps=a.steps, step_size=a.step_size, random_start=a.random_start, eps=a.eps,
                            params=a.params, norm=a.norm, targeted=a.targeted).check("attack.params")
    except LiccsError as e:
        raise ConfigError(str(e)) from None
    for i, name in enumerate(a.compare):
        key = f"attack.compare[{i}]"
        _known("attack", key, name, load_families().names())
        try:
            AttackSpec.from_run(name, steps=a.steps, step_size=a.step_size, random_start=a.random_start, eps=a.eps,
                                norm=a.norm, targeted=a.targeted).check(key)
        except LiccsError as e:
            raise ConfigError(str(e)) from None
        compared = load_families().get(name).objectives
        if compared is not None and ATTACK_OBJECTIVES[a.objective] not in compared:
            raise ConfigError(f"{key}: attack {name!r} serves the objectives {', '.join(compared)} only, not "
                              f"{ATTACK_OBJECTIVES[a.objective]!r} (attack.objective = {a.objective!r})")
    if cls.objectives is not None:
        wanted = {ATTACK_OBJECTIVES[a.objective]} | {"differential" for e in a.engine_aware
                                                     if e.endswith(":differential")}
        bad = sorted(wanted - set(cls.objectives))
        if bad:
            raise ConfigError(f"attack.name: attack {a.name!r} serves the objectives {', '.join(cls.objectives)} "
                              f"only, not {', '.join(bad)} (attack.objective = {a.objective!r}, attack.engine_aware)")


def check_names(cfg: RunConfig) -> Names:
    """Every name in ``cfg`` checked against the registries (no model is loaded)."""

    codecs = []
    for i, c in enumerate(cfg.models.codecs):
        try:
            codecs.append(str(parse_codec(c)))
        except LiccsError as e:
            raise ConfigError(f"models.codecs[{i}]: {e}") from None
    _known("classifier", "models.classifier", cfg.models.classifier, CLASSIFIERS.names())
    _known("attack", "attack.name", cfg.attack.name, load_families().names())
    _check_attack(cfg)
    alone = [cfg.models.classifier] if cfg.models.classifier_alone else []
    sources = cfg.attack.sources or codecs + alone
    for i, s in enumerate(sources):
        for member in s.split("+"):
            if member not in codecs + alone:
                raise ConfigError(f"attack.sources[{i}]: {member!r} is not a model of [models]; valid: "
                                  f"{', '.join(codecs + alone)}")
    replicable = [e for e in ENGINES.names() if ENGINES.get(e).replica]
    for i, entry in enumerate([cfg.attack.target_engine, *cfg.attack.engine_aware]):
        key = "attack.target_engine" if i == 0 else f"attack.engine_aware[{i - 1}]"
        engine, _, objective = entry.partition(":")
        if i == 0 and engine == "torch":
            continue
        if engine not in replicable or objective not in ("", "differential") or (i == 0 and objective):
            raise ConfigError(f"{key}: {entry!r} is not an engine with a differentiable replica"
                              f"{'' if i == 0 else '[:differential]'}; valid engines: {', '.join(replicable)}")
        if engine not in cfg.transfer.engines:
            raise ConfigError(f"{key}: {engine!r} must be one of transfer.engines, where the attack is measured "
                              f"({', '.join(cfg.transfer.engines)})")
        if cfg.attack.objective not in ("classification", "differential"):
            raise ConfigError(f"{key}: an engine-aware attack needs attack.objective classification or "
                              f"differential, not {cfg.attack.objective!r}")
    srcs = attack_sources(cfg, sources)
    for s in srcs:
        if s.differential and (s.engine == "torch" or len(s.members) != 1):
            raise ConfigError(f"attack source {s.label!r}: the differential objective needs attack.target_engine "
                              "(or an engine_aware entry) and single-model sources")
    targets = cfg.transfer.targets or codecs
    for i, t in enumerate(targets):
        if t not in codecs + alone:
            raise ConfigError(f"transfer.targets[{i}]: {t!r} is not a model of [models]; valid: "
                              f"{', '.join(codecs + alone)}")
    measured = list(dict.fromkeys([*targets, *alone]))
    for i, t in enumerate(cfg.transfer.square_targets):
        if t not in measured:
            raise ConfigError(f"transfer.square_targets[{i}]: {t!r} is not a transfer target; valid: "
                              f"{', '.join(measured)}")
    for key, engines in (("export.engines", cfg.export.engines), ("transfer.engines", cfg.transfer.engines)):
        for i, e in enumerate(engines):
            _known("engine", f"{key}[{i}]", e, ENGINES.names())
    if cfg.transfer.reference_engine not in cfg.transfer.engines:
        raise ConfigError(f"transfer.reference_engine: {cfg.transfer.reference_engine!r} must be one of "
                          f"transfer.engines ({', '.join(cfg.transfer.engines)})")
    try:
        open_source(cfg.data.source)
    except LiccsError as e:
        raise ConfigError(f"data.source: {e}") from None
    unavailable = {}
    for e in dict.fromkeys(cfg.export.engines + cfg.transfer.engines):
        why = ENGINES.get(e).unavailable_reason()
        if why:
            unavailable[e] = why
    if cfg.run.device == "cuda" and not torch.cuda.is_available():
        raise RunError("run.device is 'cuda' but no CUDA GPU is visible here; use liccs/configs/quick-cpu.toml or "
                       "--set run.device=\"cpu\"")
    if cfg.transfer.reference_engine in unavailable:
        raise RunError(f"transfer.reference_engine {cfg.transfer.reference_engine!r} cannot run here: "
                       f"{unavailable[cfg.transfer.reference_engine]}")
    return Names(codecs, [s.label for s in srcs], list(targets) + [m for m in alone if m not in targets],
                 list(cfg.export.engines), list(cfg.transfer.engines), unavailable)


def _load(loader: Callable[..., nn.Module], name: str, weights: str | ResolvedWeights,
          notes: list[str]) -> nn.Module:
    try:
        return loader(name, weights)
    except WeightsError as e:
        if weights != "pretrained":
            raise
        notes.append(f"{name}: no pretrained weights here ({e}); RANDOM weights used, its accuracy means nothing")
        log.warning(notes[-1])
        return loader(name, "random")


def load_context(cfg: RunConfig, names: Names, progress: bool = True) -> Context:
    """Load the codecs, the classifier and the images; note where every model's weights came from."""

    notes = list(cfg.report.notes)
    w = cfg.models.weights
    # every mini-zoo model of the run resolved together: a ladder comes whole from one source
    found = resolve_models([*names.codecs, cfg.models.classifier]) if w == "pretrained" else {}
    clf = _load(load_classifier, cfg.models.classifier, found.get(cfg.models.classifier, w), notes)
    codecs = {n: _load(load_codec, n, found.get(n, w), notes) for n in names.codecs}
    weights = {n: m.liccs_weights.to_dict() for n, m in [*codecs.items(), (cfg.models.classifier, clf)]}
    if any(w.get("source") == "mini-zoo" for w in weights.values()):
        notes.insert(0, MINI_NOTE)
    notes += [f"Weights: {info['note']}" for info in weights.values() if info.get("note")]
    banner = random_weights_banner({**codecs, cfg.models.classifier: clf})
    if banner:
        notes.insert(0, banner)
    source = open_source(cfg.data.source)
    n = min(cfg.data.images, len(source))
    resize, crop, interpolation = image_geometry(codecs, clf)
    # evenly spaced over the source: class-sorted sources (the CIFAR-10 zips) give every class
    indices = sorted({round(i * (len(source) - 1) / max(1, n - 1)) for i in range(n)}) if n < len(source) else range(n)
    batch = load_batch(source, indices, resize=resize, crop=crop, interpolation=interpolation, progress=progress)
    if batch.failures:
        notes.append(f"{len(batch.failures)} image(s) of {cfg.data.source} could not be read and were skipped")
    if not len(batch.names):
        raise RunError(f"data.source {cfg.data.source!r}: no readable image among the first {n}")
    if all(v is not None for v in batch.labels):
        labels = torch.tensor(batch.labels, dtype=torch.long)
    else:
        with torch.no_grad():
            labels = clf(batch.images).argmax(1)
        notes.append(f"{cfg.data.source} has no labels: the classifier's clean predictions are used as labels")
    notes.append(f"{len(batch.names)} images of {cfg.data.source} at {tuple(batch.images.shape[-2:])} (the geometry "
                 "the codecs and the classifier share, for the attack, transfer and profile stages); "
                 f"classifier {cfg.models.classifier}; codecs {', '.join(names.codecs)}")
    images = batch.images.contiguous()
    return Context(cfg, names, codecs, clf, images, labels, list(batch.names), notes, weights, progress=progress,
                   data=data_checksums(cfg.data.source, source, list(indices), images, labels))


def data_checksums(spec: str, source: ImageSource, indices: list[int], images: torch.Tensor,
                   labels: torch.Tensor) -> dict[str, Any]:
    """What the run read: the sha256 of the image files' bytes (in order), of the decoded pixels and of the labels."""
    files = hashlib.sha256()
    zips: dict[str, zipfile.ZipFile] = {}
    try:
        for i in indices:
            where = source.describe(i)[1]
            archive, _, member = where.partition("!")
            try:
                if member:
                    zips.setdefault(archive, zipfile.ZipFile(archive))
                    files.update(zips[archive].read(member))
                else:
                    files.update(Path(where).read_bytes())
            except (OSError, KeyError, zipfile.BadZipFile):
                files.update(f"<unreadable {where}>".encode())  # named in the notes by load_batch's failures
    finally:
        for z in zips.values():
            z.close()
    return {"source": spec, "images": len(images), "files_sha256": files.hexdigest(),
            "pixels_sha256": hashlib.sha256(images.float().numpy().tobytes()).hexdigest(),
            "labels_sha256": hashlib.sha256(labels.numpy().astype("<i8").tobytes()).hexdigest()}
