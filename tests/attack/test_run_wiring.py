"""The new attacks in ``liccs run``: compared attacks as ``SOURCE[NAME]`` sources with their table, and Square rows
per deployed engine × target (the end-to-end run: ``liccs run quick-cpu --quick --set 'attack.compare=["apgd"]'
--set transfer.square_queries=5`` writes both tables)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from liccs.config import ConfigError, load_config
from liccs.jobs.run_setup import check_names
from liccs.stages.attack import _stem, compare_label, compare_sources, split_compare
from liccs.stages.transfer import attack_compare, square_rows

QUICK = Path(__file__).resolve().parents[2] / "liccs" / "configs" / "quick-cpu.toml"


def test_compare_labels_round_trip_and_name_files():
    label = compare_label("mini-bmshj2018-hyperprior@q1+mini-bmshj2018-hyperprior@q4", "apgd")
    assert split_compare(label) == ("mini-bmshj2018-hyperprior@q1+mini-bmshj2018-hyperprior@q4", "apgd")
    assert split_compare("a@q1~ort-cpu-int8:differential") == ("a@q1~ort-cpu-int8:differential", None)
    assert _stem("a@q1[apgd]") == "a-q1-apgd" and _stem("a@q1~e:differential") == "a-q1--e-differential"
    ctx = SimpleNamespace(cfg=SimpleNamespace(attack=SimpleNamespace(compare=["apgd", "square"])))
    got = compare_sources(ctx, ["a@q1", "a@q1+b@q2", "a@q1~ort-cpu-int8", "a@q1~ort-cpu-int8:differential"])
    assert got == ["a@q1[apgd]", "a@q1[square]", "a@q1+b@q2[apgd]", "a@q1+b@q2[square]"]


def test_attack_compare_sets_the_compared_attack_beside_the_run_attack_on_the_diagonal():
    rows = [("torch", "a", "a", 0.5), ("torch", "a[apgd]", "a", 0.75), ("torch", "a", "b", 0.1),
            ("torch", "a[apgd]", "b", 0.2), ("ort-cpu", "a", "a", 0.25), ("ort-cpu", "a[apgd]", "a", 0.5)]
    table = pd.DataFrame([{"engine": e, "variant": "uint8", "source": s, "target": t, "asr": v} for e, s, t, v in rows])
    out = attack_compare(table, "pgd", ["apgd"])
    assert out[["engine", "source", "asr", "asr_compared", "difference"]].values.tolist() == [
        ["torch", "a", 0.5, 0.75, 0.25], ["ort-cpu", "a", 0.25, 0.5, 0.25]]


def test_square_rows_query_each_target_through_its_predict_function_only(trained_cnn, batch):
    x, y = batch
    calls = []

    def engine_fn(v: torch.Tensor):  # what a deployed engine's predict function gives: numpy logits
        calls.append(v.shape[0])
        with torch.no_grad():
            return trained_cnn(v).numpy()

    cfg = SimpleNamespace(transfer=SimpleNamespace(square_images=12, square_queries=100, square_p_init=0.3,
                                                   square_targets=[]),
                          attack=SimpleNamespace(eps=16 / 255, norm="linf"), run=SimpleNamespace(seed=0))
    ctx = SimpleNamespace(cfg=cfg, images=x, labels=y)
    rows = square_rows(ctx, "ort-cpu", {"cnn": engine_fn, "cnn-again": engine_fn})
    assert [r["target"] for r in rows] == ["cnn", "cnn-again"] and rows[0]["engine"] == "ort-cpu"
    r = rows[0]
    assert r["images"] == 12 and r["budget"] == 100 and r["clean_correct"] > 0 and 0 < r["asr"] <= 1
    assert 1 <= r["median_queries"] <= 100 and rows[1]["asr"] == r["asr"]  # seeded: the same draws
    assert max(calls) <= 12
    cfg.transfer.square_targets = ["cnn-again"]
    assert [r["target"] for r in square_rows(ctx, "ort-cpu", {"cnn": engine_fn, "cnn-again": engine_fn})] == [
        "cnn-again"]


def test_compare_names_are_checked_before_any_work(shared_data):
    check_names(load_config(QUICK, quick=True, overrides=['attack.compare=["apgd", "square"]']))
    with pytest.raises(ConfigError, match=r"attack.compare\[1\].*ifgsm"):
        check_names(load_config(QUICK, quick=True, overrides=['attack.compare=["apgd", "nosuch"]']))
    with pytest.raises(ConfigError, match=r"attack.compare\[0\].*serves the objectives"):
        check_names(load_config(QUICK, quick=True, overrides=['attack.compare=["square"]',
                                                              'attack.objective="distortion"']))
    with pytest.raises(ConfigError, match=r"transfer.square_targets\[0\].*mini-tiny-cifar-resnet"):
        check_names(load_config(QUICK, quick=True, overrides=['transfer.square_targets=["nosuch@q1"]']))
    with pytest.raises(ConfigError, match="transfer.square_queries"):
        load_config(QUICK, overrides=["transfer.square_queries=-1"])


def test_the_default_run_compares_apgd_and_runs_square(shared_data):
    cfg = load_config(QUICK)
    assert cfg.attack.compare == ["apgd"] and cfg.transfer.square_queries > 0
    check_names(cfg)  # its square_targets name a transfer target
