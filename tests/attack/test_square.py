"""Square (Andriushchenko et al. 2020): scores only, against PyTorch and against an ONNX Runtime session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liccs.attack import Square, square_attack
from liccs.attack.square import margins, p_schedule
from liccs.attack.threat import ThreatModel
from liccs.core.errors import InputError


def accuracy(predict, x, y) -> float:
    with torch.no_grad():
        return float((torch.as_tensor(np.asarray(predict(x))).argmax(1) == y).float().mean())


@pytest.fixture(scope="module")
def ort_predict(trained_cnn, tmp_path_factory):
    """The trained CNN exported to ONNX and run by ONNX Runtime: Square sees only ``InferenceSession.run``."""
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path_factory.mktemp("onnx") / "cnn.onnx"
    torch.onnx.export(trained_cnn, (torch.rand(2, 3, 32, 32),), str(path), dynamo=False, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "b"}, "logits": {0: "b"}})
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    calls = []

    def predict(x: torch.Tensor) -> np.ndarray:
        assert not x.requires_grad
        calls.append(x.shape[0])
        return sess.run(None, {"x": x.numpy().astype(np.float32)})[0]

    predict.calls = calls
    return predict


@pytest.mark.parametrize("norm,eps,drop", [("linf", 8 / 255, 0.15), ("l2", 1.0, 0.1)])
def test_square_lowers_the_accuracy_of_an_onnx_runtime_session_from_its_outputs_only(norm, eps, drop, ort_predict,
                                                                                     cifar4):
    x, y = cifar4[0][::5], cifar4[1][::5]  # 40 images
    before = accuracy(ort_predict, x, y)
    ort_predict.calls.clear()
    res = square_attack(ort_predict, x, y, eps=eps, norm=norm, queries=300, p_init=0.3, seed=0)
    asked = sum(ort_predict.calls)  # the clean images once, then one image per query
    after = accuracy(ort_predict, res.adv, y)
    assert after <= before - drop, (before, after)
    assert (ThreatModel(norm, eps).distance(x, res.adv) <= eps * (1 + 1e-5)).all()
    assert res.adv.min() >= 0 and res.adv.max() <= 1
    # per image queries: 0 for the clean-misclassified, ≤ the budget, and what the predict function was asked
    assert (res.queries[~res.clean_correct] == 0).all()
    assert (res.queries <= 300).all() and (res.queries[res.clean_correct] >= 1).all()
    assert asked == x.shape[0] + int(res.queries.sum())
    fooled = (torch.as_tensor(ort_predict(res.adv)).argmax(1) != y)
    assert torch.equal(res.success & res.clean_correct, fooled & res.clean_correct)
    # a success stops its image: its last query was the one that fooled it
    assert (res.queries[res.success & res.clean_correct] < 300).float().mean() > 0.5


def test_square_is_reproducible_and_more_queries_never_hurt(trained_cnn, batch):
    x, y = batch
    f = lambda v: trained_cnn(v)  # noqa: E731
    a = square_attack(f, x, y, eps=4 / 255, queries=50, seed=1)
    b = square_attack(f, x, y, eps=4 / 255, queries=50, seed=1)
    assert torch.equal(a.adv, b.adv) and torch.equal(a.queries, b.queries)
    c = square_attack(f, x, y, eps=4 / 255, queries=200, seed=1)
    assert c.success.sum() >= a.success.sum()
    assert (c.margin <= a.margin + 1e-6).all()  # the same draws continue: the margin only goes down


def test_square_targeted_and_the_registered_attack(trained_cnn, batch):
    x, y = batch
    t = (y + 1) % 4
    res = square_attack(lambda v: trained_cnn(v), x, t, eps=16 / 255, queries=500, p_init=0.3, targeted=True, seed=0)
    with torch.no_grad():
        hit = trained_cnn(res.adv).argmax(1) == t
        assert hit.float().mean() >= 0.25 + (trained_cnn(x).argmax(1) == t).float().mean()
    assert torch.equal(hit, res.success)
    atk = Square(trained_cnn, eps=8 / 255, queries=200)
    adv = atk(x, y)
    assert atk.loss(adv, y).mean() > atk.loss(x, y).mean()
    d = atk.describe()
    assert d["score_only"] and d["queries"] == 200 and len(d["queries_used"]) == len(x) and d["steps"] is None


def test_square_refuses_gradient_arguments_and_bad_budgets(trained_cnn, batch):
    with pytest.raises(InputError, match="no steps"):
        Square(trained_cnn, steps=10)
    with pytest.raises(InputError, match="queries"):
        Square(trained_cnn, queries=0)
    with pytest.raises(InputError, match="p_init"):
        square_attack(lambda v: v, *batch, eps=0.1, p_init=0)
    with pytest.raises(InputError, match="serves the objectives"):
        Square(trained_cnn, objective="distortion")


def test_schedule_and_margin():
    assert p_schedule(0.08, 1, 1000) == 0.08 and p_schedule(0.08, 999, 1000) == 0.08 / 512
    assert p_schedule(0.08, 100, 1000) == 0.08 / 16 and p_schedule(0.08, 30, 1000) == 0.08 / 8
    z = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    assert margins(z, torch.tensor([0, 0]), False).tolist() == [2.0, -2.0]
    assert margins(z, torch.tensor([2, 2]), True).tolist() == [3.0, 1.0]
