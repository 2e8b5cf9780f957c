"""Threat models: the L∞ and L2 balls around the clean images, intersected with the [0, 1] pixel box.

Every operation is batched (one call per step whatever the batch size) and stays on the device: no
host synchronization. Random starts draw from a caller-supplied ``torch.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from liccs.core.errors import InputError

NORMS = ("linf", "l2")

#: Guards the division by a gradient's norm (a zero gradient gives a zero step, not NaN).
_TINY = 1e-12


def per_sample_norm(t: Tensor, p: float) -> Tensor:
    """The ``p``-norm of each sample of ``t`` ``[B, ...]`` as ``[B, 1, ..., 1]`` (broadcastable)."""
    flat = t.flatten(1)
    n = flat.abs().amax(1) if math.isinf(p) else flat.norm(p=p, dim=1)
    return n.view(-1, *([1] * (t.dim() - 1)))


@dataclass(frozen=True)
class ThreatModel:
    """A norm ball of radius ``eps`` around each clean image (pixel scale [0, 1]).

    Args:
        norm: ``"linf"`` or ``"l2"``.
        eps: the radius; for L∞ in (0, 1], for L2 positive (checked against the image size at attack time).
    """

    norm: str
    eps: float

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise InputError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not isinstance(self.eps, (int, float)) or not math.isfinite(self.eps) or self.eps <= 0:
            raise InputError(f"eps must be a finite number > 0, got {self.eps!r}")
        if self.norm == "linf" and self.eps > 1:
            raise InputError(f"an L∞ eps above 1 covers the whole pixel box; got {self.eps}")

    def check_images(self, images: Tensor) -> None:
        """L2 radius against the largest possible perturbation of these images (sqrt of #pixel values)."""
        if self.norm == "l2" and self.eps > math.sqrt(images[0].numel()):
            raise InputError(f"L2 eps {self.eps} exceeds the diameter of the pixel box "
                             f"({math.sqrt(images[0].numel()):.1f}) for images of shape {tuple(images.shape[1:])}")

    def random_delta(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """A random start, uniform in the ball (L2: Gaussian direction, radius ``eps·u^(1/d)``).

        Drawn from the attack's CPU generator and then moved to ``x``'s device, so a seed gives the same start
        on every device (a CPU generator cannot draw on a GPU).
        """
        if self.norm == "linf":
            u = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)
            return u.mul_(2 * self.eps).sub_(self.eps)
        d = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        r = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=gen, dtype=x.dtype).to(x.device)
        return d / (per_sample_norm(d, 2) + _TINY) * (self.eps * r.pow(1.0 / x[0].numel()))

    def direction(self, grad: Tensor) -> Tensor:
        """Steepest ascent direction of unit norm: ``sign(g)`` (L∞) or ``g / ||g||_2`` (L2)."""
        if self.norm == "linf":
            return grad.sign()
        return grad / (per_sample_norm(grad, 2) + _TINY)

    def project(self, x: Tensor, x_adv: Tensor) -> Tensor:
        """The point of the ball around ``x`` nearest ``x_adv`` (L∞: exact; L2: radial), clamped to [0, 1].

        Clamping after the projection cannot leave the ball: since ``x`` is in [0, 1], clamping only
        shrinks each coordinate of the perturbation.
        """
        delta = x_adv - x
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            delta = delta * (self.eps / (per_sample_norm(delta, 2) + _TINY)).clamp(max=1.0)
        return (x + delta).clamp_(0.0, 1.0)

    def distance(self, x: Tensor, x_adv: Tensor) -> Tensor:
        """Per-sample distance in this norm, ``[B]``."""
        return per_sample_norm(x_adv - x, math.inf if self.norm == "linf" else 2).flatten()
