"""Paper B's strength checks: the adaptive check table flags an adaptive attack weaker than the plain one, the share
of the damage recovered (with its bootstrap CI) on constructed rows, the per-codec claims, and the hard selection
rule of the EoT attack (the defense's arg-min, the gradient through the chosen branch only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from liccs.attack.objectives import parse_objective
from liccs.papers.b.adaptive_select import SelectionAware
from liccs.papers.b.claims import claims_table
from liccs.papers.b.defense_random import RandomKWayDefense
from liccs.papers.b.strength import adaptive_check_table, ratio_ci, share_table
from tests.attack.conftest import tiny_codec

N = 12


def _rows(codec: str, attack: str, objective: str, defense: str, k: int, psnr: np.ndarray, bpp: np.ndarray,
          steps: int = 20) -> list[dict]:
    return [{"codec": codec, "attack": attack, "objective": objective, "eps_255": 0.0 if attack == "none" else 4.0,
             "steps": 0 if attack == "none" else steps, "defense": defense, "k": k, "image": f"im{i:02d}",
             "psnr_clean": float(psnr[i]), "bpp": float(bpp[i])} for i in range(N)]


def _images(weak_select: bool = True) -> pd.DataFrame:
    """Clean PSNR 30 dB at 1 bpp; the plain attack costs 2 dB (the defense recovers 1 dB of it: a share of 0.5);
    EoT takes 0.5 dB more off the defended codec; ``select`` is weaker than the plain attack by 0.8 dB."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.05, N)
    rows = []
    for codec in ("a@q1", "b@q1"):
        one = np.ones(N)
        rows += _rows(codec, "none", "none", "none", 1, 30 + noise, one)
        rows += _rows(codec, "none", "none", "random", 4, 30 + noise, 1.01 * one)
        rows += _rows(codec, "none", "none", "oracle-rd", 4, 30.2 + noise, 1.0 * one)
        rows += _rows(codec, "pgd", "distortion-clean", "none", 1, 28 + noise, one)
        rows += _rows(codec, "pgd", "distortion-clean", "random", 4, 29 + noise, one)
        rows += _rows(codec, "pgd", "distortion-clean", "oracle-rd", 4, 29.7 + noise, one)
        rows += _rows(codec, "eot", "distortion-clean", "random", 4, 28.5 + noise, one)
        select = (29.8 if weak_select else 28.2) + noise
        rows += _rows(codec, "select-0.02", "distortion-clean", "random", 4, select, one)
        rows += _rows(codec, "pgd", "rate", "none", 1, 30 + noise, 1.5 * one)
        rows += _rows(codec, "pgd", "rate", "random", 4, 30 + noise, 1.2 * one)
        rows += _rows(codec, "pgd", "rate", "oracle-rd", 4, 30 + noise, 1.2 * one)
    return pd.DataFrame(rows)


def test_a_weaker_adaptive_attack_is_flagged_and_a_stronger_one_is_not():
    t = adaptive_check_table(_images(), 4.0, 20)
    dist = t[t["objective"] == "distortion-clean"].set_index(["codec", "attack"])
    assert bool(dist.loc[("a@q1", "select-0.02"), "flagged"]) and "weaker" in dist.loc[("a@q1", "select-0.02"), "why"]
    assert not bool(dist.loc[("a@q1", "eot"), "flagged"])
    assert dist.loc[("a@q1", "eot"), "gain"] == pytest.approx(0.5, abs=1e-9)  # 0.5 dB more lost: stronger
    t2 = adaptive_check_table(_images(weak_select=False), 4.0, 20)
    assert not t2["flagged"].any()


def test_share_of_the_damage_recovered_with_its_ci():
    t = share_table(_images(), 4.0, 20, "distortion-clean")
    a = t[(t["codec"] == "a@q1") & (t["objective"] == "distortion-clean")].set_index("recovered_by")
    assert a.loc["defense", "damage"] == pytest.approx(2.0) and a.loc["defense", "share"] == pytest.approx(0.5)
    assert a.loc["defense", "ci_low"] <= 0.5 <= a.loc["defense", "ci_high"]
    assert a.loc["defense, strongest attack per image", "share"] == pytest.approx(0.25)  # EoT's 28.5 dB is the worst
    assert a.loc["oracle-rd − its clean gain", "share"] == pytest.approx((1.7 - 0.2) / 2.0)
    r = t[(t["codec"] == "a@q1") & (t["objective"] == "rate")].set_index("recovered_by")
    assert r.loc["defense", "damage"] == pytest.approx(50.0) and r.loc["defense", "share"] == pytest.approx(0.6)


def test_ratio_ci_covers_a_known_ratio_and_refuses_too_few_images():
    rng = np.random.default_rng(1)
    den = rng.normal(2.0, 0.3, 40)
    share, lo, hi, method = ratio_ci(0.5 * den + rng.normal(0, 0.05, 40), den)
    assert lo < 0.5 < hi and share == pytest.approx(0.5, abs=0.05) and method.startswith("bootstrap")
    assert np.isnan(ratio_ci(np.ones(2), np.ones(2))[0])


def test_claims_are_per_codec_with_holm_over_every_row():
    t = claims_table(_images(), {"attack-lowers-psnr": 0.5, "gain-survives-adaptive": 0.25}, 4.0, 20,
                     objective="distortion-clean")
    assert list(t["codec"]) == ["a@q1", "b@q1", "a@q1", "b@q1"]
    assert t["claim"].str.startswith("attack-lowers-psnr [").sum() == 2
    lowers = t[t["claim"].str.startswith("attack-lowers")]
    assert (lowers["effect"].round(6) == 2.0).all()
    survives = t[t["claim"].str.startswith("gain-survives")]
    assert (survives["effect"].round(6) == 0.5).all()  # the worst per image (EoT, 28.5) − plain (28)


def test_hard_selection_keeps_the_defenses_choice_and_its_gradient_flows_through_the_chosen_branch_only():
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    d = RandomKWayDefense(tiny_codec(scale=6.0), 4, lmbda=0.01)
    hard = SelectionAware(d, hard=True)
    out = hard.forward_all(x)
    assert torch.equal(out.weights.argmax(1), out.rd.argmin(1)) and (out.weights.sum(1) == 1).all()
    for i, j in enumerate(out.weights.argmax(1).tolist()):
        assert torch.allclose(out.recs[0].x_hat[i], out.branch_x_hat[j][i])
    loss = parse_objective("distortion-clean")
    loss.prepare(hard, x.detach(), None)
    (g,) = torch.autograd.grad(loss(out, None, False).sum(), x)
    assert g.abs().sum() > 0
    assert hard.describe()["selection"].startswith("hard") and hard.describe()["tau"] is None
