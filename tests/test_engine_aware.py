"""Engine-aware sources: their names, the config checks, and the paired summary of the gap they recover."""

from __future__ import annotations

import numpy as np
import pytest

from liccs.checks.engine_aware import SESOI, engine_aware_summary
from liccs.checks.transfer import Predictions
from liccs.config import ConfigError, load_config
from liccs.jobs.run import check_names
from liccs.stage import Source, attack_sources

from .test_run import DEFAULT


@pytest.mark.parametrize("label, source", [
    ("a@q1", Source(("a@q1",))),
    ("a@q1+a@q2", Source(("a@q1", "a@q2"))),
    ("a@q1~ort-cpu-int8", Source(("a@q1",), "ort-cpu-int8")),
    ("clf~ort-cpu-int8:differential", Source(("clf",), "ort-cpu-int8", True)),
])
def test_source_labels_round_trip(label, source) -> None:
    assert Source.parse(label) == source and source.label == label


def test_engine_aware_entries_add_sources_after_the_main_ones(shared_data) -> None:
    aware = 'attack.engine_aware=["ort-cpu-int8", "ort-cpu-int8:differential"]'
    cfg = load_config(DEFAULT, quick=True, overrides=['transfer.engines=["torch", "ort-cpu-int8"]', aware])
    labels = check_names(cfg).sources
    base = ["mini-tiny-bmshj2018-hyperprior@q1", "mini-tiny-bmshj2018-hyperprior@q6", "mini-tiny-cifar-resnet"]
    assert labels == base + [f"{b}~ort-cpu-int8" for b in base] + [f"{b}~ort-cpu-int8:differential" for b in base]
    assert [s.label for s in attack_sources(cfg, base)] == labels


@pytest.mark.parametrize("overrides, named", [
    (['attack.engine_aware=["trt-int8"]'], "attack.engine_aware[0]"),  # no ONNX file to replicate
    (['attack.engine_aware=["ort-cpu-int8:sideways"]'], "attack.engine_aware[0]"),
    (['attack.engine_aware=["ort-cpu-int8"]'], "transfer.engines"),  # not measured on the engine
    (['attack.objective="differential"'], "differential"),  # differential on the PyTorch models alone
    (['attack.target_engine="ort-cpu-int8"', 'attack.objective="rate"', 'transfer.engines=["torch","ort-cpu-int8"]'],
     "attack.target_engine"),
])
def test_bad_engine_aware_configs_name_the_key(overrides, named, shared_data) -> None:
    cfg = load_config(DEFAULT, quick=True, overrides=overrides)
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        check_names(cfg)


def _preds(clean: list[int], adv: dict[str, list[int]]) -> Predictions:
    return Predictions({"t": np.array(clean)}, {(s, "t", "uint8"): np.array(p) for s, p in adv.items()})


def test_summary_counts_the_gap_and_the_part_recovered_per_image() -> None:
    """40 images, all clean-correct on both engines (label 0). PyTorch-crafted: succeeds on 30 on PyTorch, on 10 of
    them on the engine (gap 0.5); engine-aware: succeeds on 26 on the engine (recovers 16 of the 20: share 0.8)."""
    n = 40
    y = np.zeros(n, dtype=int)
    base_ref = [1] * 30 + [0] * 10
    base_eng = [1] * 10 + [0] * 30
    aware_eng = [1] * 26 + [0] * 14
    ref = _preds([0] * n, {"t": base_ref, "t~e": base_ref})
    eng = _preds([0] * n, {"t": base_eng, "t~e": aware_eng})
    out = engine_aware_summary(y, {"torch": ref, "e": eng}, ["t", "t~e"]).set_index("measure")
    assert out.loc["gap", "effect"] == pytest.approx(0.5) and out.loc["gap", "verdict"] == "holds"
    assert out.loc["recovered", "effect"] == pytest.approx(0.4) and out.loc["recovered", "n_images"] == n
    assert out.loc["recovered", "share"] == pytest.approx(0.8)
    assert out.loc["recovered", "share_ci_low"] < 0.8 < out.loc["recovered", "share_ci_high"]
    assert out.loc["gap", "sesoi"] == SESOI


def test_summary_reports_no_share_without_a_gap_and_counts_deployed_only_fooling() -> None:
    n = 30
    y = np.zeros(n, dtype=int)
    same = [1] * 15 + [0] * 15
    diff_eng = [1] * 20 + [0] * 10  # the deployment fooled on 20 …
    diff_ref = [1] * 5 + [0] * 25   # … PyTorch on 5 of them: 15 deployed-only
    ref = _preds([0] * n, {"t": same, "t~e": same, "t~e:differential": diff_ref})
    eng = _preds([0] * n, {"t": same, "t~e": same, "t~e:differential": diff_eng})
    out = engine_aware_summary(y, {"torch": ref, "e": eng}, ["t", "t~e", "t~e:differential"]).set_index("measure")
    assert np.isnan(out.loc["recovered", "share"])
    assert out.loc["deployed-only", "effect"] == pytest.approx(15 / n)
    assert out.loc["deployed-only", "mean_b"] == 0
