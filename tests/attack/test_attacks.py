"""Every registered attack: eps ball and pixel box, loss rise, seeds, targeted mode, FGSM = 1-step PGD."""

from __future__ import annotations

import math

import pytest
import torch

from liccs.attack import ATTACKS, FGSM, PGD, EoT, InputDiversity, create_attack
from liccs.attack.randomness import bind_generators
from liccs.pipeline import LICCS
from tests.attack.conftest import tiny_codec

NORMS = {"linf": 8 / 255, "l2": 0.5}


def make(name: str, model, **kw):
    cls = ATTACKS.get(name)
    if cls.one_step:
        kw.pop("steps", None)
    if not cls.takes_diversity and kw.pop("diversity", None) is not None:
        pytest.skip(f"{name} takes no input diversity")
    if cls.score_only:  # a budget of queries instead of steps
        kw.pop("steps", None)
        kw.setdefault("queries", 200)
        kw.setdefault("p_init", 0.3)
    if name == "standard":
        kw.setdefault("queries", 100)
    return create_attack(name, model, **kw)


@pytest.mark.parametrize("di", [None, 0.7])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", sorted(ATTACKS.names()))
def test_attack_stays_in_ball_and_box_and_raises_the_loss(name, norm, di, trained_cnn, batch):
    x, y = batch
    eps = NORMS[norm]
    atk = make(name, trained_cnn, eps=eps, norm=norm, steps=5, diversity=InputDiversity(di) if di else None)
    adv = atk(x, y)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert adv.min() >= 0 and adv.max() <= 1
    dist = atk.threat.distance(x, adv)
    assert (dist <= eps * (1 + 1e-5)).all(), dist.max()
    assert dist.max() > 0.5 * eps  # it moved
    before, after = atk.loss(x, y), atk.loss(adv, y)
    assert after.mean() > before.mean() + (0.02 if atk.score_only else 0.1)  # Square: 200 queries, no gradient
    assert (after >= before - 1e-4).float().mean() >= 0.9
    if not atk.one_step and not atk.score_only:
        assert atk.losses.shape == (5,)
    if not atk.one_step:
        assert atk.losses[-1] > atk.losses[0]


@pytest.mark.parametrize("name", sorted(ATTACKS.names()))
def test_same_seed_is_bit_identical_and_leaves_global_rng_alone(name, trained_cnn, batch):
    x, y = batch
    model = EoT(LICCS(tiny_codec(), trained_cnn, rounding="noise"), samples=2)
    kw = dict(eps=8 / 255, steps=3, seed=7, diversity=InputDiversity(0.5))
    state = torch.get_rng_state()
    a1 = make(name, model, **kw)(x, y)
    a2 = make(name, model, **kw)(x, y)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a1, a2)
    if name == "pgd":  # a random start: another seed gives another point
        assert not torch.equal(a1, make(name, model, **{**kw, "seed": 8})(x, y))


@pytest.mark.parametrize("norm", NORMS)
def test_pgd_one_step_without_random_start_equals_fgsm(norm, trained_cnn, batch):
    x, y = batch
    eps = NORMS[norm]
    pgd = PGD(trained_cnn, eps=eps, norm=norm, steps=1, alpha=eps, random_start=False, best_iterate=False)(x, y)
    fgsm = FGSM(trained_cnn, eps=eps, norm=norm)(x, y)
    assert torch.equal(pgd, fgsm)


@pytest.mark.parametrize("name", [n for n in sorted(ATTACKS.names())
                                  if not ATTACKS.get(n).one_step and not ATTACKS.get(n).score_only
                                  and ATTACKS.get(n).supports_targeted])
def test_targeted_mode_reaches_the_target(name, trained_cnn, batch):
    x, y = batch
    target = (y + 1) % 4
    atk = make(name, trained_cnn, eps=16 / 255, steps=20, targeted=True)
    adv = atk(x, target)
    with torch.no_grad():
        hit = (trained_cnn(adv).argmax(1) == target).float().mean().item()
    assert hit >= 0.9
    assert atk.losses[-1] > atk.losses[0]  # -CE(target) rises


@pytest.mark.parametrize("name", sorted(ATTACKS.names()))
def test_attack_through_the_codec_raises_the_loss_for_every_surrogate(name, trained_cnn, batch):
    x, y = batch[0][:8], batch[1][:8]
    for rounding in ("ste", "noise", "identity", "cubic"):
        atk = make(name, LICCS(tiny_codec(), trained_cnn, rounding=rounding), eps=8 / 255, steps=3)
        adv = atk(x, y)
        assert atk.loss(adv, y).mean() > atk.loss(x, y).mean(), rounding
        assert atk.describe()["surrogates"] == [rounding]


def test_pgd_l2_random_start_is_inside_the_ball(trained_cnn, batch):
    x, y = batch
    atk = PGD(trained_cnn, eps=1.0, norm="l2", steps=1, alpha=1e-6)
    adv = atk(x, y)
    d = atk.threat.distance(x, adv)
    assert (d <= 1.0 + 1e-5).all() and d.min() > 0
    assert math.isclose(atk.default_alpha(1.0, 10), 0.25)


def test_attack_restores_training_mode(trained_cnn, batch):
    trained_cnn.train()
    try:
        PGD(trained_cnn, steps=1)(*batch)
        assert trained_cnn.training
    finally:
        trained_cnn.eval()


def test_eot_averages_the_gradient_over_its_draws(trained_cnn, batch):
    x, y = batch[0][:4], batch[1][:4]

    def scale(v, g):  # a random input transform: brightness scaling
        return v * (0.8 + 0.4 * torch.rand((), generator=g))

    atk = PGD(EoT(trained_cnn, samples=3, transform=scale), steps=1)
    bind_generators(atk.target, torch.Generator().manual_seed(5))
    got, _ = atk.gradient(x, y, torch.Generator())
    g = torch.Generator().manual_seed(5)
    want = torch.zeros_like(x)
    for _ in range(3):
        xr = x.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(trained_cnn(scale(xr, g)), y, reduction="sum")
        want += torch.autograd.grad(loss, xr)[0] / 3
    torch.testing.assert_close(got, want)
    one = PGD(EoT(trained_cnn, samples=1, transform=scale), steps=1)
    bind_generators(one.target, torch.Generator().manual_seed(5))
    assert not torch.allclose(one.gradient(x, y, torch.Generator())[0], got)
