"""Objectives (classification, distortion, rate, weighted) on one model and on ensembles; gradients."""

from __future__ import annotations

import pytest
import torch

from liccs.attack import PGD, ClassificationLoss, CodecOnly, Ensemble, parse_objective
from liccs.attack.objectives import DistortionLoss, RateLoss, Weighted
from liccs.core.rounding import SURROGATES
from liccs.pipeline import LICCS
from tests.attack.conftest import tiny_codec

GRADIENT_SURROGATES = [s for s in SURROGATES if s != "hard"]


def ensemble(cnn, rounding="ste", reduce="loss"):
    members = [LICCS(tiny_codec(s, seed=i), cnn, rounding=rounding) for i, s in enumerate((4.0, 8.0, 16.0))]
    return Ensemble(members, reduce=reduce, names=["tiny@4", "tiny@8", "tiny@16"])


@pytest.mark.parametrize("rounding", GRADIENT_SURROGATES)
@pytest.mark.parametrize("objective", ["ce", "margin", "distortion", "distortion-clean", "rate"])
def test_gradient_flows_through_every_surrogate_single_and_ensemble(rounding, objective, trained_cnn, batch):
    x, y = batch[0][:4], batch[1][:4]
    for model in (LICCS(tiny_codec(), trained_cnn, rounding=rounding), ensemble(trained_cnn, rounding)):
        atk = PGD(model, objective=objective, steps=1)
        atk.objective.prepare(atk.target, x, y)
        g, total = atk.gradient(x + 0.01 * (torch.rand_like(x) - 0.5), y, torch.Generator().manual_seed(0))
        assert torch.isfinite(g).all() and g.abs().sum() > 0, (rounding, objective)
        assert torch.isfinite(total)


def test_ensemble_gradient_reaches_every_member(trained_cnn, batch):
    x, y = batch[0][:4], batch[1][:4]
    ens = ensemble(trained_cnn)
    xr = x.clone().requires_grad_(True)
    out = ens.forward_all(xr)
    assert out.logits.shape == (3, 4, 4)
    grads = [torch.autograd.grad(torch.nn.functional.cross_entropy(out.logits[m], y), xr, retain_graph=True)[0]
             for m in range(3)]
    assert all(g.abs().sum() > 0 for g in grads)
    assert not torch.equal(grads[0], grads[2])  # different codecs, different gradients


def test_shared_classifier_runs_once_and_matches_members(trained_cnn, batch):
    x = batch[0][:4]
    ens = ensemble(trained_cnn, rounding="ste")
    calls = []
    h = trained_cnn.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        joint = ens.forward_all(x).logits
    h.remove()
    assert len(calls) == 1
    with torch.no_grad():
        separate = torch.stack([m(x) for m in ens.members])
    torch.testing.assert_close(joint, separate, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduce", ["loss", "logits"])
def test_ensemble_reduction(reduce, trained_cnn, batch):
    x, y = batch[0][:4], batch[1][:4]
    ens = ensemble(trained_cnn, reduce=reduce)
    with torch.no_grad():
        out = ens.forward_all(x)
        got = ClassificationLoss("ce")(out, y, targeted=False)
        ce = torch.nn.functional.cross_entropy
        want = ce(out.logits.mean(0), y, reduction="none") if reduce == "logits" else \
            torch.stack([ce(z, y, reduction="none") for z in out.logits]).mean(0)
    torch.testing.assert_close(got, want)


def test_margin_loss_and_targeted_signs(trained_cnn, batch):
    x, y = batch
    out = Ensemble([trained_cnn]).forward_all(x)
    z = out.logits[0]
    m = ClassificationLoss("margin")
    top_other = z.scatter(1, y[:, None], float("-inf")).amax(1)
    torch.testing.assert_close(m(out, y, False), top_other - z.gather(1, y[:, None]).squeeze(1))
    torch.testing.assert_close(m(out, y, True), -m(out, y, False))
    ce = ClassificationLoss("ce")
    torch.testing.assert_close(ce(out, y, True), -ce(out, y, False))


@pytest.mark.parametrize("objective", ["distortion", "distortion-clean", "rate", "0.5*rate+100*distortion"])
def test_codec_objectives_rise_on_one_codec_and_on_an_ensemble(objective, batch):
    x = batch[0][:4]
    for model in (CodecOnly(tiny_codec()), Ensemble([CodecOnly(tiny_codec(s)) for s in (4.0, 8.0)])):
        atk = PGD(model, objective=objective, eps=8 / 255, steps=4)
        adv = atk(x)  # no labels needed
        assert atk.loss(adv, clean=x).mean() > atk.loss(x).mean()
        assert (adv - x).abs().max() <= 8 / 255 + 1e-6


def test_weighted_objective_is_the_weighted_sum(trained_cnn, batch):
    x, y = batch[0][:4], batch[1][:4]
    model = LICCS(tiny_codec(), trained_cnn, rounding="identity")
    obj = parse_objective("2*ce+1e+2*distortion")
    assert isinstance(obj, Weighted) and [w for w, _ in obj.terms] == [2.0, 100.0]
    out = Ensemble([model]).forward_all(x)
    want = 2 * ClassificationLoss()(out, y, False) + 100 * DistortionLoss()(out, y, False)
    torch.testing.assert_close(obj(out, y, False), want)
    assert RateLoss()(out, y, False).min() > 0
