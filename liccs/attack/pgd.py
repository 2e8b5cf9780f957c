"""Iterative gradient attacks: I-FGSM (Kurakin, Goodfellow & Bengio, "Adversarial examples in the
physical world", ICLR-W 2017) and PGD (Madry et al., "Towards deep learning models resistant to
adversarial attacks", ICLR 2018).

Threat model: white-box, L∞ or L2 ball of radius eps intersected with [0, 1]; each step moves by
``alpha`` along the steepest-ascent direction of the objective (sign of the gradient for L∞, the
normalized gradient for L2) and projects back. I-FGSM starts at the clean image with ``alpha = eps/steps``;
PGD starts at a uniform random point of the ball with ``alpha = min(eps, 2.5·eps/steps)`` (Madry et al.).
Input diversity (DI, Xie et al. 2019) is an option of the whole family; the final iterate is returned.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from liccs.attack.base import Attack, register_attack
from liccs.core.progress import tqdm


class IterativeAttack(Attack):
    """The shared step loop: ``x_{t+1} = Π(x_t + alpha · direction(g_t))``; subclasses may change the direction."""

    def init_state(self, x: Tensor) -> Any:
        """Per-call state of the direction rule (momentum buffer); none by default."""
        return None

    def step_direction(self, grad: Tensor, state: Any) -> tuple[Tensor, Any]:
        """The unit step direction for ``grad`` in this threat model."""
        return self.threat.direction(grad), state

    def perturb(self, x: Tensor, labels: Tensor, gen: torch.Generator) -> Tensor:
        x_adv = x.clone()
        if self.random_start:
            delta = self.threat.random_delta(x.cpu() if x.device.type != "cpu" else x, gen).to(x.device)
            x_adv = self.threat.project(x, x + delta)
        state = self.init_state(x)
        history: list[Tensor] = []
        for _ in tqdm(range(self.steps), desc=self.name, disable=not self.progress, leave=False):
            grad, total = self.gradient(x_adv, labels, gen)
            history.append(total)
            direction, state = self.step_direction(grad, state)
            with torch.no_grad():
                x_adv = self.threat.project(x, x_adv.add_(direction, alpha=self.alpha))
        self.losses = torch.stack(history) / x.shape[0]
        return x_adv


@register_attack("ifgsm")
class IFGSM(IterativeAttack):
    """I-FGSM / BIM: iterative FGSM from the clean image, ``alpha = eps / steps`` by default."""

    paper = "Kurakin et al., Adversarial examples in the physical world, ICLR Workshop 2017"


@register_attack("pgd")
class PGD(IterativeAttack):
    """PGD: iterative steps from a random start in the ball, ``alpha = min(eps, 2.5·eps/steps)`` by default."""

    paper = "Madry et al., Towards deep learning models resistant to adversarial attacks, ICLR 2018"
    default_random_start = True

    @staticmethod
    def default_alpha(eps: float, steps: int) -> float:
        return min(eps, 2.5 * eps / steps)
