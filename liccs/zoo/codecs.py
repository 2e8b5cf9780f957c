"""Codec registry: every CompressAI image model, at the qualities CompressAI defines.

A model at a quality is written ``ARCH@qN`` (``ARCH@qN:ms-ssim`` for the MS-SSIM-trained weights).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from compressai import models as cm
from compressai.zoo import image as cz
from compressai.zoo.pretrained import load_pretrained
from torch import nn

from liccs.core import Registry
from liccs.core.errors import InputError, UnknownNameError, WeightsError
from liccs.families import CodecFamily, family_of_class
from liccs.zoo.weights import ResolvedWeights, resolve_pretrained

METRICS = ("mse", "ms-ssim")


@dataclass(frozen=True)
class CodecSpec:
    """One codec at one quality: ``arch@qN`` (``:metric`` when not mse)."""

    arch: str
    quality: int
    metric: str = "mse"

    def __str__(self) -> str:
        suffix = "" if self.metric == "mse" else f":{self.metric}"
        return f"{self.arch}@q{self.quality}{suffix}"


@dataclass(frozen=True)
class CodecEntry:
    """A codec architecture: how to build it at a quality and where its pretrained weights live.

    ``pretrained(quality, metric)`` returns a local checkpoint path or raises :class:`WeightsError`
    (CompressAI's zoo: hub cache → download; liccs's mini zoo: cache → train). ``family``: what the pipeline
    and the exporter do around its stages (:mod:`liccs.families`; ``family.name`` in tables).
    """

    arch: str
    family: CodecFamily
    qualities: tuple[int, ...]
    build: Callable[[int], nn.Module]
    pretrained: Callable[[int, str], Path | ResolvedWeights]
    metrics: tuple[str, ...] = ("mse",)
    description: str = ""
    extra: dict[str, object] = field(default_factory=dict)


CODECS: Registry[CodecEntry] = Registry("codec")

_NAME = re.compile(r"^(?P<arch>[a-z0-9_\-]+)@q(?P<q>\d+)(?::(?P<metric>[a-z\-]+))?$")


def parse_codec(name: str) -> CodecSpec:
    """Parse ``ARCH@qN[:metric]``; unknown architectures, qualities or metrics list the valid ones."""
    m = _NAME.match(name.strip())
    if not m:
        raise InputError(f"codec name {name!r} is not of the form ARCH@qN (e.g. bmshj2018-hyperprior@q3)")
    entry = CODECS.get(m["arch"])
    q = int(m["q"])
    if q not in entry.qualities:
        raise UnknownNameError(f"quality of {entry.arch}", f"q{q}", [f"q{x}" for x in entry.qualities])
    metric = m["metric"] or "mse"
    if metric not in entry.metrics:
        raise UnknownNameError(f"metric of {entry.arch}", metric, entry.metrics)
    return CodecSpec(entry.arch, q, metric)


def _compressai_pretrained(arch: str) -> Callable[[int, str], Path]:
    def resolve(quality: int, metric: str) -> Path:

        url = cz.model_urls.get(arch, {}).get(metric, {}).get(quality)
        if url is None:
            raise WeightsError(f"CompressAI publishes no pretrained weights for {arch}@q{quality} ({metric})")
        return resolve_pretrained(url, f"{arch}@q{quality}:{metric}")

    return resolve


def convert_compressai_state(state: dict) -> dict:
    """CompressAI's own key renames for its published checkpoints (DataParallel, old layouts)."""
    return load_pretrained(state)


#: CompressAI's image architectures: arch → (model class, paper); each one's family is its class's
#: (:func:`liccs.families.family_of_class`). The mini zoo trains three of them (``liccs.zoo.mini.train_codec``).
COMPRESSAI_ARCHS: dict[str, tuple[type[nn.Module], str]] = {
    "bmshj2018-factorized": (cm.FactorizedPrior, "Ballé et al., ICLR 2018 (factorized prior)"),
    "bmshj2018-factorized-relu": (cm.FactorizedPriorReLU, "Ballé et al., ICLR 2018, GDN→ReLU"),
    "bmshj2018-hyperprior": (cm.ScaleHyperprior, "Ballé et al., ICLR 2018 (scale hyperprior)"),
    "mbt2018-mean": (cm.MeanScaleHyperprior, "Minnen et al., NeurIPS 2018 (mean-scale hyperprior)"),
    "mbt2018": (cm.JointAutoregressiveHierarchicalPriors, "Minnen et al., NeurIPS 2018 (joint AR)"),
    "cheng2020-anchor": (cm.Cheng2020Anchor, "Cheng et al., CVPR 2020 (anchor)"),
    "cheng2020-attn": (cm.Cheng2020Attention, "Cheng et al., CVPR 2020 (attention)"),
}


def _register_compressai() -> None:
    for arch, (cls, paper) in COMPRESSAI_ARCHS.items():
        family = family_of_class(cls)
        cfg = cz.cfgs[arch]
        metrics = tuple(m for m in METRICS if m in cz.model_urls.get(arch, {})) or ("mse",)

        def build(quality: int, cls: type[nn.Module] = cls, cfg: dict = cfg) -> nn.Module:
            return cls(*cfg[quality])

        CODECS.register(
            arch,
            CodecEntry(
                arch=arch,
                family=family,
                qualities=tuple(sorted(cfg)),
                build=build,
                pretrained=_compressai_pretrained(arch),
                metrics=metrics,
                description=paper,
            ),
        )


_register_compressai()
