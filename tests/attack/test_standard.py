"""The standard evaluation: worst case per image over APGD-CE, APGD-T and Square, with who found each success."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from liccs.attack import PGD, StandardEvaluation, create_attack
from liccs.core.errors import InputError


class Masked(nn.Module):
    """The trained CNN behind a pixel quantizer whose gradient is zero: gradient masking, a gradient attack's blind
    spot that a score-based one sees through."""

    def __init__(self, net: nn.Module, levels: int = 8) -> None:
        super().__init__()
        self.net, self.levels = net, levels
        self.num_classes = net.num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.net(torch.round(x * self.levels) / self.levels)


def wrong(model, adv, y) -> Tensor:
    with torch.no_grad():
        return model(adv).argmax(1) != y


def test_standard_records_who_found_each_success_and_beats_pgd(trained_cnn, cifar4):
    x, y = cifar4[0][::5], cifar4[1][::5]
    eps = 2 / 255
    std = StandardEvaluation(trained_cnn, eps=eps, steps=10, queries=100, target_classes=3)
    adv = std(x, y)
    assert (std.threat.distance(x, adv) <= eps * (1 + 1e-5)).all()
    fooled = wrong(trained_cnn, adv, y)
    assert [f != "" for f in std.found_by] == fooled.tolist()  # a success is exactly an image someone fooled
    clean_wrong = wrong(trained_cnn, x, y)
    assert [f == "clean" for f in std.found_by] == clean_wrong.tolist()
    s = std.summary()
    assert sum(s.values()) == len(x) and s["apgd-ce"] > 0
    assert std.describe()["found_by"] == s
    pgd = PGD(trained_cnn, eps=eps, steps=10)
    assert fooled.float().mean() >= wrong(trained_cnn, pgd(x, y), y).float().mean()
    assert std.queries_used.shape == (len(x),) and (std.queries_used <= 100).all()


def test_square_finds_what_gradient_masking_hides_from_apgd(trained_cnn, cifar4):
    x, y = cifar4[0][::5], cifar4[1][::5]
    model = Masked(trained_cnn)
    std = StandardEvaluation(model, eps=8 / 255, steps=5, queries=200, p_init=0.3, seed=0)
    adv = std(x, y)
    s = std.summary()
    assert s["square"] > 0, s  # APGD's gradient is zero, Square only needs the scores
    assert s["square"] > s["apgd-ce"] + s["apgd-t"]
    assert [f != "" for f in std.found_by] == wrong(model, adv, y).tolist()


def test_success_judged_by_another_predict_function(trained_cnn, batch):
    x, y = batch
    judge_calls = []

    def judge(v: Tensor) -> Tensor:  # e.g. a deployed engine; here the same model seen through a function
        judge_calls.append(v.shape[0])
        with torch.no_grad():
            return trained_cnn(v)

    std = StandardEvaluation(trained_cnn, eps=4 / 255, steps=5, queries=50, predict=judge)
    adv = std(x, y)
    assert judge_calls and std.describe()["judged_by"] == "predict"
    assert [f != "" for f in std.found_by] == wrong(trained_cnn, adv, y).tolist()


def test_standard_is_a_fixed_untargeted_classification_protocol(trained_cnn):
    with pytest.raises(InputError, match="step size"):
        StandardEvaluation(trained_cnn, alpha=1 / 255)
    with pytest.raises(InputError, match="targeted"):
        StandardEvaluation(trained_cnn, targeted=True)
    with pytest.raises(InputError, match="serves the objectives"):
        StandardEvaluation(trained_cnn, objective="margin")
    with pytest.raises(InputError, match="queries"):
        create_attack("standard", trained_cnn, queries=0)
