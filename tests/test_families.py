"""Codec families (:mod:`liccs.families`) on tiny CompressAI models: the class → family map, each family's
stages and latents against the model, its hard-rounding forward against CompressAI's own coder and forward,
and its training forward against its differentiable forward."""

from __future__ import annotations

import ast
import copy
import pickle
from pathlib import Path

import pytest
import torch
from compressai import models as cm
from torch import nn

from liccs.core.errors import InputError
from liccs.core.rounding import get_surrogate
from liccs.families import (
    AUTOREGRESSIVE,
    FACTORIZED,
    FAMILIES,
    MEAN_SCALE,
    SCALE_HYPERPRIOR,
    CodecFamily,
    family_of,
    likelihood_bpp,
    mse_lambda,
)
from liccs.pipeline import codec_roundtrip

#: family name → a tiny model of that family (N = M = 8)
TINY: dict[str, type[nn.Module]] = {
    "factorized": cm.FactorizedPrior,
    "scale-hyperprior": cm.ScaleHyperprior,
    "mean-scale": cm.MeanScaleHyperprior,
    "autoregressive": cm.JointAutoregressiveHierarchicalPriors,
}
#: every stage a CompressAI model may have (``context_step`` is liccs's, cut from ``context_prediction``)
MODEL_STAGES = ("g_a", "h_a", "h_s", "g_s", "context_prediction", "entropy_parameters")
HARD = get_surrogate("hard")


def _tiny(name: str, gain: float = 20.0) -> nn.Module:
    """A tiny model of family ``name`` whose ``y`` spreads over several integers (random weights give y ≈ 0)
    and whose entropy bottleneck's medians are not 0 (so that centring on them matters)."""
    torch.manual_seed(0)
    m = TINY[name](8, 8).eval()
    with torch.no_grad():
        last = [mod for mod in m.g_a.modules() if isinstance(mod, nn.Conv2d)][-1]
        last.weight.mul_(gain)
        last.bias.mul_(gain)
        m.entropy_bottleneck.quantiles.add_(0.3)
    m.update(force=True)
    return m


@pytest.fixture(scope="module")
def tiny() -> dict[str, nn.Module]:
    return {name: _tiny(name) for name in FAMILIES}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    base = torch.rand(2, 3, 8, 8, generator=g)  # smooth, image-like content at 64×64
    return torch.nn.functional.interpolate(base, size=(64, 64), mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.mark.parametrize("cls,args,family", [
    (cm.FactorizedPrior, (8, 8), FACTORIZED),
    (cm.FactorizedPriorReLU, (8, 8), FACTORIZED),
    (cm.ScaleHyperprior, (8, 8), SCALE_HYPERPRIOR),
    (cm.MeanScaleHyperprior, (8, 8), MEAN_SCALE),
    (cm.JointAutoregressiveHierarchicalPriors, (8, 8), AUTOREGRESSIVE),
    (cm.Cheng2020Anchor, (8,), AUTOREGRESSIVE),
    (cm.Cheng2020Attention, (8,), AUTOREGRESSIVE),
])
def test_family_of_maps_each_compressai_class(cls, args, family):
    model = cls(*args)
    assert family_of(model) is family


@pytest.mark.parametrize("module", [nn.Conv2d(3, 3, 1), cm.CompressionModel()])
def test_unsupported_module_raises_naming_its_class(module):
    with pytest.raises(InputError, match=type(module).__name__):
        family_of(module)


def test_the_registry_keeps_the_table_strings():
    assert list(FAMILIES) == ["factorized", "scale-hyperprior", "mean-scale", "autoregressive"]
    for name, family in FAMILIES.items():
        assert isinstance(family, CodecFamily) and family.name == name and str(family) == name
        # a copied or unpickled family is the family itself
        assert copy.deepcopy(family) is family and pickle.loads(pickle.dumps(family)) is family


@pytest.mark.parametrize("name", list(FAMILIES))
def test_stages_and_latents_match_the_model(name, tiny):
    family, model = FAMILIES[name], tiny[name]
    have = {s for s in MODEL_STAGES if hasattr(model, s)}
    assert have == set(family.stages) - {"context_step"}
    assert ("context_step" in family.stages) == hasattr(model, "context_prediction") == family.is_sequential
    assert family.hyperprior == hasattr(model, "h_a") == ("z" in family.latents)
    assert family.latents[0] == "y"


@pytest.mark.parametrize("name", list(FAMILIES))
def test_hard_forward_matches_compressai_eval_forward(name, tiny, images):
    """Same x̂, same likelihoods (so the same bpp estimate), latents in CompressAI's order."""
    family, model = FAMILIES[name], tiny[name]
    with torch.no_grad():
        x_hat, liks = family.forward(model, images, HARD)
        ref = model(images)
    assert tuple(liks) == tuple(ref["likelihoods"]) == family.latents
    torch.testing.assert_close(x_hat, ref["x_hat"])
    for k in liks:
        torch.testing.assert_close(liks[k], ref["likelihoods"][k])
    bpp, ref_bpp = likelihood_bpp(liks.values(), 64 * 64), likelihood_bpp(ref["likelihoods"].values(), 64 * 64)
    torch.testing.assert_close(bpp, ref_bpp)
    assert (bpp > 0).all()


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if not f.is_sequential])
def test_hard_forward_is_compressai_decode(name, tiny, images):
    """Without a sequential coder, hard rounding gives the real compress → decompress reconstruction, and
    :meth:`~liccs.families.CodecFamily.quantize_y` the ŷ the decoder reads."""
    family, model = FAMILIES[name], tiny[name]
    with torch.no_grad():
        x_hat, _ = family.forward(model, images, HARD)
        ref, _ = codec_roundtrip(model, images)
        y = model.g_a(images)
        strings = model.compress(images)["strings"]
        if family.hyperprior:
            z_hat = model.entropy_bottleneck.decompress(strings[1], model.h_a(family.hyper_input(y)).shape[-2:])
            params = model.h_s(z_hat)
            scales, means = family.split_params(params)
            indexes = model.gaussian_conditional.build_indexes(scales)
            decoded = model.gaussian_conditional.decompress(strings[0], indexes, means=means)
        else:
            params = None
            decoded = model.entropy_bottleneck.decompress(strings[0], y.shape[-2:])
    assert (y.round() != 0).any()  # the latents are not all zero: the comparison means something
    torch.testing.assert_close(x_hat.clamp(0, 1), ref, rtol=0, atol=1e-5)  # CompressAI's decoder clamps
    torch.testing.assert_close(family.quantize_y(model, y, params, HARD), decoded, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_split_params_and_hyper_input(name, tiny, images):
    family, model = FAMILIES[name], tiny[name]
    if not family.hyperprior:
        with pytest.raises(InputError):
            family.hyper_input(images)
        return
    y = model.g_a(images)
    assert torch.equal(family.hyper_input(y), y.abs() if family is SCALE_HYPERPRIOR else y)
    params = model.h_s(model.h_a(family.hyper_input(y)))
    gaussian = model.entropy_parameters(torch.cat((params, params), 1)) if family.is_sequential else params
    scales, means = family.split_params(gaussian)
    assert scales.shape == y.shape and (means is None) == (family is SCALE_HYPERPRIOR)
    assert means is None or means.shape == y.shape


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if not f.is_sequential])
def test_train_forward_in_eval_mode_is_the_hard_forward(name, images):
    """The training forward's likelihoods see CompressAI's quantization (round in eval mode) and its decoder
    straight-through rounded latents: in eval mode, the hard forward's x̂ and bpp; in training, gradients."""
    family, model = FAMILIES[name], _tiny(name)
    with torch.no_grad():
        x_hat, bpp = family.train_forward(model, images)
        ref_hat, ref_liks = family.forward(model, images, HARD)
    torch.testing.assert_close(x_hat, ref_hat)
    torch.testing.assert_close(bpp, likelihood_bpp(ref_liks.values(), 64 * 64))
    model.train()
    torch.manual_seed(0)
    x_hat, bpp = family.train_forward(model, images)
    (x_hat.square().mean() + bpp.mean()).backward()
    first = next(m for m in model.g_a.modules() if isinstance(m, nn.Conv2d))
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    assert model.entropy_bottleneck.quantiles.grad is None  # the medians are detached: only aux_loss moves them


def test_autoregressive_has_no_training_forward(images):
    with pytest.raises(InputError, match="autoregressive"):
        AUTOREGRESSIVE.train_forward(_tiny("autoregressive"), images)


@pytest.mark.parametrize("name,expected", [("bmshj2018-hyperprior@q3", 0.0067), ("mini-nat-mbt2018-mean@q8", 0.18),
                                           ("mbt2018@q1", 0.0018), ("bmshj2018-hyperprior@q9", None),
                                           ("bmshj2018-hyperprior:ms-ssim@q3", None), ("my-codec", None),
                                           ("x@qfoo", None)])
def test_mse_lambda_is_compressais_for_the_quality_in_the_name(name, expected):
    """The λ the int8 fit and the defense weigh distortion by: CompressAI's MSE table, none where the name has no
    quality in 1-8 or names another metric."""
    assert mse_lambda(name) == expected


def test_no_caller_branches_on_the_family_flags():
    """Callers ask the family (its members and methods) or its coder what to do; the structural flags
    (``hyperprior``, ``is_sequential``) are read only inside ``liccs/families.py`` and ``liccs/engines/coders.py``."""
    package = Path(__file__).resolve().parents[1] / "liccs"
    owners = {package / "families.py", package / "engines" / "coders.py"}
    found = [f"{path.relative_to(package.parent)}:{node.lineno} .{node.attr}"
             for path in sorted(package.rglob("*.py")) if path not in owners
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Attribute) and node.attr in ("hyperprior", "is_sequential")]
    assert not found, found
