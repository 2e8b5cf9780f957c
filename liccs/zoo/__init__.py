"""Model zoo: registries of codecs and classifiers, and weight resolution.

``load_codec("bmshj2018-hyperprior@q3", weights="pretrained" | "random" | PATH)`` and
``load_classifier("resnet50", weights=...)``. Weights resolve as: explicit checkpoint → torch hub cache →
download → a clear error naming the file and where to put it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from liccs.errors import WeightsError
from liccs.zoo import mini as _mini  # noqa: F401,E402  (registers the offline mini zoo: mini-…)
from liccs.zoo.classifiers import CLASSIFIERS, Classifier, ClassifierEntry, PreprocessConfig
from liccs.zoo.codecs import CODECS, CodecEntry, CodecSpec, convert_compressai_state, parse_codec
from liccs.zoo.weights import WeightsInfo, load_checkpoint, load_state, sha256_of

Weights = str | os.PathLike[str]

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


def _resolve(weights: Weights, pretrained: callable) -> tuple[str, Path | None]:
    """(source, path) for a weights argument: ``"random"``, ``"pretrained"`` or a checkpoint path."""
    if isinstance(weights, str) and weights == "random":
        return "random", None
    if isinstance(weights, str) and weights == "pretrained":
        return "pretrained", pretrained()
    path = Path(weights).expanduser()
    if not path.exists():
        raise WeightsError(
            f"weights {str(weights)!r} is neither 'random', 'pretrained' nor an existing checkpoint file"
        )
    return "checkpoint", path


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
    source, path = _resolve(weights, lambda: entry.pretrained(spec.quality, spec.metric))
    info = WeightsInfo("random")
    if path is not None:
        state = convert_compressai_state(load_checkpoint(path))
        load_state(model, state, path, str(spec))
        info = WeightsInfo(entry.extra.get("weights_source", source) if source == "pretrained" else source,
                           str(path), sha256_of(path))
    model = model.eval().to(device)
    # The entropy coder's CDF tables are derived from the weights: they must be rebuilt after any load,
    # or compress()/decompress() use tables of other weights (or none at all).
    model.update(force=True)
    model.liccs_name = str(spec)
    model.liccs_weights = info
    return model


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
    source, path = _resolve(weights, entry.pretrained)
    info = WeightsInfo("random")
    if path is not None:
        load_state(net, load_checkpoint(path), path, name)
        info = WeightsInfo(entry.extra.get("weights_source", source) if source == "pretrained" else source,
                           str(path), sha256_of(path))
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
