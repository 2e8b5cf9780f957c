"""Sanity checks (Carlini et al. 2019): success grows with eps and steps, unbounded eps fools everything, and an
adaptive attack weaker than the plain one is flagged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liccs.attack import APGD, PGD
from liccs.attack.base import Attack
from liccs.attack.sanity import UNBOUNDED_MIN, adaptive_check, monotone, sanity_table
from liccs.core.errors import InputError


@pytest.mark.parametrize("cls", [PGD, APGD])
def test_a_sound_attack_passes_every_check(cls, trained_cnn, cifar4):
    x, y = cifar4[0][::5], cifar4[1][::5]
    rows = sanity_table(lambda e, s: cls(trained_cnn, eps=e, steps=s, seed=0), x, y,
                        eps=[0.5 / 255, 1 / 255, 2 / 255, 4 / 255], steps=[1, 3, 10], tol=0.05)
    assert [r["check"] for r in rows] == ["eps"] * 4 + ["steps"] * 3 + ["unbounded"]
    assert all(r["ok"] for r in rows), [r for r in rows if not r["ok"]]
    assert rows[-1]["success"] >= UNBOUNDED_MIN and rows[-1]["eps"] == 1.0
    assert rows[3]["success"] > rows[0]["success"]  # the eps series actually rises


class Lazy(Attack):
    """A broken attack: it gives up (returns the clean images) whenever eps exceeds 2/255."""

    def perturb(self, x, labels, gen):
        if self.threat.eps > 2 / 255:
            return x
        return PGD(self.target, eps=self.threat.eps, steps=self.steps)(x, labels)


def test_a_broken_attack_is_caught(trained_cnn, cifar4):
    x, y = cifar4[0][::5], cifar4[1][::5]
    rows = sanity_table(lambda e, s: Lazy(trained_cnn, eps=e, steps=s), x, y, eps=[1 / 255, 2 / 255, 8 / 255],
                        steps=[2, 5])
    bad = [r for r in rows if not r["ok"]]
    assert {r["check"] for r in bad} == {"eps", "unbounded"}
    assert "fell as eps grew" in bad[0]["why"] and "gradient masking" in bad[-1]["why"]


def test_monotone_rule():
    assert monotone([0.1, 0.2, 0.2, 0.5]) == [True] * 4
    assert monotone([0.1, 0.3, 0.2, 0.4]) == [True, True, False, True]
    assert monotone([0.1, 0.3, 0.28], tol=0.05) == [True, True, True]
    with pytest.raises(InputError, match="increasing"):
        sanity_table(lambda e, s: None, torch.zeros(1, 3, 2, 2), torch.zeros(1), eps=[2, 1], steps=[1])


def test_adaptive_weaker_than_plain_is_flagged():
    rng = np.random.default_rng(0)
    plain = rng.normal(1.0, 0.1, 64)
    weak = adaptive_check(plain, plain - 0.2 + rng.normal(0, 0.02, 64))
    assert weak["flagged"] and weak["ci_high"] < 0 and weak["weaker_share"] > 0.9 and "not adaptive" in weak["why"]
    strong = adaptive_check(plain, plain + 0.1)
    assert not strong["flagged"] and strong["gain"] == pytest.approx(0.1) and strong["why"] == ""
    # a PSNR-like measure, where lower is stronger: a higher adaptive PSNR is the weaker attack
    psnr = adaptive_check([30.0, 31.0, 29.0], [32.0, 33.0, 30.0], higher_is_stronger=False)
    assert psnr["flagged"] and psnr["gain"] == pytest.approx(-5 / 3)
    assert not adaptive_check([1.0, 2.0], [0.99, 2.0], tol=0.01)["flagged"]
    with pytest.raises(InputError, match="one length"):
        adaptive_check([1.0, 2.0], [1.0])


def test_adaptive_check_on_real_attacks(trained_cnn, cifar4):
    """One step of PGD posing as the 'adaptive' attack against 10 steps of plain PGD: flagged, by the objective."""
    x, y = cifar4[0][::5], cifar4[1][::5]
    plain = PGD(trained_cnn, eps=2 / 255, steps=10)
    weak = PGD(trained_cnn, eps=2 / 255, steps=1)
    res = adaptive_check(plain.loss(plain(x, y), y).numpy(), weak.loss(weak(x, y), y).numpy())
    assert res["flagged"], res
    assert not adaptive_check(weak.loss(weak(x, y), y).numpy(), plain.loss(plain(x, y), y).numpy())["flagged"]
