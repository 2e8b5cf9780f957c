"""Targets of an attack: one model or an ensemble, behind a single interface.

An :class:`Ensemble` holds members of three kinds, mixed freely:

- a LICCS pipeline (anything with ``reconstruct(x) -> CodecOutput`` and a ``classifier``);
- a bare classifier (any module ``x -> logits``): no codec output;
- a bare codec (:class:`CodecOnly`): a reconstruction and likelihoods, no logits (codec objectives).

``forward_all`` runs every codec once and, when all members share one classifier, runs that classifier
once on the concatenated reconstructions. Objectives reduce over members: the classification loss
averages per-member losses (``reduce="loss"``) or the logits (``reduce="logits"``); codec objectives
average per-member terms. A single model is an ensemble of one, so attacks have one code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from liccs.core.errors import InputError
from liccs.core.rounding import get_surrogate
from liccs.pipeline import LICCS, CodecOutput
from liccs.zoo import load_codecs, parse_codec

REDUCTIONS = ("loss", "logits")


class CodecOnly(nn.Module):
    """A bare CompressAI codec as an ensemble member (for distortion and rate objectives).

    Args:
        codec: a CompressAI image model with its entropy tables built.
        rounding: the surrogate crossing the quantizers (:data:`liccs.core.rounding.SURROGATES`).
    """

    def __init__(self, codec: nn.Module, rounding: str = "ste") -> None:
        super().__init__()
        self.pipe = LICCS(codec, nn.Identity(), rounding=rounding)
        self.codec = codec
        self.rounding = rounding

    def reconstruct(self, x: Tensor) -> CodecOutput:
        """The codec's reconstruction of ``x`` with likelihoods (:meth:`LICCS.reconstruct`)."""
        return self.pipe.reconstruct(x)

    def describe(self) -> dict[str, Any]:
        """The pipeline's description, with no classifier."""
        d = self.pipe.describe()
        return {**d, "classifier": None, "classifier_weights": None}


@dataclass
class EnsembleOutput:
    """One forward of every member: logits ``[M, B, C]`` (None if not asked for), codec outputs, the input.

    With one member its ``[B, C]`` logits are kept as ``single`` (no extra view on the gradient path).
    """

    stacked: Tensor | None
    recs: list[CodecOutput | None]
    inputs: Tensor
    reduce: str = "loss"
    single: Tensor | None = None

    @property
    def logits(self) -> Tensor | None:
        """Logits ``[M, B, C]`` (one member's ``single`` with a leading axis), or None."""
        return self.single.unsqueeze(0) if self.single is not None else self.stacked


def member_parts(m: nn.Module) -> tuple[Any, nn.Module | None]:
    """(reconstruct or None, classifier or None) of a member."""
    if isinstance(m, CodecOnly):
        return m.reconstruct, None
    if hasattr(m, "reconstruct") and hasattr(m, "classifier"):
        return m.reconstruct, m.classifier
    return None, m


def member_name(m: nn.Module) -> str:
    """``ARCH@qN`` of a member's codec, or the classifier's name for a bare classifier."""
    codec = getattr(m, "codec", None)
    if codec is not None:
        return str(getattr(codec, "liccs_name", type(codec).__name__))
    return str(getattr(m, "liccs_name", getattr(m, "name", type(m).__name__)))


class Ensemble(nn.Module):
    """Members attacked together; the same attack code serves one model (an ensemble of one) or many.

    Args:
        members: LICCS pipelines, classifiers or :class:`CodecOnly` codecs.
        reduce: ``"loss"`` (mean of per-member classification losses) or ``"logits"`` (loss of the mean logits).
        names: a label per member (default: the codec's ``ARCH@qN`` or the classifier's name).
    """

    def __init__(self, members: Sequence[nn.Module], reduce: str = "loss", names: Sequence[str] | None = None) -> None:
        super().__init__()
        if not members:
            raise InputError("an ensemble needs at least one member")
        if reduce not in REDUCTIONS:
            raise InputError(f"ensemble reduce must be one of {REDUCTIONS}, got {reduce!r}")
        if names is not None and len(names) != len(members):
            raise InputError(f"{len(names)} names for {len(members)} ensemble members")
        self.members = nn.ModuleList(members)
        self.reduce = reduce
        self.names = list(names) if names is not None else [member_name(m) for m in members]
        self._parts = [member_parts(m) for m in members]
        clfs = {id(c) for _, c in self._parts}
        # a bool, not the module itself: assigning a module attribute would register it a second time
        self._share = len(clfs) == 1 and self._parts[0][1] is not None
        self.has_classifier = all(c is not None for _, c in self._parts)  #: every member gives logits


    @property
    def num_classes(self) -> int | None:
        """The classifiers' class count when they declare one (``Classifier.num_classes``) and agree."""
        counts = {getattr(c, "num_classes", None) for _, c in self._parts}
        return counts.pop() if len(counts) == 1 else None

    def forward_all(self, x: Tensor, logits: bool = True) -> EnsembleOutput:
        """Every member on ``x``: codec outputs, and logits ``[M, B, C]`` when ``logits``."""
        recs = [rec(x) if rec is not None else None for rec, _ in self._parts]
        out: Tensor | None = None
        single: Tensor | None = None
        if logits:
            if not self.has_classifier:
                raise InputError("a classification objective needs a classifier in every ensemble member")
            views = [r.x_hat if r is not None else x for r in recs]
            if len(views) == 1:
                single = self._parts[0][1](views[0])
            elif self._share and len({v.shape for v in views}) == 1:
                out = self._parts[0][1](torch.cat(views)).unflatten(0, (len(views), x.shape[0]))
            else:
                out = torch.stack([c(v) for (_, c), v in zip(self._parts, views, strict=True)])
        return EnsembleOutput(out, recs, x, self.reduce, single)

    def forward(self, x: Tensor) -> Tensor:
        """Mean logits over members (what an evaluation of the ensemble as one classifier sees)."""
        return self.forward_all(x).logits.mean(0)

    def describe(self) -> dict[str, Any]:
        """Members (names, weights, surrogates) and the reduction: what a result records."""
        def one(m: nn.Module) -> dict[str, Any]:
            if hasattr(m, "describe"):
                return m.describe()
            w = getattr(m, "liccs_weights", None)
            return {"classifier": member_name(m), "classifier_weights": w.to_dict() if w is not None else None}

        return {"members": self.names, "reduce": self.reduce, "models": [one(m) for m in self.members]}


def as_ensemble(model: nn.Module) -> nn.Module:
    """``model`` itself if it already has ``forward_all`` returning :class:`EnsembleOutput`, else an ensemble of one."""
    return model if isinstance(model, Ensemble) or getattr(model, "is_attack_target", False) else Ensemble([model])


def build_ensemble(
    codecs: str | Sequence[str],
    classifier: nn.Module | None,
    *,
    weights: str = "random",
    rounding: str = "ste",
    reduce: str = "loss",
    device: str | torch.device = "cpu",
) -> Ensemble:
    """LICCS members ``ARCH@qN`` sharing one classifier (or bare codecs when ``classifier`` is None).

    Every name is checked before any model is loaded: an unknown architecture or quality raises
    :class:`~liccs.core.errors.UnknownNameError` listing the valid ones.
    """

    names = [codecs] if isinstance(codecs, str) else list(codecs)
    if not names:
        raise InputError("no codec given for the ensemble")
    specs = [parse_codec(n) for n in names]
    if len({str(s) for s in specs}) != len(specs):
        raise InputError(f"ensemble members repeat: {[str(s) for s in specs]}")
    get_surrogate(rounding)
    if reduce not in REDUCTIONS:
        raise InputError(f"ensemble reduce must be one of {REDUCTIONS}, got {reduce!r}")
    loaded = load_codecs(specs, weights, device=device)
    members = [LICCS(c, classifier, rounding=rounding) if classifier is not None else CodecOnly(c, rounding)
               for c in loaded]
    return Ensemble(members, reduce=reduce, names=[str(s) for s in specs])
