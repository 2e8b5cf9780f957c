"""The adaptive attack's model of the K-way defense (paper B): the defended pipeline's differentiable
forward for one transform draw, ``x ↦ T⁻¹(g_s(Q̃(g_a(T(x)))))`` then the classifier (if any).

Each forward draws ``T`` uniformly from a pool (the defense's K candidates when the attacker knows the
seed, or the whole transform pool when not) with the attack's generator; wrapped in
:class:`~liccs.attack.eot.EoT`, the attack averages its gradient over draws (Athalye et al., ICML 2018).
The uniform draw stands in for the defense's data-dependent choice, which has no gradient. ``fixed``
pins one transform (the forward "for a given transform").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from liccs.attack.randomness import RandomSource
from liccs.core.errors import InputError
from liccs.papers.b.defense import KWayDefense
from liccs.papers.b.transforms import Invertible, get_transform, get_transforms
from liccs.pipeline import LICCS, CodecOutput


class RandomTransformLICCS(nn.Module, RandomSource):
    """LICCS (or a bare codec when ``classifier`` is None) behind a random invertible transform.

    Args:
        codec: a CompressAI model (the gradient path is PyTorch's).
        classifier: the classifier after the codec, or None for codec objectives.
        transforms: the pool drawn from (the identity may be included).
        rounding: the surrogate crossing the quantizers.
        fixed: always use this transform (an index into ``transforms``) instead of drawing.
    """

    def __init__(self, codec: nn.Module, classifier: nn.Module | None, transforms: Sequence[str | Invertible],
                 rounding: str = "ste", fixed: int | None = None) -> None:
        super().__init__()
        self.transforms = get_transforms(transforms)
        if not self.transforms:
            raise InputError("the transform pool is empty")
        if fixed is not None and not 0 <= fixed < len(self.transforms):
            raise InputError(f"fixed transform index {fixed} is outside the pool of {len(self.transforms)}")
        self.pipe = LICCS(codec, classifier if classifier is not None else nn.Identity(), rounding=rounding)
        self.codec = codec
        self.classifier = classifier
        self.rounding = rounding
        self.fixed = fixed
        self.last: str | None = None  #: the transform of the latest forward

    @classmethod
    def from_defense(cls, defense: KWayDefense, classifier: nn.Module | None, rounding: str = "ste",
                     pool: str = "candidates") -> RandomTransformLICCS:
        """The adaptive model of ``defense``: draws over its K candidates or over its whole pool (+ identity)."""
        if pool not in ("candidates", "all"):
            raise InputError(f"pool must be 'candidates' or 'all', got {pool!r}")
        ts = defense.candidates if pool == "candidates" else [get_transform("identity"), *defense.pool]
        return cls(defense.codec, classifier, ts, rounding)

    def draw(self) -> Invertible:
        """The transform of this forward: the ``fixed`` one, else a uniform draw from the pool with the attack's
        generator."""
        i = self.fixed if self.fixed is not None else int(torch.randint(len(self.transforms), (), generator=self.rng()))
        return self.transforms[i]

    def reconstruct(self, x: Tensor) -> CodecOutput:
        """``T⁻¹(g_s(Q̃(g_a(T(x)))))`` for a drawn ``T`` (recorded in ``last``), with the likelihoods of ``T(x)``."""
        t = self.draw()
        self.last = t.name
        rec = self.pipe.reconstruct(t(x))
        return CodecOutput(t.inverse(rec.x_hat), rec.likelihoods)

    def forward_all(self, x: Tensor) -> tuple[Tensor, CodecOutput]:
        """(logits, codec output) of one transform draw; refused without a classifier."""
        if self.classifier is None:
            raise InputError("this defended model has no classifier")
        rec = self.reconstruct(x)
        return self.classifier(rec.x_hat), rec

    def forward(self, x: Tensor) -> Tensor:
        """The classifier's logits for one transform draw."""
        return self.forward_all(x)[0]

    def describe(self) -> dict[str, Any]:
        """The pipeline's description plus the defense's transform pool and the fixed index."""
        d = self.pipe.describe()
        return {**d, "classifier": None if self.classifier is None else d["classifier"],
                "defense_transforms": [t.name for t in self.transforms], "fixed": self.fixed}
