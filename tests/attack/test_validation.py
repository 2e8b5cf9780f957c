"""Bad input raises a clear error before any work starts."""

from __future__ import annotations

import pytest
import torch

from liccs.attack import FGSM, MIFGSM, PGD, CodecOnly, EoT, InputDiversity, build_ensemble, create_attack, parse_eps
from liccs.core.errors import InputError, UnknownNameError
from liccs.pipeline import LICCS
from tests.attack.conftest import tiny_codec


class Boom(torch.nn.Module):
    """A model that fails if it is ever run: errors must come before any work."""

    num_classes = 4

    def forward(self, x):
        raise AssertionError("the model ran before the inputs were checked")


X = torch.rand(2, 3, 16, 16)
Y = torch.tensor([0, 1])


@pytest.mark.parametrize("kwargs", [
    dict(eps=0), dict(eps=-0.1), dict(eps=1.5), dict(eps=float("nan")), dict(eps=float("inf"), norm="l2"),
    dict(norm="l1"), dict(steps=0), dict(steps=2.5), dict(steps=True), dict(alpha=0), dict(alpha=1.0),
    dict(alpha=float("nan")), dict(seed=1.5), dict(objective="nope"), dict(objective="rate"),
    dict(objective="distortion", targeted=True),
])
def test_bad_attack_arguments_raise_input_error(kwargs):
    with pytest.raises((InputError, UnknownNameError)):
        PGD(Boom(), **kwargs)


@pytest.mark.parametrize("images,labels", [
    (X * 2, Y), (X - 0.5, Y), (X.double().mul(float("nan")), Y), (X[0], Y), (X[:, :1], Y), (X[:0], Y[:0]),
    ((X * 255).to(torch.uint8), Y), (X, Y.float()), (X, Y[:1]), (X, Y[None]), (X, torch.tensor([0, 4])),
    (X, torch.tensor([-1, 0])), (X, None), (X, [0, 1]), (X, torch.tensor([True, False])),
])
def test_bad_images_or_labels_raise_before_the_model_runs(images, labels):
    with pytest.raises(InputError):
        PGD(Boom(), steps=1)(images, labels)


def test_l2_eps_beyond_the_image_diameter():
    with pytest.raises(InputError, match="diameter"):
        PGD(Boom(), norm="l2", eps=100.0, alpha=1.0)(X, Y)


def test_fgsm_refuses_steps_and_random_start():
    with pytest.raises(InputError):
        FGSM(Boom(), steps=5)
    with pytest.raises(InputError):
        FGSM(Boom(), random_start=True)
    with pytest.raises(InputError):
        FGSM(Boom(), eps=0.1, alpha=0.05)


def test_other_bad_options():
    with pytest.raises(InputError):
        MIFGSM(Boom(), decay=-1)
    with pytest.raises(InputError):
        InputDiversity(prob=1.5)
    with pytest.raises(InputError):
        InputDiversity(ratio=0.9)
    with pytest.raises(InputError):
        EoT(Boom(), samples=0)
    with pytest.raises(UnknownNameError, match="pgd"):
        create_attack("pdg", Boom())


def test_hard_rounding_and_missing_classifier_are_refused():
    with pytest.raises(InputError, match="hard"):
        PGD(LICCS(tiny_codec(), Boom(), rounding="hard"))
    with pytest.raises(InputError, match="classifier"):
        PGD(CodecOnly(tiny_codec()), objective="ce")
    with pytest.raises(InputError, match="codec"):
        PGD(Boom(), objective="distortion")


def test_unknown_ensemble_member_raises_before_loading(monkeypatch):
    import liccs.zoo

    monkeypatch.setattr(liccs.zoo, "load_codec", lambda *a, **k: pytest.fail("loaded a codec before checking names"))
    with pytest.raises(UnknownNameError, match="bmshj2018-hyperprior"):
        build_ensemble(["bmshj2018-hyperprior@q1", "bmshj2018-hyperprior@q9"], Boom())
    with pytest.raises(UnknownNameError, match="codec"):
        build_ensemble(["bmshj2018-hyperprior@q1", "nosuch-codec@q1"], Boom())
    with pytest.raises(InputError):
        build_ensemble(["bmshj2018-hyperprior@q1", "bmshj2018-hyperprior@q1"], Boom())
    with pytest.raises(InputError):
        build_ensemble(["bmshj2018-hyperprior@q1"], Boom(), reduce="median")


@pytest.mark.parametrize("text,value", [("8/255", 8 / 255), ("0.5", 0.5), ("4e-3", 4e-3), (0.25, 0.25)])
def test_parse_eps(text, value):
    assert parse_eps(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["8/0", "eight", "1/2/3"])
def test_parse_eps_refuses(text):
    with pytest.raises(InputError):
        parse_eps(text)
