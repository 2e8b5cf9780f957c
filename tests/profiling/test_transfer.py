"""Transfer metrics on hand-made predictions, and the driver on hand-made predict functions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from liccs.checks.transfer import (
    as_uint8_variant,
    cell_metrics,
    gap_summary,
    matrices,
    top1,
    transfer_gap,
    transfer_matrix,
)
from liccs.core.errors import InputError

LABELS = [0, 1, 2, 3, 4, 5]
CLEAN = [0, 1, 2, 3, 9, 9]  # images 0-3 correct when clean, 4-5 wrong
ADV = [0, 7, 2, 3, 4, 8]  # image 1 fooled; image 4 wrong→right; image 5 changes its wrong answer


def test_cell_metrics_on_hand_made_predictions():
    m = cell_metrics(LABELS, CLEAN, ADV, ref_clean_pred=[0, 1, 2, 3, 4, 9], ref_adv_pred=[0, 7, 2, 0, 4, 8])
    assert m["n"] == 6 and m["n_clean_correct"] == 4
    assert m["clean_acc"] == pytest.approx(4 / 6)
    assert m["adv_acc"] == pytest.approx(4 / 6)  # 0, 2, 3, 4
    # ASR counts only the clean-correct images 0-3, of which image 1 is fooled (not 2/6 over all images,
    # not 1 - adv_acc/clean_acc = 0)
    assert m["asr"] == pytest.approx(1 / 4)
    # fooling rate: adversarial prediction against the target's own clean prediction (images 1, 4, 5)
    assert m["fooling_rate"] == pytest.approx(3 / 6)
    assert m["agree_clean"] == pytest.approx(5 / 6) and m["agree_adv"] == pytest.approx(5 / 6)


def test_asr_is_nan_without_clean_correct_images_and_targeted_counts_hits():
    m = cell_metrics([0, 0], [1, 1], [2, 2])
    assert m["n_clean_correct"] == 0 and math.isnan(m["asr"]) and m["fooling_rate"] == 1.0
    assert math.isnan(m["agree_clean"])
    t = cell_metrics(LABELS, CLEAN, ADV, targets=[5, 7, 5, 5, 5, 5])  # only image 1 reaches its target
    assert t["asr"] == pytest.approx(1 / 4)


def test_bad_predictions_are_named():
    with pytest.raises(InputError, match="adv_pred"):
        cell_metrics(LABELS, CLEAN, ADV[:5])
    with pytest.raises(InputError, match="labels"):
        cell_metrics(np.array(LABELS, dtype=float), CLEAN, ADV)
    with pytest.raises(InputError, match="agree_adv"):
        cell_metrics(LABELS, CLEAN, ADV, ref_adv_pred=[0])
    assert top1(torch.tensor([[0.1, 0.9], [2.0, 1.0]])).tolist() == [1, 0]


def test_uint8_variant_rounds_not_truncates():
    x = torch.tensor([0.0, 128.4 / 255, 128.6 / 255, 1.2])
    assert (as_uint8_variant(x) * 255).round().tolist() == [0, 128, 129, 255]


def _threshold_model(threshold: float):
    """Class 1 when pixel (0, 0, 0) is above ``threshold`` (on the 0-255 scale), else class 0."""
    def predict(images: torch.Tensor) -> torch.Tensor:
        above = (images[:, 0, 0, 0] * 255 > threshold).float()
        return torch.stack([1 - above, above], dim=1)
    return predict


def test_transfer_matrix_float_and_uint8_and_the_gap():
    n = 5
    clean = torch.full((n, 3, 4, 4), 100 / 255)  # every target says class 0 on clean images
    labels = torch.zeros(n, dtype=torch.long)
    adversarial = {"q1": torch.full((n, 3, 4, 4), 128.3 / 255),  # float crosses 128.2; uint8 (128) does not
                   "q8": torch.full((n, 3, 4, 4), 200 / 255)}  # crosses every threshold
    torch_targets = {"t1": _threshold_model(128.2), "t2": _threshold_model(150)}
    engine_targets = {"t1": _threshold_model(128.35), "t2": _threshold_model(150)}  # drifted threshold
    ref_table, ref_preds = transfer_matrix(adversarial, clean, labels, torch_targets, engine="torch",
                                           batch_size=2, progress=False)
    eng_table, _ = transfer_matrix(adversarial, clean, labels, engine_targets, engine="ort-cpu-int8",
                                   reference=ref_preds, batch_size=2, progress=False)
    table = pd.concat([ref_table, eng_table], ignore_index=True)
    assert len(table) == 2 * 2 * 2 * 2  # engines × sources × targets × variants
    asr = table.set_index(["engine", "source", "target", "variant"])["asr"]
    assert asr[("torch", "q1", "t1", "float")] == 1.0 and asr[("torch", "q1", "t1", "uint8")] == 0.0
    assert asr[("ort-cpu-int8", "q1", "t1", "float")] == 0.0
    assert asr[("torch", "q1", "t2", "float")] == 0.0 and asr[("torch", "q8", "t2", "uint8")] == 1.0
    eng = table[table["engine"] == "ort-cpu-int8"].set_index(["source", "target", "variant"])
    assert eng.loc[("q1", "t1", "float"), "agree_adv"] == 0.0 and eng.loc[("q8", "t1", "float"), "agree_adv"] == 1.0
    assert (eng["agree_clean"] == 1.0).all() and table.loc[table["engine"] == "torch", "agree_clean"].isna().all()

    m = matrices(table, "asr", variant="float")
    assert set(m) == {"torch", "ort-cpu-int8"}
    assert m["torch"].loc["q1", "t1"] == 1.0 and m["torch"].shape == (2, 2)

    gaps = transfer_gap(table, precision={"ort-cpu-int8": "int8"})
    assert set(gaps["engine"]) == {"ort-cpu-int8"} and (gaps["precision"] == "int8").all()
    g = gaps.set_index(["source", "target", "variant"])["gap"]
    assert g[("q1", "t1", "float")] == 1.0 and g[("q1", "t1", "uint8")] == 0.0 and g[("q8", "t2", "float")] == 0.0
    summary = gap_summary(gaps).set_index("variant")
    assert summary.loc["float", "mean_gap"] == pytest.approx(0.25) and summary.loc["float", "cells"] == 4


def test_driver_refuses_mismatched_sets():
    clean = torch.zeros(2, 3, 4, 4)
    with pytest.raises(InputError, match="'q1'"):
        transfer_matrix({"q1": torch.zeros(3, 3, 4, 4)}, clean, [0, 0], {"t": _threshold_model(1)}, progress=False)
    with pytest.raises(InputError, match="variants"):
        transfer_matrix({"q1": clean}, clean, [0, 0], {"t": _threshold_model(1)}, variants=("int8",), progress=False)
    with pytest.raises(InputError, match="reference engine"):
        table, _ = transfer_matrix({"q1": clean}, clean, [0, 0], {"t": _threshold_model(1)}, engine="ort-cpu",
                                   progress=False)
        transfer_gap(table)
