"""MI-FGSM: momentum iterative FGSM (Dong et al., "Boosting adversarial attacks with momentum",
CVPR 2018).

Threat model: white-box (used for transfer), L∞ or L2 ball of radius eps in [0, 1]. The gradient is
accumulated with decay ``mu`` after L1 normalization, ``g_{t+1} = mu · g_t + ∇L / ||∇L||_1`` (per image),
and the step follows ``sign(g_{t+1})`` (L∞) or ``g_{t+1} / ||g_{t+1}||_2`` (L2) with ``alpha = eps / steps``.
DI (Xie et al. 2019) combines with it as in DI-MI-FGSM.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from liccs.attack.base import register_attack
from liccs.attack.pgd import IterativeAttack
from liccs.attack.threat import per_sample_norm
from liccs.core.errors import InputError


@register_attack("mifgsm")
class MIFGSM(IterativeAttack):
    """Momentum iterative attack; ``decay`` is Dong et al.'s mu (1.0 in the paper)."""

    paper = "Dong et al., Boosting adversarial attacks with momentum, CVPR 2018"

    def __init__(self, model: nn.Module, *, decay: float = 1.0, **kwargs) -> None:
        if not math.isfinite(decay) or decay < 0:
            raise InputError(f"momentum decay must be a finite number ≥ 0, got {decay}")
        self.decay = float(decay)
        super().__init__(model, **kwargs)

    def init_state(self, x: Tensor) -> Any:
        """No momentum yet (the first step starts it)."""
        return None

    def step_direction(self, grad: Tensor, state: Any) -> tuple[Tensor, Any]:
        """The direction of the momentum ``g ← decay·g + ∇/‖∇‖₁`` (Dong et al. 2018), and the updated momentum."""
        g = grad / per_sample_norm(grad, 1).clamp_min(1e-12)
        momentum = g if state is None else state.mul_(self.decay).add_(g)
        return self.threat.direction(momentum), momentum

    def describe(self) -> dict[str, Any]:
        """As :meth:`IterativeAttack.describe`, with ``decay``."""
        return {**super().describe(), "decay": self.decay}
