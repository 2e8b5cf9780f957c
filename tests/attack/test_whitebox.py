"""White-box success on a small model trained in the test, alone and behind a tiny codec."""

from __future__ import annotations

import pytest
import torch

from liccs.attack import PGD
from liccs.pipeline import LICCS
from tests.attack.conftest import tiny_codec


@pytest.mark.parametrize("with_codec", [False, True])
def test_pgd_error_is_far_above_clean_error(with_codec, trained_cnn, cifar4):
    x, y = cifar4[0][::2], cifar4[1][::2]  # 100 training images
    model = LICCS(tiny_codec(), trained_cnn, rounding="ste") if with_codec else trained_cnn
    hard = LICCS(tiny_codec(), trained_cnn, rounding="hard") if with_codec else trained_cnn
    with torch.no_grad():
        clean_err = (hard(x).argmax(1) != y).float().mean().item()
    adv = PGD(model, eps=8 / 255, steps=10, seed=0)(x, y)
    adv_png = adv.mul(255).round().div(255)  # what the saved PNG holds
    with torch.no_grad():
        adv_err = (hard(adv_png).argmax(1) != y).float().mean().item()
    assert clean_err < 0.3, f"the fixture model did not train (clean error {clean_err:.2f})"
    # a small CNN trained on 200 images is smooth: ~0.8 error at 8/255, against a few percent clean
    assert adv_err >= 0.7 and adv_err > clean_err + 0.5, (clean_err, adv_err)
