"""Model zoo: registries of codecs and classifiers, and weight resolution.

``load_codec("bmshj2018-hyperprior@q3", weights="pretrained" | "random" | PATH)`` and
``load_classifier("resnet50", weights=...)``. Weights resolve as: explicit checkpoint → torch hub cache →
download → a clear error naming the file and where to put it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from liccs.core.errors import WeightsError
from liccs.zoo import mini as _mini  # registers the offline mini zoo: mini-…
from liccs.zoo.classifiers import CLASSIFIERS, Classifier, ClassifierEntry, PreprocessConfig
from liccs.zoo.codecs import CODECS, CodecEntry, CodecSpec, convert_compressai_state, parse_codec
from liccs.zoo.weights import ResolvedWeights, WeightsInfo, load_checkpoint, load_state, sha256_of

Weights = str | os.PathLike[str] | ResolvedWeights

__all__ = [
    "image_geometry",
    "CLASSIFIERS",
    "CODECS",
    "Classifier",
    "ClassifierEntry",
    "CodecEntry",
    "CodecSpec",
    "PreprocessConfig",
    "WeightsInfo",
    "codec_names",
    "list_classifiers",
    "list_codecs",
    "load_classifier",
    "load_codec",
    "load_codecs",
    "parse_codec",
]


def list_codecs() -> list[str]:
    """Registered codec architectures (each takes ``@qN`` for a quality)."""
    return CODECS.names()


def codec_names(arch: str | None = None) -> list[str]:
    """Every ``ARCH@qN`` name, for one architecture or all."""
    archs = [arch] if arch else CODECS.names()
    return [f"{a}@q{q}" for a in archs for q in CODECS.get(a).qualities]


def list_classifiers() -> list[str]:
    """Registered classifier names."""
    return CLASSIFIERS.names()


def _resolve(weights: Weights | ResolvedWeights, pretrained: callable) -> tuple[str, ResolvedWeights | None]:
    """(source, resolved file) for a weights argument: ``"random"``, ``"pretrained"``, a checkpoint path, or a file a
    zoo already resolved (:func:`liccs.zoo.mini.resolve_models`)."""
    if isinstance(weights, ResolvedWeights):
        return "pretrained", weights
    if isinstance(weights, str) and weights == "random":
        return "random", None
    if isinstance(weights, str) and weights == "pretrained":
        found = pretrained()
        return "pretrained", found if isinstance(found, ResolvedWeights) else ResolvedWeights(Path(found), "hub")
    path = Path(weights).expanduser()
    if not path.exists():
        raise WeightsError(
            f"weights {str(weights)!r} is neither 'random', 'pretrained' nor an existing checkpoint file"
        )
    return "checkpoint", ResolvedWeights(path, "checkpoint")


def _info(source: str, found: ResolvedWeights, extra: dict[str, object]) -> WeightsInfo:
    kind = extra.get("weights_source", source) if source == "pretrained" else source
    return WeightsInfo(kind, str(found.path), sha256_of(found.path), found.origin, found.note)


def _random_init(build: callable, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def load_codec(
    name: str | CodecSpec,
    weights: Weights = "pretrained",
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> nn.Module:
    """A CompressAI model at a quality, in eval mode, with its entropy tables built (``update()``).

    Args:
        name: ``ARCH@qN`` or ``ARCH@qN:ms-ssim``.
        weights: ``"pretrained"``, ``"random"`` (initialized from ``seed``) or a checkpoint path.
        device: where the model lives.
        seed: seed of the random initialization (``weights="random"``).

    The returned module carries ``liccs_name`` (canonical name) and ``liccs_weights`` (:class:`WeightsInfo`).
    """
    spec = name if isinstance(name, CodecSpec) else parse_codec(name)
    entry = CODECS.get(spec.arch)
    model = _random_init(lambda: entry.build(spec.quality), seed)
    source, found = _resolve(weights, lambda: entry.pretrained(spec.quality, spec.metric))
    info = WeightsInfo("random")
    if found is not None:
        state = convert_compressai_state(load_checkpoint(found.path))
        load_state(model, state, found.path, str(spec))
        info = _info(source, found, entry.extra)
    model = model.eval().to(device)
    # The entropy coder's CDF tables are derived from the weights: they must be rebuilt after any load,
    # or compress()/decompress() use tables of other weights (or none at all).
    model.update(force=True)
    model.liccs_name = str(spec)
    model.liccs_weights = info
    return model


def load_codecs(names: Sequence[str | CodecSpec], weights: Weights = "pretrained", *,
                device: str | torch.device = "cpu", seed: int = 0) -> list[nn.Module]:
    """Several codecs loaded together: with ``"pretrained"`` weights, each mini-zoo ladder comes whole from one
    source (:func:`liccs.zoo.mini.resolve_models`), never mixing shipped and cache-trained qualities."""
    specs = [n if isinstance(n, CodecSpec) else parse_codec(n) for n in names]
    found = _mini.resolve_models([str(s) for s in specs]) if weights == "pretrained" else {}
    return [load_codec(s, found.get(str(s), weights), device=device, seed=seed) for s in specs]


def load_classifier(
    name: str,
    weights: Weights = "pretrained",
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> Classifier:
    """A classifier with its preprocessing, taking [0, 1] RGB images; eval mode.

    Args:
        name: a registered classifier (``list_classifiers()``).
        weights: ``"pretrained"``, ``"random"`` (initialized from ``seed``) or a checkpoint path.
    """
    entry = CLASSIFIERS.get(name)
    net = _random_init(entry.build, seed)
    source, found = _resolve(weights, entry.pretrained)
    info = WeightsInfo("random")
    if found is not None:
        load_state(net, load_checkpoint(found.path), found.path, name)
        info = _info(source, found, entry.extra)
    model = Classifier(net, entry.preprocess, name, entry.num_classes).eval().to(device)
    model.liccs_name = name
    model.liccs_weights = info
    return model


def image_geometry(codecs: dict[str, nn.Module], classifier: nn.Module) -> tuple[int | None, int | None, str]:
    """(resize, crop, interpolation) the images are loaded at: the codecs' training geometry (mini CIFAR: 64,
    nearest), else the classifier's."""
    extras = [CODECS.get(c.split("@")[0]).extra for c in codecs]
    sizes = {(e.get("image_size"), e.get("upsample", "bilinear")) for e in extras}
    if len(sizes) == 1 and None not in next(iter(sizes)):
        s, mode = sizes.pop()
        return s, s, mode
    cfg = classifier.preprocess.cfg
    return cfg.resize, cfg.crop, cfg.interpolation
