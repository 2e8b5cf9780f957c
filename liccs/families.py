"""Codec families as objects: what each kind of CompressAI image model does around its networks.

CompressAI keeps each family's logic in its model class; liccs re-implements the forward (so that a rounding
surrogate, not ``torch.round``, crosses each quantizer), exports the stages and runs the entropy coder around
them, so it needs the same knowledge outside the model. One object per family holds it:

- :data:`FACTORIZED` (Ballé et al., ICLR 2018, factorized prior): ``y`` alone, coded by the entropy
  bottleneck around its medians m: ``ŷ = Q(y − m) + m``.
- :data:`SCALE_HYPERPRIOR` (Ballé et al., ICLR 2018, scale hyperprior): ``z = h_a(|y|)``; ``h_s(ẑ)`` gives the
  scales of a zero-mean Gaussian; ``ŷ = Q(y)``.
- :data:`MEAN_SCALE` (Minnen et al., NeurIPS 2018, mean-scale hyperprior): ``z = h_a(y)``; ``h_s(ẑ)`` gives
  scales and means μ; ``ŷ = Q(y − μ) + μ``.
- :data:`AUTOREGRESSIVE` (Minnen et al., NeurIPS 2018, joint autoregressive; Cheng et al., CVPR 2020): the
  Gaussian's parameters also depend on already decoded ``ŷ`` through a masked context model, so the coder
  is a sequential loop over latent positions (no single reconstruct graph).

:func:`family_of` finds a model's family from its CompressAI class. This module sits low in the package:
it imports torch, CompressAI and :mod:`liccs.core.errors` / :mod:`liccs.core.rounding` only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import torch
from compressai import models as cm
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from torch import Tensor, nn
from torch.nn import functional as F

from liccs.core.errors import DuplicateNameError, InputError
from liccs.core.rounding import Surrogate, get_surrogate

#: The straight-through rounding of the training forward's decoder input.
_STE = get_surrogate("ste")

#: CompressAI's training λ of its MSE models by quality (loss ``λ·255²·MSE + bpp``), q1..q8.
MSE_LAMBDAS: dict[int, float] = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932,
                                 8: 0.1800}


def mse_lambda(name: str) -> float | None:
    """CompressAI's MSE λ of a codec named ``ARCH@qN`` (None for another name, a metric suffix or a quality
    outside 1–8)."""
    q = name.rsplit("@q", 1)[-1] if "@q" in name and ":" not in name else ""
    return MSE_LAMBDAS.get(int(q)) if q.isdigit() else None


def quantize(v: Tensor, q: Surrogate, centre: Tensor | None = None) -> Tensor:
    """``Q(v − c) + c`` with the surrogate ``q`` (``Q(v)`` when ``centre`` is None)."""
    return q(v) if centre is None else q(v - centre) + centre


def medians(eb: EntropyBottleneck) -> Tensor:
    """The entropy bottleneck's medians ``[1, C, 1, 1]``: the centre its coder quantizes around."""
    return eb.quantiles[:, 0, 1].view(1, -1, 1, 1)


def likelihood_bpp(likelihoods: Iterable[Tensor], num_pixels: int) -> Tensor:
    """Estimated bits per pixel per image, ``Σ -log2 p / (H·W)`` over the latents' likelihoods."""
    return sum(-torch.log2(lik).flatten(1).sum(1) for lik in likelihoods) / num_pixels


# --- the likelihoods of given (already quantized) values ------------------------------------------------
# CompressAI 1.2 has no public method for these: its entropy models' ``forward`` quantizes first (noise in
# training, round in eval) and so cannot take a surrogate's output. These two functions are the only places
# where liccs calls the private ``_likelihood`` methods (followed by the public lower bound, as ``forward``).

def _eb_likelihood(eb: EntropyBottleneck, v_hat: Tensor) -> Tensor:
    """The entropy bottleneck's likelihood of ``v_hat`` ``[B, C, H, W]``."""
    c = v_hat.shape[1]
    values = v_hat.transpose(0, 1).reshape(c, 1, -1)
    lik, _, _ = eb._likelihood(values)
    if eb.use_likelihood_bound:
        lik = eb.likelihood_lower_bound(lik)
    return lik.reshape(c, v_hat.shape[0], *v_hat.shape[2:]).transpose(0, 1)


def _gc_likelihood(gc: GaussianConditional, y_hat: Tensor, scales: Tensor, means: Tensor | None) -> Tensor:
    """The Gaussian conditional's likelihood of ``y_hat`` under (scales, means)."""
    lik = gc._likelihood(y_hat, scales, means)
    if gc.use_likelihood_bound:
        lik = gc.likelihood_lower_bound(lik)
    return lik


class CodecFamily:
    """One family of CompressAI image models. Use the module's singletons (:data:`FAMILIES`), not new ones.

    The defaults implement the hyperprior path the scale, mean-scale and autoregressive families share
    (Ballé et al., 2018): ``z = h_a(·)``, ``ẑ = Q(z − m) + m``, ``params = h_s(ẑ)`` → the Gaussian of ``y``.
    """

    #: the family's name in tables and manifests
    name: ClassVar[str]
    #: the graph stages liccs exports for a model of this family
    stages: ClassVar[tuple[str, ...]]
    #: the latents the coder writes, one string list each, in CompressAI's order
    latents: ClassVar[tuple[str, ...]] = ("y", "z")
    #: the coder is a loop over latent positions (descriptive: callers ask the members below or the coder)
    is_sequential: ClassVar[bool] = False
    #: why the whole codec cannot be one graph (``reconstruct``, codec → classifier); None where it can
    single_graph_refusal: ClassVar[str | None] = None
    #: a forward with hard rounding reconstructs what the family's decoder does
    forward_is_decode: ClassVar[bool] = True
    #: the module-level name of the singleton (copies and pickles of a family are the family itself)
    _global: ClassVar[str]

    def __repr__(self) -> str:
        return f"<codec family {self.name}>"

    def __str__(self) -> str:
        return self.name

    def __reduce__(self) -> str:
        return self._global

    @property
    def hyperprior(self) -> bool:
        """Whether the model has a hyperprior (a ``z`` latent, ``h_a``/``h_s``)."""
        return "z" in self.latents

    def hyper_latent(self, codec: nn.Module, y: Tensor) -> Tensor | None:
        """``z = h_a(·)`` of ``y`` (before quantization); None for a family without a hyperprior."""
        return codec.h_a(self.hyper_input(y))

    def hyper_input(self, y: Tensor) -> Tensor:
        """What ``h_a`` analyses: ``y``."""
        return y

    def split_params(self, params: Tensor) -> tuple[Tensor, Tensor | None]:
        """(scales, means) of the Gaussian of ``y`` from the tensor that predicts them: the two halves."""
        scales, means = params.chunk(2, 1)
        return scales, means

    def quantize_y(self, codec: nn.Module, y: Tensor, params: Tensor | None, q: Surrogate) -> Tensor:
        """``ŷ`` as the coder quantizes it, from ``h_s``'s ``params``: ``Q(y − μ) + μ`` (``Q(y)`` without means)."""
        return quantize(y, q, self.split_params(params)[1])

    def y_forward(self, codec: nn.Module, y: Tensor, params: Tensor, q: Surrogate) -> tuple[Tensor, Tensor]:
        """(ŷ, its likelihood) given ``h_s``'s ``params``."""
        scales, means = self.split_params(params)
        y_hat = quantize(y, q, means)
        return y_hat, _gc_likelihood(codec.gaussian_conditional, y_hat, scales, means)

    def forward(self, codec: nn.Module, x: Tensor, q: Surrogate) -> tuple[Tensor, dict[str, Tensor]]:
        """(x̂, likelihood per latent) of ``x`` (sides multiples of 64), ``q`` crossing each quantizer."""
        y = codec.g_a(x)
        eb = codec.entropy_bottleneck
        z_hat = quantize(codec.h_a(self.hyper_input(y)), q, medians(eb))
        z_lik = _eb_likelihood(eb, z_hat)
        y_hat, y_lik = self.y_forward(codec, y, codec.h_s(z_hat), q)
        return codec.g_s(y_hat), {"y": y_lik, "z": z_lik}

    def stage_feeds(self, codec: nn.Module, x: Tensor) -> dict[str, dict[str, Tensor]]:
        """The input of every stage graph but ``g_a`` when ``codec`` encodes padded images ``x``, as its coder does:
        ``h_a``'s, ``ẑ = Q(z − m) + m``, and ``ŷ`` as :meth:`quantize_y` gives it."""
        return self._coded_feeds(codec, x)[0]

    def _coded_feeds(self, codec: nn.Module, x: Tensor) -> tuple[dict[str, dict[str, Tensor]], Tensor]:
        """:meth:`stage_feeds` of the hyperprior path, and ``h_s(ẑ)`` beside them."""
        y = codec.g_a(x)
        h_in = self.hyper_input(y)
        z_hat = quantize(codec.h_a(h_in), torch.round, medians(codec.entropy_bottleneck))
        params = codec.h_s(z_hat)
        y_hat = self.quantize_y(codec, y, params, torch.round)
        return {"h_a": {"y": h_in}, "h_s": {"z_hat": z_hat}, "g_s": {"y_hat": y_hat}}, params

    def train_forward(self, model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        """(x̂, estimated bpp per image) with mixed quantization: the likelihoods see CompressAI's own
        quantization (uniform noise in training mode), the decoder sees straight-through rounded latents."""
        y = model.g_a(x)
        eb = model.entropy_bottleneck
        z = model.h_a(self.hyper_input(y))
        _, z_lik = eb(z)
        params = model.h_s(quantize(z, _STE, medians(eb).detach()))
        scales, means = self.split_params(params)
        _, y_lik = model.gaussian_conditional(y, scales, means=means)
        x_hat = model.g_s(quantize(y, _STE, means))
        return x_hat, likelihood_bpp((y_lik, z_lik), x.shape[-2] * x.shape[-1])


class Factorized(CodecFamily):
    """Factorized prior (Ballé et al., ICLR 2018): ``y`` alone, coded by the entropy bottleneck."""

    name = "factorized"
    stages = ("g_a", "g_s")
    latents = ("y",)
    _global = "FACTORIZED"

    def hyper_input(self, y: Tensor) -> Tensor:
        raise InputError("a factorized-prior codec has no hyperprior (no h_a)")

    def hyper_latent(self, codec: nn.Module, y: Tensor) -> Tensor | None:
        """None: the factorized prior has no hyperprior."""
        return None

    def split_params(self, params: Tensor) -> tuple[Tensor, Tensor | None]:
        raise InputError("a factorized-prior codec has no Gaussian parameters (no h_s)")

    def quantize_y(self, codec: nn.Module, y: Tensor, params: Tensor | None, q: Surrogate) -> Tensor:
        """``Q(y − m) + m`` around the entropy bottleneck's medians (``params`` is unused)."""
        return quantize(y, q, medians(codec.entropy_bottleneck))

    def stage_feeds(self, codec: nn.Module, x: Tensor) -> dict[str, dict[str, Tensor]]:
        """``g_s``'s input: ``ŷ = Q(y − m) + m``."""
        return {"g_s": {"y_hat": self.quantize_y(codec, codec.g_a(x), None, torch.round)}}

    def forward(self, codec: nn.Module, x: Tensor, q: Surrogate) -> tuple[Tensor, dict[str, Tensor]]:
        y_hat = self.quantize_y(codec, codec.g_a(x), None, q)
        return codec.g_s(y_hat), {"y": _eb_likelihood(codec.entropy_bottleneck, y_hat)}

    def train_forward(self, model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        y = model.g_a(x)
        eb = model.entropy_bottleneck
        _, y_lik = eb(y)
        x_hat = model.g_s(quantize(y, _STE, medians(eb).detach()))
        return x_hat, likelihood_bpp((y_lik,), x.shape[-2] * x.shape[-1])


class ScaleHyperprior(CodecFamily):
    """Scale hyperprior (Ballé et al., ICLR 2018): ``z = h_a(|y|)``, ``h_s(ẑ)`` = scales of a zero-mean
    Gaussian, ``ŷ = Q(y)``."""

    name = "scale-hyperprior"
    stages = ("g_a", "h_a", "h_s", "g_s")
    _global = "SCALE_HYPERPRIOR"

    def hyper_input(self, y: Tensor) -> Tensor:
        """``|y|``: the scale hyperprior analyses magnitudes."""
        return torch.abs(y)

    def split_params(self, params: Tensor) -> tuple[Tensor, Tensor | None]:
        """``h_s``'s output is the scales; the means are zero (None)."""
        return params, None


class MeanScale(CodecFamily):
    """Mean-scale hyperprior (Minnen et al., NeurIPS 2018): ``h_s(ẑ)`` = (scales, means),
    ``ŷ = Q(y − μ) + μ``."""

    name = "mean-scale"
    stages = ("g_a", "h_a", "h_s", "g_s")
    _global = "MEAN_SCALE"


class Autoregressive(CodecFamily):
    """Joint autoregressive and hierarchical priors (Minnen et al., NeurIPS 2018; Cheng et al., CVPR 2020).

    The Gaussian's (scales, means) come from ``entropy_parameters`` on ``h_s``'s params and the masked context
    of ``ŷ``: the deployed coder quantizes ``y − μ`` one position at a time, a sequential loop. The
    differentiable path follows CompressAI's forward: ``ŷ = Q(y)`` feeds the context model and ``g_s``; the
    likelihood is of ``Q(y − μ) + μ``.
    """

    name = "autoregressive"
    stages = ("g_a", "h_a", "h_s", "g_s", "context_prediction", "context_step", "entropy_parameters")
    is_sequential = True
    single_graph_refusal = ("the deployed decoder of an autoregressive model is a sequential loop over latent "
                            "positions (context_prediction → entropy_parameters → entropy decode, one position at a "
                            "time); it cannot be one graph. Its stages are exported and liccs.engines.codec runs the "
                            "loop.")
    forward_is_decode = False  # the coder quantizes y − μ position by position; CompressAI's forward rounds y
    _global = "AUTOREGRESSIVE"

    def quantize_y(self, codec: nn.Module, y: Tensor, params: Tensor | None, q: Surrogate) -> Tensor:
        """``Q(y)``: CompressAI's forward convention (the real ``ŷ`` needs the sequential loop)."""
        return q(y)

    def y_forward(self, codec: nn.Module, y: Tensor, params: Tensor, q: Surrogate) -> tuple[Tensor, Tensor]:
        y_hat = q(y)
        ctx = codec.context_prediction(y_hat)
        scales, means = self.split_params(codec.entropy_parameters(torch.cat((params, ctx), dim=1)))
        return y_hat, _gc_likelihood(codec.gaussian_conditional, quantize(y, q, means), scales, means)

    #: the context window of the per-position ``context_step`` graph (CompressAI's 5×5 masked convolution)
    context_window: ClassVar[int] = 5

    def stage_feeds(self, codec: nn.Module, x: Tensor) -> dict[str, dict[str, Tensor]]:
        """The hyperprior path's feeds, and the context model's inputs of CompressAI's forward (``ŷ = Q(y)``, which
        have the statistics of the real ones): three ``context_window``² windows of ``ŷ`` and the entropy
        parameters' input."""
        feeds, params = self._coded_feeds(codec, x)
        y_hat = feeds["g_s"]["y_hat"]
        cp = codec.context_prediction
        ctx = F.conv2d(y_hat, cp.weight * cp.mask, cp.bias, padding=cp.padding)
        k, (h, w) = self.context_window, y_hat.shape[-2:]
        padded = F.pad(y_hat, (k // 2,) * 4)
        feeds["context_prediction"] = {"y_hat": y_hat}
        feeds["context_step"] = {"y_window": torch.cat([padded[:, :, i:i + k, j:j + k]
                                                        for i, j in ((0, 0), (h // 2, w // 2), (h - 1, w - 1))])}
        feeds["entropy_parameters"] = {"params_ctx": torch.cat((params, ctx), dim=1)}
        return feeds

    def train_forward(self, model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        raise InputError("liccs trains no autoregressive codec (its training forward is not implemented)")


FACTORIZED = Factorized()
SCALE_HYPERPRIOR = ScaleHyperprior()
MEAN_SCALE = MeanScale()
AUTOREGRESSIVE = Autoregressive()

#: Every family, by name.
FAMILIES: dict[str, CodecFamily] = {f.name: f for f in (FACTORIZED, SCALE_HYPERPRIOR, MEAN_SCALE, AUTOREGRESSIVE)}

#: CompressAI model class → family, subclasses before their bases (JointAutoregressiveHierarchicalPriors
#: subclasses MeanScaleHyperprior, which subclasses ScaleHyperprior; Cheng2020 models subclass the first).
_BY_CLASS: list[tuple[type[nn.Module], CodecFamily]] = [
    (cm.JointAutoregressiveHierarchicalPriors, AUTOREGRESSIVE),
    (cm.MeanScaleHyperprior, MEAN_SCALE),
    (cm.ScaleHyperprior, SCALE_HYPERPRIOR),
    (cm.FactorizedPrior, FACTORIZED),
]


def register_family(family: CodecFamily, *classes: type[nn.Module]) -> CodecFamily:
    """Add ``family`` to :data:`FAMILIES` and make it the family of ``classes`` (model classes, found before the
    built-in ones, so a subclass of a CompressAI model becomes the new family); a taken name is refused."""
    if family.name in FAMILIES:
        raise DuplicateNameError(f"codec family {family.name!r} is already registered; taken: {', '.join(FAMILIES)}")
    FAMILIES[family.name] = family
    _BY_CLASS[:0] = [(cls, family) for cls in classes]
    return family


def unregister_family(name: str) -> None:
    """Remove the family ``name`` and its classes (an extension's tests clean up with it)."""
    family = FAMILIES.pop(name, None)
    _BY_CLASS[:] = [(cls, f) for cls, f in _BY_CLASS if f is not family]


def family_of_class(cls: type[nn.Module]) -> CodecFamily:
    """The family of a model class (the one table liccs keeps: the zoo and the trainer read it too)."""
    for base, family in _BY_CLASS:
        if issubclass(cls, base):
            return family
    raise InputError(f"codec of class {cls.__name__} is not a supported CompressAI image model")


def family_of(codec: nn.Module) -> CodecFamily:
    """The family of a CompressAI image model, from its class; other modules raise :class:`InputError`."""
    return family_of_class(type(codec))
