"""Iterative gradient attacks: I-FGSM (Kurakin, Goodfellow & Bengio, "Adversarial examples in the
physical world", ICLR-W 2017) and PGD (Madry et al., "Towards deep learning models resistant to
adversarial attacks", ICLR 2018).

Threat model: white-box, L∞ or L2 ball of radius eps intersected with [0, 1]; each step moves by
``alpha`` along the steepest-ascent direction of the objective (sign of the gradient for L∞, the
normalized gradient for L2) and projects back. I-FGSM starts at the clean image with ``alpha = eps/steps``;
PGD starts at a uniform random point of the ball with ``alpha = min(eps, 2.5·eps/steps)`` (Madry et al.).
Input diversity (DI, Xie et al. 2019) is an option of the whole family. By default each image gets the iterate
with the highest objective (best iterate, as in APGD, Croce & Hein, ICML 2020), not the last one; ``restarts``
reruns the loop from fresh random starts and keeps the best run per image.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from liccs.attack.base import Attack, register_attack
from liccs.core.errors import InputError
from liccs.core.progress import tqdm

MAX_RESTARTS = 1000


class IterativeAttack(Attack):
    """The shared step loop: ``x_{t+1} = Π(x_t + alpha · direction(g_t))``; subclasses may change the direction.

    Args:
        restarts: runs of the whole loop (≥ 1); every run after the first starts from a fresh random point of the
            ball, and each image keeps the run whose returned point has the highest objective.
        best_iterate: return per image the iterate with the highest objective (the objectives the gradient
            steps already compute, plus one evaluation of the last iterate), not the last one (Croce & Hein 2020).
        **kwargs: as :class:`~liccs.attack.base.Attack`.
    """

    def __init__(self, model: nn.Module, *, restarts: int = 1, best_iterate: bool = True, **kwargs: Any) -> None:
        if not isinstance(restarts, int) or isinstance(restarts, bool) or not 1 <= restarts <= MAX_RESTARTS:
            raise InputError(f"restarts must be an integer in [1, {MAX_RESTARTS}], got {restarts!r}")
        if not isinstance(best_iterate, bool):
            raise InputError(f"best_iterate must be true or false, got {best_iterate!r}")
        self.restarts = restarts
        self.best_iterate = best_iterate
        super().__init__(model, **kwargs)
        self.final_losses: Tensor | None = None  #: the objective per image at the returned point, after a call

    def init_state(self, x: Tensor) -> Any:
        """Per-call state of the direction rule (momentum buffer); none by default."""
        return None

    def step_direction(self, grad: Tensor, state: Any) -> tuple[Tensor, Any]:
        """The unit step direction for ``grad`` in this threat model."""
        return self.threat.direction(grad), state

    def start(self, x: Tensor, gen: torch.Generator, restart: int) -> Tensor:
        """The first iterate of run ``restart``: a random point of the ball (``random_start`` or any restart after
        the first), else the clean images."""
        if not (self.random_start or restart > 0):
            return x.clone()
        delta = self.threat.random_delta(x.cpu() if x.device.type != "cpu" else x, gen).to(x.device)
        return self.threat.project(x, x + delta)

    def run_from(self, x: Tensor, x_adv: Tensor, labels: Tensor, gen: torch.Generator,
                 history: list[Tensor]) -> tuple[Tensor, Tensor | None]:
        """One run of the loop from ``x_adv``: (the returned point, its objective per image, None when not needed)."""
        state = self.init_state(x)
        best, best_loss = x_adv, None
        for _ in tqdm(range(self.steps), desc=self.name, disable=not self.progress, leave=False):
            grad, loss = self.gradient_losses(x_adv, labels, gen)
            history.append(loss.sum())
            if self.best_iterate:
                best, best_loss = keep_better(best, best_loss, x_adv, loss)
            direction, state = self.step_direction(grad, state)
            with torch.no_grad():
                x_adv = self.threat.project(x, x_adv.add_(direction, alpha=self.alpha))
        if not self.best_iterate and self.restarts == 1:
            return x_adv, None
        return keep_better(best, best_loss, x_adv, self.losses_at(x_adv, labels, gen))

    def perturb(self, x: Tensor, labels: Tensor, gen: torch.Generator) -> Tensor:
        """Run the loop ``restarts`` times and keep per image the run with the highest objective."""
        history: list[Tensor] = []
        best, best_loss = None, None
        for r in range(self.restarts):
            adv, loss = self.run_from(x, self.start(x, gen, r), labels, gen, history)
            best, best_loss = (adv, loss) if best is None else keep_better(best, best_loss, adv, loss)
        self.losses = torch.stack(history) / x.shape[0]
        self.final_losses = best_loss
        return best

    def describe(self) -> dict[str, Any]:
        """As :meth:`Attack.describe`, with ``restarts`` and ``best_iterate``."""
        return {**super().describe(), "restarts": self.restarts, "best_iterate": self.best_iterate}


def keep_better(best: Tensor, best_loss: Tensor | None, cand: Tensor, cand_loss: Tensor) -> tuple[Tensor, Tensor]:
    """Per image, ``cand`` where its objective exceeds ``best_loss`` (``None``: nothing kept yet), else ``best``."""
    if best_loss is None:
        return cand.detach().clone(), cand_loss.detach().clone()
    better = cand_loss > best_loss
    mask = better.view(-1, *([1] * (cand.dim() - 1)))
    return torch.where(mask, cand, best), torch.where(better, cand_loss, best_loss)


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
        """``min(eps, 2.5·eps/steps)`` (Madry et al. 2018)."""
        return min(eps, 2.5 * eps / steps)
