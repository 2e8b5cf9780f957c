"""The ``robustness`` stage of ``liccs run``: the standard evaluation beside the run's attack, the sanity table, and
the header lines that name a failed check (the end-to-end run: ``liccs run quick-cpu --quick`` writes both tables)."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from liccs.config import ConfigError, RunConfig
from liccs.stage import Names
from liccs.stages.robustness import RobustnessStage, run_attack, sanity_notes, sanity_rows, standard_rows


def _ctx(name: str = "pgd", steps: int = 5, eps: float = 8 / 255, **robustness) -> SimpleNamespace:
    cfg = RunConfig()
    cfg.attack.name, cfg.attack.steps, cfg.attack.eps, cfg.attack.step_size = name, steps, eps, eps / 4
    cfg.robustness.enabled = True
    for k, v in robustness.items():
        setattr(cfg.robustness, k, v)
    return SimpleNamespace(cfg=cfg)


def test_the_standard_evaluation_is_set_beside_a_weak_run_attack_and_the_gap_is_named(trained_cnn, cifar4):
    x, y = cifar4[0][:24], cifar4[1][:24]
    ctx = _ctx("fgsm", steps=1, eps=4 / 255, queries=50)
    weak = run_attack(ctx, trained_cnn, "cnn", 1 / 255, 1)(x, y)  # a far smaller ball than the one evaluated
    rows = standard_rows(ctx, trained_cnn, "cnn", x, y, weak)
    run, std = rows
    assert run["evaluation"] == "fgsm" and std["evaluation"] == "standard"
    assert std["robust_acc"] < run["robust_acc"] and std["difference"] > 0
    assert std["fooled"] == std["by_apgd_ce"] + std["by_apgd_t"] + std["by_square"]
    notes = sanity_notes(pd.DataFrame(columns=["ok"]), pd.DataFrame(rows))
    assert len(notes) == 1 and "upper bounds" in notes[0] and "fgsm" in notes[0]


def test_sanity_rows_of_a_sound_attack_pass(trained_cnn, cifar4):
    x, y = cifar4[0][:16], cifar4[1][:16]
    ctx = _ctx("pgd", steps=5, eps=4 / 255, sanity_eps=[0.5, 1.0, 2.0], sanity_steps=[1, 5])
    rows = sanity_rows(ctx, trained_cnn, "cnn", x, y)
    assert [r["check"] for r in rows] == ["eps"] * 3 + ["steps"] * 2 + ["unbounded"]
    assert all(r["ok"] for r in rows) and rows[-1]["success"] >= 0.99 and rows[-1]["eps"] == 1.0
    assert sanity_notes(pd.DataFrame(rows), pd.DataFrame()) == []


def test_a_failed_sanity_row_is_named_at_the_top():
    rows = pd.DataFrame([{"check": "unbounded", "attack": "pgd", "target": "a@q1", "eps": 1.0, "steps": 10,
                          "ok": False, "why": "an unbounded attack fooled 50.0% < 99% of the images"}])
    notes = sanity_notes(rows, pd.DataFrame())
    assert notes == ["Sanity check failed (unbounded, pgd on a@q1, eps 1, steps 10): an unbounded attack fooled "
                     "50.0% < 99% of the images"]


def test_check_refuses_an_unknown_target_and_a_non_classification_attack():
    cfg = RunConfig()
    cfg.models.codecs, cfg.models.classifier = ["a@q1", "a@q4"], "clf"
    names = Names(codecs=["a@q1", "a@q4"], sources=[], targets=[], export_engines=[], transfer_engines=[])
    stage = RobustnessStage()
    cfg.robustness.target = "a@q4"
    stage.check(cfg, names)
    cfg.robustness.target = "nosuch@q1"
    with pytest.raises(ConfigError, match=r"robustness.target.*valid: a@q1, a@q4, clf"):
        stage.check(cfg, names)
    cfg.robustness.target = ""
    cfg.attack.objective = "rate"
    with pytest.raises(ConfigError, match="untargeted classification"):
        stage.check(cfg, names)
