"""The selection-aware adaptive attack on the K-way defense of paper B ("A training-free defense framework for
robust learned image compression"): differentiate through the defense's choice instead of averaging over it.

For the candidate set (the deterministic defense's K transforms, or for the random defense a fresh per-image
draw of identity + K−1 family members at every step, from the attack's generator), every branch's RD loss

    ``L_k = R_k + λ · 255² · MSE(T_k⁻¹(x̂_k), x_adv)``

is computed through the rounding surrogate (``R_k``: the likelihood bpp), the choice is relaxed to a soft
minimum ``w = softmax(−L / τ)``, and the attack maximizes ``Σ_k w_k · objective_k``: the distortion of the
chosen branch against the attacked input (``distortion``) or its rate (``rate``); any distortion objective of
:mod:`liccs.attack.objectives` (``distortion-clean``: against the clean image) reads the weighted reconstruction.

``hard=True`` applies the defense's own rule instead: the argmin of the RD loss, with the gradient flowing through
the chosen branch only (BPDA through the arg-min, Athalye et al., ICML 2018); the other branches run without a
gradient. Wrapped in :class:`~liccs.attack.eot.EoT`, that is EoT over the defense's own candidate distribution with
its selection rule applied to every draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from liccs.attack.ensemble import CodecOnly, EnsembleOutput
from liccs.attack.objectives import Objective
from liccs.attack.randomness import RandomSource
from liccs.core.errors import InputError
from liccs.papers.b.defense import KWayDefense, codec_name
from liccs.papers.b.defense_random import RandomKWayDefense
from liccs.pipeline import CodecOutput

KINDS = ("distortion", "rate")


@dataclass
class SelectedOutput(EnsembleOutput):
    """Every branch of one forward: reconstructions ``[K]`` of ``[B, 3, H, W]``, rate ``[B, K]``, RD loss and
    the soft-minimum weights ``[B, K]``."""

    branch_x_hat: list[Tensor] | None = None
    branch_bpp: Tensor | None = None
    rd: Tensor | None = None
    weights: Tensor | None = None


class SelectionAware(nn.Module, RandomSource):
    """The defended codec with a differentiable (soft-minimum) candidate choice, as an attack target.

    Args:
        defense: a :class:`KWayDefense` (fixed candidates) or :class:`RandomKWayDefense` (drawn per step).
        rounding: the surrogate crossing the quantizers.
        tau: temperature of the soft minimum, in the RD loss's units (bpp); unused when ``hard``.
        hard: the defense's hard arg-min (BPDA through it) instead of the soft minimum.
    """

    is_attack_target = True
    reduce = "loss"
    num_classes = None
    samples = 1

    def __init__(self, defense: KWayDefense, rounding: str = "ste", tau: float = 0.02, hard: bool = False) -> None:
        super().__init__()
        if not tau > 0:
            raise InputError(f"tau must be > 0, got {tau!r}")
        self.defense, self.tau, self.rounding, self.hard = defense, float(tau), rounding, bool(hard)
        self.random = isinstance(defense, RandomKWayDefense)
        self.transforms = defense.family if self.random else defense.candidates
        self.member = CodecOnly(defense.codec, rounding)
        self.members = nn.ModuleList([self.member])
        self.names = [codec_name(defense.codec)]

    def draw(self, b: int) -> Tensor:
        """Family indices ``[B, K]`` of this step's candidates (slot 0 the identity)."""
        k = self.defense.k
        if not self.random:
            return torch.arange(k).expand(b, k)
        gen, n = self.rng(), len(self.transforms) - 1
        return torch.stack([torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(n, generator=gen)[: k - 1]])
                            for _ in range(b)])

    def forward_all(self, x: Tensor, logits: bool = False) -> SelectedOutput:
        """Every candidate branch of ``x`` (one draw), its rate, RD loss and soft-minimum weights; ``logits`` is
        refused."""
        if logits:
            raise InputError("the selection-aware target is a bare codec: no logits")
        b, k = x.shape[0], self.defense.k
        index = self.draw(b)
        if self.hard:
            with torch.no_grad():
                branch, rate = self._branches(x, index)
                rd = self._rd(x, branch, rate)
            pick = rd.argmin(1)
            w = torch.nn.functional.one_hot(pick, k).to(rd.dtype)
            chosen, chosen_rate = self._branches(x, index.gather(1, pick[:, None]))  # the gradient path
            branch = [torch.where(w[:, j, None, None, None].bool(), chosen[0], branch[j]) for j in range(k)]
            rate = torch.where(w.bool(), chosen_rate.expand(b, k), rate)
            return SelectedOutput(None, [CodecOutput(chosen[0], {})], x, "loss", None, branch, rate, rd, w)
        branch, rate = self._branches(x, index)
        rd = self._rd(x, branch, rate)
        w = torch.softmax(-rd / self.tau, 1)
        soft = sum(w[:, j, None, None, None] * branch[j] for j in range(k))
        return SelectedOutput(None, [CodecOutput(soft, {})], x, "loss", None, branch, rate, rd, w)

    def _branches(self, x: Tensor, index: Tensor) -> tuple[list[Tensor], Tensor]:
        """Reconstructions (one ``[B, 3, H, W]`` per column of ``index``) and rates ``[B, columns]`` of the
        candidates ``index`` (family indices ``[B, columns]``), each transform run once on its images."""
        b, k = index.shape
        pixels = int(x.shape[-2]) * int(x.shape[-1])
        rec: dict[tuple[int, int], Tensor] = {}
        bpp: dict[tuple[int, int], Tensor] = {}
        for f in sorted(set(index.flatten().tolist())):
            where = (index == f).nonzero().tolist()
            t = self.transforms[f]
            out = self.member.reconstruct(t(x[[i for i, _ in where]]))
            x_hat, rate = t.inverse(out.x_hat), out.bpp(pixels)
            for n, (i, j) in enumerate(where):
                rec[(i, j)], bpp[(i, j)] = x_hat[n], rate[n]
        branch = [torch.stack([rec[(i, j)] for i in range(b)]) for j in range(k)]
        return branch, torch.stack([torch.stack([bpp[(i, j)] for j in range(k)]) for i in range(b)])

    def _rd(self, x: Tensor, branch: list[Tensor], rate: Tensor) -> Tensor:
        """The defense's RD loss ``R + λ·255²·MSE(x̂, x)`` per image and candidate ``[B, K]``."""
        mse = torch.stack([(xh - x).pow(2).flatten(1).mean(1) for xh in branch], 1)
        return rate + self.defense.lmbda * 255.0**2 * mse

    def forward(self, x: Tensor) -> Tensor:
        """The soft-minimum-weighted reconstruction over the candidates."""
        return self.forward_all(x).recs[0].x_hat

    def describe(self) -> dict[str, Any]:
        """The target, ``tau``, the surrogate and the defense's description."""
        return {"target": "selection-aware", "selection": "hard arg-min (BPDA)" if self.hard else "soft minimum",
                "tau": None if self.hard else self.tau, "rounding": self.rounding, "defense": self.defense.describe()}


class SoftSelected(Objective):
    """``Σ_k w_k · objective_k`` over a :class:`SelectionAware` target's branches: the chosen branch's
    distortion against the attacked input, or its rate (both maximized)."""

    needs_codec = True

    def __init__(self, kind: str = "distortion") -> None:
        if kind not in KINDS:
            raise InputError(f"selection-aware objective must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.name = f"selected-{kind}"

    def __call__(self, out: EnsembleOutput, labels: Tensor, targeted: bool) -> Tensor:
        """``Σ_k w_k · objective_k`` per image ``[B]`` (MSE against the attacked input, or bpp); ``targeted`` is
        unused."""
        if not isinstance(out, SelectedOutput):
            raise InputError("the selection-aware objective needs a SelectionAware target")
        if self.kind == "rate":
            per = out.branch_bpp
        else:
            per = torch.stack([(xh - out.inputs).pow(2).flatten(1).mean(1) for xh in out.branch_x_hat], 1)
        return (out.weights * per).sum(1)

    def describe(self) -> dict[str, Any]:
        """The objective's name and its selection rule."""
        return {"objective": self.name, "selection": "softmin over the candidates' RD loss"}
