"""What an attack maximizes: per-image losses ``[B]`` over one model or an ensemble.

- :class:`ClassificationLoss`: cross-entropy or margin through LICCS; untargeted (raise the true class's
  loss) or targeted (lower the target's). Over an ensemble: mean of member losses or loss of mean logits.
- :class:`DistortionLoss`: MSE of the codec's reconstruction x̂ of the attacked image against its input (the
  attacked image itself, ``reference="input"``, as in Chen & Ma, "Towards robust neural image compression",
  2023), against the clean image itself (``reference="clean"``: the damage to the clean content, what paper B's
  PSNR vs clean measures), or against the plain codec's reconstruction of the clean image (``reference="recon"``:
  hard rounding, no transform, what the undefended decoder outputs; paper B's third reference); mean over members.
- :class:`RateLoss`: estimated bits per pixel ``Σ -log2 p(ŷ, ẑ) / (H·W)`` from the likelihoods; mean over members.
- :class:`DifferentialLoss`: the disagreement between a float model and its deployment (DIVA: Hao et al., "A Tale of
  Two Models: Constructing Evasive Attacks on Edge Models", MLSys 2022): ``p_float(y|x) − c · p_deployed(y|x)``
  over an ensemble of exactly two members, [float, deployed replica].
- :class:`Weighted`: ``Σ w_i · objective_i``; :func:`parse_objective` reads ``"ce+100*distortion"``.

Every objective is maximized; targeted mode is meaningful for the classification loss only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liccs.attack.ensemble import EnsembleOutput, member_parts
from liccs.core import Registry
from liccs.core.errors import InputError
from liccs.pipeline import LICCS


class Objective:
    """Base class: ``objective(out, labels, targeted) -> [B]`` losses to maximize."""

    name = "objective"
    needs_logits = False
    needs_codec = False
    supports_targeted = False

    def check(self, target: nn.Module) -> None:
        """Raise :class:`InputError` when ``target`` cannot serve this objective (before any work)."""
        if self.needs_codec:
            for name, m in zip(target_names(target), target_members(target), strict=True):
                if member_parts(m)[0] is None or getattr(m, "codec", None) is None:
                    raise InputError(f"objective {self.name!r} needs a codec, but member {name!r} has none")

    def prepare(self, target: nn.Module, x: Tensor, labels: Tensor) -> None:
        """Compute references from the clean images (once per attack call)."""

    def __call__(self, out: EnsembleOutput, labels: Tensor, targeted: bool) -> Tensor:
        """The losses ``[B]`` to maximize for one forward of the target; subclasses implement it."""
        raise NotImplementedError

    def total(self, out: EnsembleOutput, labels: Tensor, targeted: bool) -> Tensor:
        """``Σ_b loss_b``, what the attack differentiates (an objective may compute it more directly)."""
        return self(out, labels, targeted).sum()

    def describe(self) -> dict[str, Any]:
        """What a result records about the objective: its name."""
        return {"objective": self.name}


def target_members(target: nn.Module) -> list[nn.Module]:
    """The members of an ensemble (through an EoT wrapper)."""
    inner = getattr(target, "target", target)
    return list(getattr(inner, "members", [inner]))


def target_names(target: nn.Module) -> list[str]:
    """The member names of an ensemble (through an EoT wrapper), or the target's class name."""
    inner = getattr(target, "target", target)
    return list(getattr(inner, "names", [type(inner).__name__]))


def _true_and_best_other(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(z_y, max_{j≠y} z_j) per row."""
    z_y = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf")).amax(1)
    return z_y, other


class ClassificationLoss(Objective):
    """Classification loss through the pipeline.

    ``kind="ce"``: untargeted ``CE(z, y)``, targeted ``-CE(z, t)``. ``kind="margin"`` (Carlini & Wagner,
    S&P 2017): untargeted ``max_{j≠y} z_j - z_y``, targeted ``z_t - max_{j≠t} z_j``. ``kind="dlr"`` (Croce & Hein,
    ICML 2020): the margin divided by the spread of the sorted logits ``z_π1 − z_π3`` (untargeted, ≥ 3 classes) or
    ``z_π1 − (z_π3 + z_π4)/2`` (targeted, ≥ 4 classes; with ``max_{j≠t} z_j`` in place of the true class, which the
    targeted mode does not see), so that it does not change when the logits are rescaled.
    """

    needs_logits = True
    supports_targeted = True

    def __init__(self, kind: str = "ce") -> None:
        if kind not in ("ce", "margin", "dlr"):
            raise InputError(f"classification loss must be 'ce', 'margin' or 'dlr', got {kind!r}")
        self.kind = kind
        self.name = kind

    def check(self, target: nn.Module) -> None:
        """Refuse a member without a classifier, and ``dlr`` on a target of fewer than 3 classes."""
        for name, m in zip(target_names(target), target_members(target), strict=True):
            if member_parts(m)[1] is None:
                raise InputError(f"objective {self.name!r} needs a classifier, but member {name!r} is a bare codec")
        n = getattr(target, "num_classes", None)
        if self.kind == "dlr" and n is not None and n < 3:
            raise InputError(f"objective 'dlr' needs at least 3 classes, the target has {n}")

    def _loss(self, logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
        if self.kind == "ce":
            ce = F.cross_entropy(logits, labels, reduction="none")
            return -ce if targeted else ce
        z_y, other = _true_and_best_other(logits, labels)
        margin = z_y - other if targeted else other - z_y
        if self.kind == "margin":
            return margin
        need = 4 if targeted else 3
        if logits.shape[1] < need:
            raise InputError(f"objective 'dlr' ({'targeted' if targeted else 'untargeted'}) needs at least {need} "
                             f"classes, the logits have {logits.shape[1]}")
        z = logits.float().topk(need, dim=1).values
        spread = z[:, 0] - (0.5 * (z[:, 2] + z[:, 3]) if targeted else z[:, 2])
        return margin / (spread + 1e-12).to(margin.dtype)

    def __call__(self, out: EnsembleOutput, labels: Tensor, targeted: bool) -> Tensor:
        """The loss per image ``[B]``: of one member's logits, of the mean logits (``reduce="logits"``), or the mean of
        the members' losses."""
        if out.single is not None:
            return self._loss(out.single, labels, targeted)
        z = out.logits
        if out.reduce == "logits":
            return self._loss(z.mean(0), labels, targeted)
        m, b = z.shape[:2]
        return self._loss(z.flatten(0, 1), labels.repeat(m), targeted).view(m, b).mean(0)

    def total(self, out: EnsembleOutput, labels: Tensor, targeted: bool) -> Tensor:
        """``Σ_b loss_b``, one fused cross-entropy for a single member's ``ce``."""
        if out.single is not None and self.kind == "ce":  # one fused kernel on the common path
            ce = F.cross_entropy(out.single, labels, reduction="sum")
            return -ce if targeted else ce
        return self(out, labels, targeted).sum()

    def describe(self) -> dict[str, Any]:
        """The objective and the loss kind."""
        return {"objective": "classification", "loss": self.kind}


class DistortionLoss(Objective):
    """Mean squared error of the reconstruction of the attacked image, against its input (``"input"``), the clean
    image (``"clean"``) or the plain codec's hard reconstruction of the clean image (``"recon"``).

    ``"clean"`` once meant the clean image's reconstruction through the attacked model; under STE (hard rounding
    forward) that equals ``"recon"``'s reference on a plain codec, so the two crafted identical images. Against
    the clean image itself it differs from both: at the clean image its gradient is not zero (``"recon"``'s is),
    and it counts the codec's own error on the clean image as damage (``"input"`` follows the attacked input)."""

    needs_codec = True

    def __init__(self, reference: str = "input") -> None:
        if reference not in ("input", "clean", "recon"):
            raise InputError(f"distortion reference must be 'input', 'clean' or 'recon', got {reference!r}")
        self.reference = reference
        self.name = {"input": "distortion", "clean": "distortion-clean", "recon": "distortion-recon"}[reference]
        self._clean: list[Tensor] | None = None

    def prepare(self, target: nn.Module, x: Tensor, labels: Tensor) -> None:
        """Keep the reference: the clean images (``clean``) or each member's hard-rounded reconstruction of them
        (``recon``)."""
        if self.reference == "clean":
            self._clean = [x.detach()]  # one reference for every member and branch
        elif self.reference == "recon":
            with torch.no_grad():
                self._clean = [LICCS(m.codec, nn.Identity(), rounding="hard").reconstruct(x).x_hat.detach()
                               for m in target_members(target)]

    def __call__(self, out: EnsembleOutput, labels: Tensor, targeted: bool) -> Tensor:
        """MSE per image ``[B]`` of each reconstruction against its reference, mean over members (or branches)."""
        refs = self._clean if self.reference != "input" else [out.inputs] * len(out.recs)
        if refs is None:
            raise InputError(f"DistortionLoss(reference={self.reference!r}) used before prepare()")
        if len(refs) != len(out.recs):  # one reference per member, several branches per member (selection)
            refs = refs[:1] * len(out.recs)
        terms = [(r.x_hat - ref).pow(2).flatten(1).mean(1) for r, ref in zip(out.recs, refs, strict=True)]
        return torch.stack(terms).mean(0)

    def describe(self) -> dict[str, Any]:
        """The objective, its reference and the metric (MSE)."""
        return {"objective": "distortion", "reference": self.reference, "metric": "mse"}


class RateLoss(Objective):
    """Estimated bits per pixel of each image from the codec's likelihoods (maximize the rate)."""

    needs_codec = True
    name = "rate"

    def __call__(self, out: EnsembleOutput, labels: Tensor, targeted: bool) -> Tensor:
        """Estimated bpp per image ``[B]`` from each member's likelihoods, mean over members."""
        if any(not r.likelihoods for r in out.recs):
            raise InputError("rate objective: a member gives no likelihoods "
                             "(hard rounding of an autoregressive codec?)")
        return torch.stack([r.bpp() for r in out.recs]).mean(0)

    def describe(self) -> dict[str, Any]:
        """The objective and its estimate (likelihood bpp)."""
        return {"objective": "rate", "estimate": "likelihood bpp"}


class DifferentialLoss(Objective):
    """DIVA's objective (Hao et al., MLSys 2022, eq. 2): ``p_float(y|x) − c · p_deployed(y|x)`` per image, maximized.

    The target is an ensemble of two members, in this order: the float model (PyTorch) and the differentiable
    replica of its deployment (:mod:`liccs.engines.replica`). Maximizing pushes the deployed prediction away from
    the label while keeping the float model's confidence in it: an attack that fools the deployment only.
    Untargeted only.
    """

    needs_logits = True
    name = "differential"

    def __init__(self, c: float = 1.0) -> None:
        if not c > 0:
            raise InputError(f"the differential objective's weight c must be > 0, got {c}")
        self.c = float(c)

    def check(self, target: nn.Module) -> None:
        """Refuse a target that is not two classifying members, [float, deployed]."""
        members = target_members(target)
        if len(members) != 2 or any(member_parts(m)[1] is None for m in members):
            raise InputError(f"objective 'differential' needs two classifying members, [float, deployed], got "
                             f"{len(members)}: {target_names(target)}")

    def __call__(self, out: EnsembleOutput, labels: Tensor, targeted: bool) -> Tensor:
        """``p_float(y|x) − c · p_deployed(y|x)`` per image ``[B]``; targeted mode is refused."""
        if targeted:
            raise InputError("objective 'differential' is untargeted")
        p = out.logits.float().softmax(-1).gather(2, labels.view(1, -1, 1).expand(2, -1, 1)).squeeze(2)
        return p[0] - self.c * p[1]

    def describe(self) -> dict[str, Any]:
        """The objective, ``c`` and the members' roles."""
        return {"objective": "differential", "c": self.c, "members": ["float", "deployed"]}


class Weighted(Objective):
    """``Σ w_i · objective_i`` over (weight, objective) terms."""

    def __init__(self, terms: Sequence[tuple[float, Objective]]) -> None:
        if not terms:
            raise InputError("a weighted objective needs at least one term")
        self.terms = [(float(w), o) for w, o in terms]
        self.needs_logits = any(o.needs_logits for _, o in self.terms)
        self.needs_codec = any(o.needs_codec for _, o in self.terms)
        self.supports_targeted = any(o.supports_targeted for _, o in self.terms)
        self.name = "+".join(f"{w:g}*{o.name}" for w, o in self.terms)

    def check(self, target: nn.Module) -> None:
        """Check every term against ``target``."""
        for _, o in self.terms:
            o.check(target)

    def prepare(self, target: nn.Module, x: Tensor, labels: Tensor) -> None:
        """Prepare every term."""
        for _, o in self.terms:
            o.prepare(target, x, labels)

    def __call__(self, out: EnsembleOutput, labels: Tensor, targeted: bool) -> Tensor:
        """``Σ w_i · objective_i`` per image ``[B]``."""
        return sum(w * o(out, labels, targeted) for w, o in self.terms)

    def describe(self) -> dict[str, Any]:
        """Every term's weight and description."""
        return {"objective": "weighted", "terms": [{"weight": w, **o.describe()} for w, o in self.terms]}


OBJECTIVES: Registry[type[Objective] | Any] = Registry("objective")
OBJECTIVES.register("ce", lambda: ClassificationLoss("ce"))
OBJECTIVES.register("margin", lambda: ClassificationLoss("margin"))
OBJECTIVES.register("dlr", lambda: ClassificationLoss("dlr"))
OBJECTIVES.register("distortion", lambda: DistortionLoss("input"))
OBJECTIVES.register("distortion-clean", lambda: DistortionLoss("clean"))
OBJECTIVES.register("distortion-recon", lambda: DistortionLoss("recon"))
OBJECTIVES.register("rate", RateLoss)
OBJECTIVES.register("differential", DifferentialLoss)

_TERM = re.compile(r"^\s*(?:(?P<w>[0-9.eE+-]+)\s*\*)?\s*(?P<name>[a-z\-]+)\s*$")


def parse_objective(spec: str | Objective) -> Objective:
    """An objective from a name (``ce``, ``margin``, ``dlr``, ``distortion``, ``distortion-clean``,
    ``distortion-recon``, ``rate``, ``differential``) or a sum of weighted names (``"ce+100*distortion"``)."""
    if isinstance(spec, Objective):
        return spec
    # split at a '+' that ends a name (two letters before it), not at the one of an exponent like 1e+2
    parts = [p for p in re.split(r"(?<=[a-z]{2})\s*\+", spec) if p.strip()]
    terms: list[tuple[float, Objective]] = []
    for p in parts:
        m = _TERM.match(p)
        if not m:
            raise InputError(f"objective term {p!r} is not of the form [WEIGHT*]NAME")
        try:
            w = float(m["w"]) if m["w"] else 1.0
        except ValueError:
            raise InputError(f"objective weight {m['w']!r} is not a number") from None
        terms.append((w, OBJECTIVES.get(m["name"])()))
    return terms[0][1] if len(terms) == 1 and terms[0][0] == 1.0 else Weighted(terms)
