"""Classifier registry: torchvision ImageNet models, each carrying its own preprocessing.

Attacks work in [0, 1] pixel space, so the normalization (and, when the input is not already at the
classifier's crop size, the resize and centre crop) lives inside the model (:class:`Classifier`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

from liccs.core import Registry, resize_center_crop
from liccs.zoo.weights import ResolvedWeights, resolve_pretrained

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessConfig:
    """The geometry and normalization a classifier expects of a [0, 1] RGB image.

    ``resize``: shorter side before the centre crop (None: no resize); ``crop``: square crop side
    (None: any size); ``mean``/``std``: per-channel normalization; ``interpolation``: for the resize.
    """

    resize: int | None
    crop: int | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"


class Preprocess(nn.Module):
    """Differentiable preprocessing on a batch in [0, 1]: (resize + centre crop) then normalize.

    The geometric part runs only when the input is not already ``crop × crop``: images that the data
    loader has prepared for this classifier (:func:`liccs.data.prepare`) are only normalized.
    """

    def __init__(self, cfg: PreprocessConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` brought to the classifier's geometry (when not already ``crop × crop``), then normalized."""
        return (to_geometry(x, self.cfg) - self.mean) / self.std


def to_geometry(x: Tensor, cfg: PreprocessConfig) -> Tensor:
    """The geometric part of ``cfg`` on a float batch ``[N, 3, H, W]`` (no normalization); a no-op at
    ``crop × crop``."""
    if cfg.crop is None or tuple(x.shape[-2:]) == (cfg.crop, cfg.crop):
        return x
    return resize_center_crop(x, cfg.resize or cfg.crop, cfg.crop, cfg.interpolation)


def host_geometry(x: Tensor, cfg: PreprocessConfig) -> Tensor:
    """What a deployed classifier graph receives: :func:`to_geometry` on the host, clamped to [0, 1] (antialiased
    resampling overshoots by a rounding error, e.g. 1.0000001, which the engines' input checks refuse)."""
    return to_geometry(x, cfg).clamp(0, 1).contiguous()


class Classifier(nn.Module):
    """A classifier that takes [0, 1] RGB images: ``logits = net(preprocess(x))``."""

    def __init__(self, net: nn.Module, preprocess: PreprocessConfig, name: str, num_classes: int) -> None:
        super().__init__()
        self.net = net
        self.preprocess = Preprocess(preprocess)
        self.name = name
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        """Logits of [0, 1] RGB images: ``net(preprocess(x))``."""
        return self.net(self.preprocess(x))


@dataclass(frozen=True)
class ClassifierEntry:
    """A classifier: how to build it (random init), its preprocessing and where its weights live."""

    name: str
    build: Callable[[], nn.Module]
    preprocess: PreprocessConfig
    num_classes: int
    pretrained: Callable[[], Path | ResolvedWeights]
    dataset: str = "imagenet-1k"
    description: str = ""
    extra: dict[str, object] = field(default_factory=dict)


CLASSIFIERS: Registry[ClassifierEntry] = Registry("classifier")

TORCHVISION_MODELS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "convnext_tiny",
    "vit_b_16",
)


def _torchvision_entry(name: str) -> ClassifierEntry:
    weights = torchvision.models.get_model_weights(name).DEFAULT
    t = weights.transforms()
    preprocess = PreprocessConfig(
        resize=int(t.resize_size[0]),
        crop=int(t.crop_size[0]),
        mean=tuple(float(v) for v in t.mean),
        std=tuple(float(v) for v in t.std),
        interpolation=t.interpolation.value,
    )

    def pretrained() -> Path:
        return resolve_pretrained(weights.url, f"{name} ({weights})")

    return ClassifierEntry(
        name=name,
        build=lambda: torchvision.models.get_model(name, weights=None),
        preprocess=preprocess,
        num_classes=len(weights.meta["categories"]),
        pretrained=pretrained,
        description=f"torchvision {weights}",
        extra={"categories": weights.meta["categories"]},
    )


for _name in TORCHVISION_MODELS:
    CLASSIFIERS.register(_name, _torchvision_entry(_name))
