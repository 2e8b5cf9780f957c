"""APGD: auto-PGD (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020), the gradient half of AutoAttack.

Threat model: white-box, L∞ or L2 ball of radius eps intersected with [0, 1]; any objective of
:mod:`liccs.attack.objectives` (``ce`` is APGD-CE, ``dlr`` APGD-DLR, ``targeted=True`` with ``dlr`` APGD-T).
The step size is not a parameter: it starts at ``η = 2·eps`` and is halved, per image, at checkpoints
``w_j = ⌈p_j · steps⌉`` (``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)``) when fewer than
``rho`` of the steps since the last checkpoint raised the objective, or when neither the step size nor the best
objective changed since then; after a halving the image restarts from its best point. Each step mixes the
projected gradient step ``z`` with the previous move: ``x_{k+1} = Π(x_k + m·(z − x_k) + (1 − m)·(x_k − x_{k−1}))``
with momentum ``m = 0.75``. Every image returns its best iterate; ``restarts`` runs from fresh random starts.
``steps`` counts gradient evaluations, as for PGD, so the two compare at equal cost.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from liccs.attack.base import register_attack
from liccs.attack.pgd import IterativeAttack, keep_better
from liccs.core.errors import InputError
from liccs.core.progress import tqdm


def checkpoints(steps: int) -> list[int]:
    """The iterations (in ``(0, steps)``) after which APGD may halve its step size (Croce & Hein 2020, §3.2)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({w for w in (math.ceil(v * steps - 1e-9) for v in p[1:]) if 0 < w < steps})


@register_attack("apgd")
class APGD(IterativeAttack):
    """Auto-PGD with momentum, checkpoint step-size halving, best iterate per image and restarts.

    Args:
        model: as :class:`~liccs.attack.base.Attack`.
        momentum: ``m`` of the step (0.75 in the paper; 1 is plain projected gradient ascent).
        rho: the share of improving steps below which a checkpoint halves the step size (0.75).
        **kwargs: as :class:`~liccs.attack.pgd.IterativeAttack` (``alpha`` is refused: the step size is APGD's own).
    """

    paper = ("Croce & Hein, Reliable evaluation of adversarial robustness with an ensemble of diverse "
             "parameter-free attacks, ICML 2020")
    default_random_start = True
    own_step_size = True

    def __init__(self, model: nn.Module, *, momentum: float = 0.75, rho: float = 0.75, **kwargs: Any) -> None:
        if kwargs.get("alpha") is not None:
            raise InputError("APGD sets its own step size (2·eps, halved at checkpoints); do not give alpha")
        if kwargs.get("best_iterate", True) is not True:
            raise InputError("APGD always returns the best iterate (best_iterate must stay true)")
        for key, v in (("momentum", momentum), ("rho", rho)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
                raise InputError(f"APGD {key} must be a number in (0, 1], got {v!r}")
        self.momentum, self.rho = float(momentum), float(rho)
        super().__init__(model, **kwargs)

    @staticmethod
    def default_alpha(eps: float, steps: int) -> float:
        """``eps``, recorded only: APGD's step starts at ``2·eps`` and is halved at checkpoints."""
        return eps  # recorded only; the step actually starts at 2·eps

    def run_from(self, x: Tensor, x_adv: Tensor, labels: Tensor, gen: torch.Generator,
                 history: list[Tensor]) -> tuple[Tensor, Tensor]:
        """One APGD run from ``x_adv`` (Croce & Hein 2020, Algorithm 1): (the best iterate, its objective) per image."""
        b, view = x.shape[0], (-1,) + (1,) * (x.dim() - 1)
        eta = torch.full((b,), 2 * self.threat.eps, dtype=x.dtype, device=x.device)
        grad, loss = self.gradient_losses(x_adv, labels, gen)
        history.append(loss.sum())
        best, best_loss = keep_better(x_adv, None, x_adv, loss)
        grad_best = grad.clone()
        x_prev = x_adv
        marks = set(checkpoints(self.steps))
        last_mark, rises = 0, torch.zeros(b, device=x.device)
        halved_last = torch.zeros(b, dtype=torch.bool, device=x.device)
        best_at_mark = best_loss.clone()
        for k in tqdm(range(self.steps), desc=self.name, disable=not self.progress, leave=False):
            with torch.no_grad():
                z = self.threat.project(x, x_adv + eta.view(view) * self.threat.direction(grad))
                if k > 0:
                    m = self.momentum
                    z = self.threat.project(x, x_adv + m * (z - x_adv) + (1 - m) * (x_adv - x_prev))
                x_prev, x_adv = x_adv, z
            if k == self.steps - 1:  # the last point needs no gradient
                new_loss = self.losses_at(x_adv, labels, gen)
            else:
                grad, new_loss = self.gradient_losses(x_adv, labels, gen)
                history.append(new_loss.sum())
            rises += (new_loss > loss).to(rises.dtype)
            loss = new_loss
            better = loss > best_loss
            best, best_loss = keep_better(best, best_loss, x_adv, loss)
            grad_best = torch.where(better.view(view), grad, grad_best)
            if k + 1 in marks:
                halve = (rises < self.rho * (k + 1 - last_mark)) | (~halved_last & (best_loss <= best_at_mark))
                eta = torch.where(halve, eta / 2, eta)
                back = halve.view(view)
                x_adv = torch.where(back, best, x_adv)
                x_prev = torch.where(back, best, x_prev)  # no momentum out of a restart from the best point
                grad = torch.where(back, grad_best, grad)
                loss = torch.where(halve, best_loss, loss)
                halved_last, best_at_mark = halve, best_loss.clone()
                last_mark, rises = k + 1, torch.zeros_like(rises)
        return best, best_loss

    def describe(self) -> dict[str, Any]:
        """As :meth:`IterativeAttack.describe`, with APGD's step size rule, momentum and ``rho``."""
        return {**super().describe(), "alpha": None, "step_size": "2·eps, halved at checkpoints",
                "momentum": self.momentum, "rho": self.rho}
