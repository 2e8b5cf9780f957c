"""APGD (Croce & Hein 2020) and the best iterate / restarts of the iterative family, on the tiny trained CNN."""

from __future__ import annotations

import pytest
import torch

from liccs.attack import APGD, MIFGSM, PGD, create_attack
from liccs.attack.apgd import checkpoints
from liccs.attack.ensemble import CodecOnly, Ensemble
from liccs.core.errors import InputError
from liccs.pipeline import LICCS
from tests.attack.conftest import tiny_codec


def fooled(model, adv, y) -> torch.Tensor:
    with torch.no_grad():
        return model(adv).argmax(1) != y


def test_checkpoints_follow_the_paper():
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert all(0 < w < 10 for w in checkpoints(10))


@pytest.mark.parametrize("norm,eps", [("linf", 2 / 255), ("l2", 0.15)])
def test_apgd_at_least_as_strong_as_pgd_at_equal_steps(norm, eps, trained_cnn, cifar4):
    """APGD against PGD at its default step size (at least as strong) and at its best fixed step size of a grid
    (within 1% of the loss: Croce & Hein 2020, APGD needs no step-size tuning to match tuned PGD; at 10 steps its
    schedule has little room to beat it), on 50 images and two seeds."""
    x, y = cifar4[0][::4], cifar4[1][::4]  # 50 images
    for seed in (0, 1):
        apgd = APGD(trained_cnn, eps=eps, norm=norm, steps=10, seed=seed)
        adv_a = apgd(x, y)
        assert apgd.losses.shape == (10,)
        best_loss, best_asr = -float("inf"), 0.0
        for alpha in (eps / 2, eps / 4, 2.5 * eps / 10, eps / 10):
            pgd = PGD(trained_cnn, eps=eps, norm=norm, steps=10, alpha=alpha, seed=seed)
            adv_p = pgd(x, y)
            best_loss = max(best_loss, float(pgd.loss(adv_p, y).mean()))
            best_asr = max(best_asr, float(fooled(trained_cnn, adv_p, y).float().mean()))
        default = PGD(trained_cnn, eps=eps, norm=norm, steps=10, seed=seed)
        loss_a = float(apgd.loss(adv_a, y).mean())
        assert loss_a >= float(default.loss(default(x, y), y).mean()), seed
        assert loss_a >= 0.99 * best_loss, (seed, loss_a, best_loss)
        assert float(fooled(trained_cnn, adv_a, y).float().mean()) >= best_asr - 0.02, seed  # one image of 50
        assert (apgd.threat.distance(x, adv_a) <= eps * (1 + 1e-5)).all()


@pytest.mark.parametrize("name", ["pgd", "ifgsm", "mifgsm", "apgd"])
def test_best_iterate_is_never_worse_than_the_last(name, trained_cnn, batch):
    x, y = batch
    kw = dict(eps=8 / 255, steps=6, seed=3)
    best = create_attack(name, trained_cnn, **kw)
    adv = best(x, y)
    got = best.loss(adv, y)
    torch.testing.assert_close(got, best.final_losses)
    if name == "apgd":
        return
    last_atk = create_attack(name, trained_cnn, best_iterate=False, **kw)
    last = last_atk.loss(last_atk(x, y), y)
    assert (got >= last - 1e-6).all()


def test_best_iterate_keeps_the_start_when_every_step_lowers_the_objective(trained_cnn, batch):
    """A step size far too large overshoots: the best iterate is the starting point for images it hurt."""
    x, y = batch
    atk = PGD(trained_cnn, eps=8 / 255, steps=3, random_start=False, targeted=True)
    adv = atk(x, (y + 1) % 4)
    assert (atk.loss(adv, (y + 1) % 4) >= atk.loss(x, (y + 1) % 4) - 1e-6).all()


@pytest.mark.parametrize("cls", [PGD, MIFGSM, APGD])
def test_restarts_never_lose_to_one_run(cls, trained_cnn, batch):
    x, y = batch
    one = cls(trained_cnn, eps=2 / 255, steps=4, seed=1)
    three = cls(trained_cnn, eps=2 / 255, steps=4, seed=1, restarts=3)
    l1, l3 = one.loss(one(x, y), y), three.loss(three(x, y), y)
    assert (l3 >= l1 - 1e-6).all()
    assert three.losses.shape == (12,)
    assert three.describe()["restarts"] == 3


@pytest.mark.parametrize("objective", ["ce", "margin", "dlr", "distortion", "distortion-clean", "distortion-recon",
                                       "rate", "ce+10*distortion"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_apgd_raises_every_objective(objective, norm, trained_cnn, batch):
    x, y = batch[0][:8], batch[1][:8]
    model = LICCS(tiny_codec(), trained_cnn, rounding="ste")
    rs = objective in ("distortion-clean", "distortion-recon")  # zero gradient at the clean image: start away
    atk = APGD(model, eps=4 / 255 if norm == "linf" else 0.3, norm=norm, steps=5, objective=objective,
               random_start=rs)
    adv = atk(x, y)
    before, after = atk.loss(x, y), atk.loss(adv, y, clean=x)
    if not rs:  # from the clean image: the best iterate is never below it
        assert (after >= before - 1e-6).all()
    assert after.mean() > before.mean()


def test_apgd_on_a_bare_codec_and_the_differential_objective(trained_cnn, batch):
    x, y = batch[0][:8], batch[1][:8]
    codec = APGD(CodecOnly(tiny_codec()), eps=4 / 255, steps=4, objective="rate")
    adv = codec(x)
    assert codec.loss(adv).mean() > codec.loss(x).mean()
    pair = Ensemble([LICCS(tiny_codec(8.0), trained_cnn), LICCS(tiny_codec(4.0), trained_cnn)], names=["f", "d"])
    diff = APGD(pair, eps=4 / 255, steps=4, objective="differential", random_start=False)
    adv = diff(x, y)
    assert (diff.loss(adv, y) >= diff.loss(x, y) - 1e-6).all()


def test_apgd_targeted_dlr_reaches_the_target(trained_cnn, batch):
    x, y = batch
    t = (y + 1) % 4
    atk = APGD(trained_cnn, eps=16 / 255, steps=20, targeted=True, objective="dlr")
    with torch.no_grad():
        hit = (trained_cnn(atk(x, t)).argmax(1) == t).float().mean().item()
    assert hit >= 0.9


def test_dlr_is_scale_invariant_and_refuses_two_classes(trained_cnn, batch):
    from liccs.attack.objectives import ClassificationLoss

    x, y = batch
    with torch.no_grad():
        z = trained_cnn(x)
    dlr = ClassificationLoss("dlr")
    for targeted in (False, True):
        torch.testing.assert_close(dlr._loss(z, y, targeted), dlr._loss(3 * z, y, targeted))
    with pytest.raises(InputError, match="at least 3 classes"):
        dlr._loss(z[:, :2], y.clamp(max=1), False)


def test_apgd_refuses_a_step_size_and_bad_parameters(trained_cnn):
    with pytest.raises(InputError, match="own step size"):
        APGD(trained_cnn, alpha=1 / 255)
    with pytest.raises(InputError, match="rho"):
        APGD(trained_cnn, rho=1.5)
    with pytest.raises(InputError, match="restarts"):
        PGD(trained_cnn, restarts=0)
