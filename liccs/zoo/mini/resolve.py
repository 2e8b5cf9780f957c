"""Which bytes a mini-zoo name resolves to (the shipped fp16 weights or the liccs cache, one source per ladder;
trained on demand by its recipe), and the registration of every mini-zoo entry in the codec and classifier
registries."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

from torch import nn

from liccs.core.errors import WeightsError
from liccs.data import CIFAR10_CLASSES
from liccs.zoo.classifiers import CLASSIFIERS, ClassifierEntry, PreprocessConfig
from liccs.zoo.codecs import CODECS, CodecEntry
from liccs.zoo.mini import store
from liccs.zoo.mini.recipes import CIFAR_GEOMETRY, CLASSIFIER_CONFIGS, LADDER_CONFIGS, WEIGHTS_SOURCE
from liccs.zoo.mini.train_classifier import CIFAR_MEAN, CIFAR_STD, ResNet9
from liccs.zoo.mini.train_codec import ARCHS, LAMBDAS, LadderConfig, build_codec
from liccs.zoo.mini.training import train_mini_classifier, train_mini_ladder
from liccs.zoo.weights import ResolvedWeights, sha256_of

log = logging.getLogger(__name__)
# --- resolution: one set of bytes per name and source ----------------------------------------------
#: ``auto`` (default): the weights the package ships, where it ships every quality a run asks of a ladder; else the
#: liccs cache (trained on this machine by the recipe, where missing). ``shipped`` / ``cache`` force one source.
SOURCE_ENV = "LICCS_MINI_WEIGHTS"
SOURCES = ("auto", "shipped", "cache")


def source_preference() -> str:
    """The user's choice of mini-zoo weights (``$LICCS_MINI_WEIGHTS``), checked."""
    pref = os.environ.get(SOURCE_ENV, "auto").strip() or "auto"
    if pref not in SOURCES:
        raise WeightsError(f"{SOURCE_ENV}={pref!r} is not a weights source; valid: {', '.join(SOURCES)}")
    return pref


def _on_demand(what: str, minutes: str) -> None:
    log.warning("mini-zoo: %s is not in the liccs cache and has no shipped weights; training it now "
                "(about %s on a 2-core CPU; `liccs zoo train` trains the whole zoo ahead of time)", what, minutes)


def _shipped(name: str, found: store.Found, cache_hint: str) -> ResolvedWeights:
    """The shipped file of ``name``; a cache entry under the same name from another training is named, not used."""
    path, other = found.shipped, found.cached
    assert path is not None
    note = None
    if other is not None and not store.same_training(other, path):
        note = (f"{name}: the liccs cache holds other weights ({other}, sha256 {sha256_of(other)[:12]}) than the "
                f"shipped ones ({path}, sha256 {sha256_of(path)[:12]}); the shipped weights are used "
                f"({cache_hint} uses the cache's)")
        warnings.warn(note, store.MiniZooWarning, stacklevel=4)
    return ResolvedWeights(path, "shipped", note)


def _from_cache(name: str, shipped: Path | None, path: Path, reason: str | None) -> ResolvedWeights:
    note = reason
    if shipped is not None:
        note = f"{name}: from the liccs cache ({path}), not the shipped {shipped}" + (f": {reason}" if reason else "")
        log.warning("mini-zoo: %s", note)
    return ResolvedWeights(path, "cache", note)


def resolve_classifier(name: str) -> ResolvedWeights:
    """Weights of a mini-zoo classifier: shipped, else cache, else trained now (``$LICCS_MINI_WEIGHTS`` forces one)."""
    mc = CLASSIFIER_CONFIGS[name]
    pref = source_preference()
    found = store.locate(name, mc.key)
    if found.shipped is not None and pref != "cache":
        return _shipped(name, found, f"{SOURCE_ENV}=cache")
    if pref == "shipped":
        raise WeightsError(f"{SOURCE_ENV}=shipped, but the package ships no weights for {name}")
    path = found.cached
    if path is None:
        _on_demand(name, "seconds" if "tiny" in name else "5 minutes")
        path = train_mini_classifier(mc)
    return _from_cache(name, found.shipped, path, f"{SOURCE_ENV}={pref}" if pref != "auto" else None)


def ladder_source(name: str, qualities: Iterable[int]) -> tuple[str, str | None]:
    """Where the ``qualities`` of ladder ``name`` asked for together come from, and why when it is not obvious.

    A ladder is one training (its qualities are fine-tuned from each other), so it comes whole from one source:
    shipped when the package ships every quality asked for, else the liccs cache.
    """
    ml = LADDER_CONFIGS[name]
    asked = set(qualities)
    shipped = set(store.shipped_entries([(ml.entry_name(q), ml.key) for q in ml.config.qualities]))
    shipped_q = {q for q in ml.config.qualities if ml.entry_name(q) in shipped}
    pref = source_preference()
    if pref == "cache":
        return "cache", f"{SOURCE_ENV}=cache"
    if asked <= shipped_q:
        return "shipped", None
    if pref == "shipped":
        raise WeightsError(f"{SOURCE_ENV}=shipped, but the package ships no weights for "
                           f"{', '.join(ml.entry_name(q) for q in sorted(asked - shipped_q))} "
                           f"(shipped: {', '.join(ml.entry_name(q) for q in sorted(shipped_q)) or 'none'})")
    if shipped_q:
        return "cache", (f"the package ships {', '.join(f'q{q}' for q in sorted(shipped_q))} of {name} but not "
                         f"{', '.join(f'q{q}' for q in sorted(asked - shipped_q))}; a ladder is one training, so "
                         f"every quality of it comes from the liccs cache (recipe key {ml.key})")
    return "cache", None


def resolve_codec(name: str, quality: int, source: tuple[str, str | None] | None = None) -> ResolvedWeights:
    """Weights of ``name@qN`` from :func:`ladder_source` (of this quality alone unless ``source`` is given):
    shipped, or cache → trained now (with the qualities its chain needs)."""
    ml = LADDER_CONFIGS[name]
    entry = ml.entry_name(quality)
    where, reason = source or ladder_source(name, [quality])
    found = store.locate(entry, ml.key)
    if where == "shipped":
        return _shipped(entry, found, f"{SOURCE_ENV}=cache")
    path = found.cached
    if path is None:
        _on_demand(entry, "seconds" if "tiny" in name else "10-15 minutes")
        path = train_mini_ladder(ml, only=quality)[quality]
    return _from_cache(entry, found.shipped, path, reason)


def resolve_models(names: Iterable[str]) -> dict[str, ResolvedWeights]:
    """The weights of every mini-zoo model among ``names`` (``LADDER@qN`` or a classifier), each ladder as one unit
    (:func:`ladder_source` over the qualities asked of it); other names are left out."""
    ladders: dict[str, list[int]] = {}
    out: dict[str, ResolvedWeights] = {}
    for n in names:
        arch, _, q = n.partition("@q")
        if arch in LADDER_CONFIGS and q.isdigit():
            ladders.setdefault(arch, []).append(int(q))
        elif n in CLASSIFIER_CONFIGS:
            out[n] = resolve_classifier(n)
    for arch, qs in ladders.items():
        source = ladder_source(arch, qs)
        for q in qs:
            out[f"{arch}@q{q}"] = resolve_codec(arch, q, source)
    return out


def _register() -> None:
    for mc in CLASSIFIER_CONFIGS.values():
        CLASSIFIERS.register(mc.name, ClassifierEntry(
            name=mc.name,
            build=lambda w=mc.config.width: ResNet9(w, flip_tta=True),
            preprocess=PreprocessConfig(resize=32, crop=32, mean=CIFAR_MEAN, std=CIFAR_STD, interpolation="area"),
            num_classes=10,
            pretrained=lambda n=mc.name: resolve_classifier(n),
            dataset="cifar10",
            description=mc.description,
            extra={**WEIGHTS_SOURCE, "categories": list(CIFAR10_CLASSES)},
        ))
    for ml in LADDER_CONFIGS.values():
        c = ml.config

        def build(quality: int, c: LadderConfig = c) -> nn.Module:
            return build_codec(c.arch, c.N, c.M)

        def pretrained(quality: int, metric: str, n: str = ml.name) -> ResolvedWeights:
            return resolve_codec(n, quality)

        CODECS.register(ml.name, CodecEntry(
            arch=ml.name, family=ARCHS[c.arch][1], qualities=c.qualities, build=build, pretrained=pretrained,
            description=ml.description,
            extra={**WEIGHTS_SOURCE, "base_arch": c.arch,
                   **(CIFAR_GEOMETRY if c.data.startswith("cifar10-64") else {}),
                   "lambdas": {q: LAMBDAS[q] for q in c.qualities}},
        ))


_register()
