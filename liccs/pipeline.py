"""LICCS: image → codec at quality q → reconstruction → classifier preprocessing → classifier.

One ``nn.Module`` taking images in [0, 1], with a named rounding surrogate on the gradient path
(:mod:`liccs.core.rounding`). ``rounding="hard"`` is the deployed behaviour (no gradient).

:func:`codec_forward` re-implements CompressAI's forward per model family (:mod:`liccs.families`) so that
the surrogate, not ``torch.round``, crosses each quantizer:

- factorized: ``ŷ = Q(y - m) + m`` (m: the entropy bottleneck's medians).
- scale hyperprior: ``ẑ = Q(z - m) + m``; ``ŷ = Q(y)`` (zero-mean Gaussian), as CompressAI's coder does.
- mean-scale hyperprior: ``ŷ = Q(y - μ) + μ`` with ``μ`` from ``h_s(ẑ)``, as CompressAI's coder does.
- autoregressive (mbt2018, cheng2020): the differentiable path follows CompressAI's forward
  (``ŷ = Q(y)`` feeds the context model and ``g_s``; the likelihood is of ``Q(y - μ) + μ``). The deployed
  coder quantizes ``y - μ`` sequentially, so with ``rounding="hard"`` this module runs CompressAI's real
  ``compress``/``decompress`` instead, and its reconstruction is the deployed one exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from liccs.core import crop_to, pad_to_multiple
from liccs.core.errors import InputError
from liccs.core.rounding import Surrogate, get_surrogate
from liccs.families import CodecFamily, family_of, likelihood_bpp

#: Every CompressAI image model downsamples by at most 2**6.
PAD_MULTIPLE = 64


@dataclass
class CodecOutput:
    """What a codec forward gives: the reconstruction and the likelihoods of each latent."""

    x_hat: Tensor
    likelihoods: dict[str, Tensor] = field(default_factory=dict)

    def bpp(self, num_pixels: int | None = None) -> Tensor:
        """Estimated bits per pixel per image, ``Σ -log2 p / (H·W)`` (the likelihood estimate of the rate)."""
        n = num_pixels or self.x_hat.shape[-2] * self.x_hat.shape[-1]
        return likelihood_bpp(self.likelihoods.values(), n)


def codec_forward(codec: nn.Module, x: Tensor, rounding: str | Surrogate = "ste") -> CodecOutput:
    """Run a CompressAI model on ``x`` (sides multiples of 64) with ``rounding`` crossing each quantizer."""
    q = get_surrogate(rounding) if isinstance(rounding, str) else rounding
    x_hat, likelihoods = family_of(codec).forward(codec, x, q)
    return CodecOutput(x_hat, likelihoods)


@torch.no_grad()
def codec_roundtrip(codec: nn.Module, x: Tensor) -> tuple[Tensor, list[int]]:
    """CompressAI's real ``compress`` → ``decompress`` on ``x`` (any size): (x̂, bytes per image)."""
    xp, size = pad_to_multiple(x, PAD_MULTIPLE)
    out = codec.compress(xp)
    nbytes = [sum(len(s[i]) for s in out["strings"]) for i in range(x.shape[0])]
    x_hat = codec.decompress(out["strings"], out["shape"])["x_hat"]
    return crop_to(x_hat, size), nbytes


class LICCS(nn.Module):
    """Learned-image-compression + classifier system (paper A's threat target) as one module.

    Args:
        codec: a CompressAI model (entropy tables built), or None for the classifier alone.
        classifier: a :class:`liccs.zoo.Classifier` (takes [0, 1] images).
        rounding: a surrogate name from :data:`liccs.core.rounding.SURROGATES` (``hard`` = deployed, no gradient).
        clamp: clamp the reconstruction to [0, 1], as the deployed decoder does.
    """

    def __init__(self, codec: nn.Module | None, classifier: nn.Module, rounding: str = "ste",
                 clamp: bool = True) -> None:
        super().__init__()
        self.codec = codec
        self.classifier = classifier
        self.rounding = rounding
        self._surrogate = get_surrogate(rounding)
        self.clamp = clamp
        if codec is not None:
            self.family: CodecFamily = family_of(codec)

    def reconstruct(self, x: Tensor) -> CodecOutput:
        """The codec's reconstruction of ``x`` ``[B, 3, H, W]`` in [0, 1] (any H, W), with likelihoods."""
        if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise InputError(f"LICCS expects float images [B, 3, H, W] in [0, 1], got {tuple(x.shape)} {x.dtype}")
        if self.codec is None:
            return CodecOutput(x, {})
        if self.rounding == "hard" and not self.family.forward_is_decode:
            x_hat, _ = codec_roundtrip(self.codec, x)
            return CodecOutput(x_hat, {})
        xp, size = pad_to_multiple(x, PAD_MULTIPLE)
        out = codec_forward(self.codec, xp, self._surrogate)
        x_hat = out.x_hat.clamp(0, 1) if self.clamp else out.x_hat
        lik = {k: v for k, v in out.likelihoods.items()}
        return CodecOutput(crop_to(x_hat, size), lik)

    def forward_all(self, x: Tensor) -> tuple[Tensor, CodecOutput]:
        """(logits, codec output) in one pass."""
        rec = self.reconstruct(x)
        return self.classifier(rec.x_hat), rec

    def forward(self, x: Tensor) -> Tensor:
        """The classifier's logits on the codec's reconstruction of ``x``."""
        return self.forward_all(x)[0]

    def describe(self) -> dict[str, Any]:
        """Names, weights and the surrogate: what every result records about this pipeline."""
        def info(m: nn.Module | None) -> Any:
            w = getattr(m, "liccs_weights", None)
            return w.to_dict() if w is not None else None

        return {
            "codec": getattr(self.codec, "liccs_name", None if self.codec is None else type(self.codec).__name__),
            "classifier": getattr(self.classifier, "liccs_name", type(self.classifier).__name__),
            "rounding": self.rounding,
            "codec_weights": info(self.codec),
            "classifier_weights": info(self.classifier),
        }


def psnr(a: Tensor, b: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR per image (dB) between two batches in [0, data_range]; inf where identical."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-20)).masked_fill(mse == 0, math.inf)


def module_device(module: torch.nn.Module, default: torch.device | str = "cpu") -> torch.device:
    """The device of ``module``'s first parameter or buffer; ``default`` when it has none."""
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device(default)
