"""FGSM: the fast gradient sign method (Goodfellow, Shlens & Szegedy, "Explaining and harnessing
adversarial examples", ICLR 2015).

Threat model: one step to the boundary of the eps ball, ``x' = clip_[0,1](x + eps · sign(∇_x L))`` for
L∞, or ``x + eps · ∇_x L / ||∇_x L||_2`` for L2 (the fast gradient method); white-box, gradient through
the codec's rounding surrogate. Targeted mode descends the loss toward the target class.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liccs.attack.base import Attack, register_attack
from liccs.core.errors import InputError


@register_attack("fgsm")
class FGSM(Attack):
    """One gradient step of size eps (``steps=1``, ``alpha=eps``, no random start; other values are refused)."""

    paper = "Goodfellow et al., Explaining and harnessing adversarial examples, ICLR 2015"
    one_step = True

    def __init__(self, model: nn.Module, *, steps: int = 1, alpha: float | None = None,
                 random_start: bool | None = None, **kwargs) -> None:
        if steps != 1 or random_start:
            raise InputError("FGSM is a single step from the clean image: steps must be 1 and random_start False")
        super().__init__(model, steps=1, alpha=alpha, random_start=False, **kwargs)
        if alpha is not None and alpha != self.threat.eps:
            raise InputError(f"FGSM steps by eps exactly; got alpha={alpha} for eps={self.threat.eps}")

    @staticmethod
    def default_alpha(eps: float, steps: int) -> float:
        """``eps``: FGSM takes one step of the full radius."""
        return eps

    def perturb(self, x: Tensor, labels: Tensor, gen: torch.Generator) -> Tensor:
        """One step of size eps along the gradient's direction from the clean image (Goodfellow et al. 2015)."""
        grad, total = self.gradient(x, labels, gen)
        self.losses = (total / x.shape[0]).unsqueeze(0)
        with torch.no_grad():
            # the same expression as one step of the iterative loop, so that PGD(steps=1) equals FGSM bit for bit
            return self.threat.project(x, x.clone().add_(self.threat.direction(grad), alpha=self.alpha))
