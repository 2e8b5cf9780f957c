"""liccs's APGD (Croce & Hein, ICML 2020) and Square (Andriushchenko et al., ECCV 2020) held to torchattacks'
implementations: on the mini zoo's trained CIFAR-10 classifier and CIFAR-10 test images, each success rate lies in
the other's Wilson 95% interval.

The settings put both attacks where a weaker one shows (53 of the 64 images are classified correctly): APGD at
4/255 fools 94% of them in 10 steps, one FGSM step 74%, outside the interval [85%, 98%]; Square at 8/255 fools
about 40% in 100 queries (torchattacks 42%, [29%, 55%]), its striped start alone 26%, and the same search at
eps/2 25%.
"""

from __future__ import annotations

import pytest
import torch
from scipy import stats
from torch import Tensor, nn

from liccs.attack import APGD, Square
from liccs.data import cifar10, load_batch
from liccs.zoo import load_classifier

torchattacks = pytest.importorskip(
    "torchattacks", reason="torchattacks (the 'bench' extra) is not installed: pip install -e '.[bench]'")

pytestmark = pytest.mark.slow  # about 5 s (APGD) and 15 s (Square) on one core

IMAGES = 64


@pytest.fixture(scope="module")
def clf() -> nn.Module:
    """The mini zoo's trained CIFAR-10 classifier (shipped weights), 32×32 input."""
    return load_classifier("mini-cifar-resnet", "pretrained").eval()


@pytest.fixture(scope="module")
def correct(clf, shared_data) -> tuple[Tensor, Tensor]:
    """The first CIFAR-10 test images the classifier gets right, with their labels."""
    b = load_batch(cifar10("test", root=shared_data), range(IMAGES))
    x, y = b.images, b.label_tensor
    with torch.no_grad():
        ok = clf(x).argmax(1) == y
    assert ok.sum() >= 40, "the trained classifier should get most CIFAR-10 test images right"
    return x[ok], y[ok]


def wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


def success(clf: nn.Module, adv: Tensor, y: Tensor) -> tuple[int, int]:
    """(images misclassified at ``adv``, images)."""
    with torch.no_grad():
        return int((clf(adv).argmax(1) != y).sum()), len(y)


def assert_within(ours: tuple[int, int], theirs: tuple[int, int]) -> None:
    """Each success rate lies in the other's Wilson 95% interval."""
    (k_o, n), (k_t, _) = ours, theirs
    p_o, p_t = k_o / n, k_t / n
    (lo_o, hi_o), (lo_t, hi_t) = wilson(k_o, n), wilson(k_t, n)
    msg = f"liccs {p_o:.3f} [{lo_o:.3f}, {hi_o:.3f}] vs torchattacks {p_t:.3f} [{lo_t:.3f}, {hi_t:.3f}] ({n} images)"
    assert lo_t <= p_o <= hi_t and lo_o <= p_t <= hi_o, msg


def test_apgd_succeeds_as_often_as_torchattacks(clf, correct):
    x, y = correct
    eps = 4 / 255
    ours = APGD(clf, eps=eps, steps=10, restarts=1, objective="ce", seed=0)(x, y)
    with torch.random.fork_rng():  # torchattacks seeds the global generator
        theirs = torchattacks.APGD(clf, norm="Linf", eps=eps, steps=10, n_restarts=1, loss="ce", seed=0)(x, y)
    assert_within(success(clf, ours, y), success(clf, theirs, y))


def test_square_succeeds_as_often_as_torchattacks(clf, correct):
    x, y = correct
    eps, queries, p_init = 8 / 255, 100, 0.8
    ours = Square(clf, eps=eps, queries=queries, p_init=p_init, seed=0)(x, y)
    with torch.random.fork_rng():
        # torchattacks queries its start and then n_queries more times: the same budget is n_queries = queries - 1
        theirs = torchattacks.Square(clf, norm="Linf", eps=eps, n_queries=queries - 1, n_restarts=1, p_init=p_init,
                                     loss="margin", seed=0)(x, y)
    assert_within(success(clf, ours, y), success(clf, theirs, y))
