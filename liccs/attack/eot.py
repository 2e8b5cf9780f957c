"""Expectation over Transformation (EoT; Athalye et al., "Synthesizing robust adversarial examples",
ICML 2018), as a wrapper over any randomness of the attacked model.

``EoT(model, samples=n, transform=t)`` is an attack target: the attack averages its gradient over ``n``
independent forwards per step, ``∇ E_T[L(T(x))] ≈ (1/n) Σ_i ∇ L(T_i(x))``. The randomness can be an
input transform given here (``transform(x, generator) -> x'``, e.g. :class:`~liccs.attack.diversity.InputDiversity`
or a random invertible transform), the ``noise`` rounding surrogate inside a member, or a random member
forward such as the K-way defense's transform draw (:class:`~liccs.papers.b.adaptive.RandomTransformLICCS`).
The gradients are accumulated one draw at a time (memory of one forward).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from liccs.attack.ensemble import EnsembleOutput, as_ensemble
from liccs.attack.randomness import RandomSource
from liccs.core.errors import InputError

InputTransform = Callable[[Tensor, torch.Generator], Tensor]


class EoT(nn.Module, RandomSource):
    """A target whose gradient the attack averages over ``samples`` random draws per step.

    Args:
        model: a classifier, LICCS pipeline, :class:`~liccs.attack.ensemble.Ensemble`, or a member with a
            random forward.
        samples: draws per step (≥ 1).
        transform: an optional random input transform applied before the model.
    """

    is_attack_target = True

    def __init__(self, model: nn.Module, samples: int = 8, transform: InputTransform | None = None) -> None:
        super().__init__()
        if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
            raise InputError(f"EoT samples must be an integer ≥ 1, got {samples!r}")
        self.target = as_ensemble(model)
        self.samples = samples
        self.transform = transform

    @property
    def reduce(self) -> str:
        """The wrapped target's reduction (``loss`` or ``logits``)."""
        return self.target.reduce

    @property
    def names(self) -> list[str]:
        """The wrapped target's member names."""
        return self.target.names

    @property
    def members(self) -> nn.ModuleList:
        """The wrapped target's members."""
        return self.target.members

    @property
    def num_classes(self) -> int | None:
        """The wrapped target's class count, or None."""
        return self.target.num_classes

    def forward_all(self, x: Tensor, logits: bool = True) -> EnsembleOutput:
        """One draw: the target's forward on ``x`` after the input transform (if any), with the attack's generator."""
        if self.transform is not None:
            x = self.transform(x, self.rng())
        return self.target.forward_all(x, logits)

    def forward(self, x: Tensor) -> Tensor:
        """Mean logits over members for one draw."""
        return self.forward_all(x).logits.mean(0)

    def describe(self) -> dict[str, Any]:
        """The target's description plus the sample count and the input transform."""
        t = self.transform
        return {**self.target.describe(), "eot_samples": self.samples,
                "eot_transform": t.describe() if hasattr(t, "describe") else (repr(t) if t else None)}
