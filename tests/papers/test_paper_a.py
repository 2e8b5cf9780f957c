"""Paper A's driver: the quick variant end to end (every table and report file, equal sampling budgets), the
table reshaping and the neighbour/distance summary on a hand-made transfer table with known answers, the
gradient-evaluation count, and bad input refused before any work, naming the key."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from liccs.config import ConfigError, load_config
from liccs.papers import paper_a
from liccs.papers import paper_a_tables as T
from liccs.papers.paper_a_findings import quality_findings
from liccs.papers.paper_a_sampling import asr_matrix

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "paper-a.toml"
A, B, CLF = "bmshj2018-hyperprior", "mbt2018-mean", "resnet18"
GAP = 0.05  # ort-cpu's ASR is PyTorch's minus GAP in every cell of the hand-made table


def hand_table(falling: bool = True) -> pd.DataFrame:
    """Two architectures × q1..q3 and the classifier alone, on torch and ort-cpu, float and uint8.

    Same architecture: ASR = 1 − 0.25·|Δq| (``falling``) or 0.25 + 0.25·|Δq|; across architectures:
    0.1·source q; classifier → itself 0.9, → a codec 0.3; a codec → the classifier 0.2.
    """
    models = [f"{a}@q{q}" for a in (A, B) for q in (1, 2, 3)] + [CLF]
    rows = []
    for engine, variant, s, t in itertools.product(("torch", "ort-cpu"), ("float", "uint8"), models, models):
        ps, pt = T.codec_parts(s), T.codec_parts(t)
        if ps and pt and ps[0] == pt[0]:
            d = abs(ps[1] - pt[1])
            asr = 1 - 0.25 * d if falling else 0.25 + 0.25 * d
        elif ps and pt:
            asr = 0.1 * ps[1]
        else:
            asr = 0.9 if s == t else (0.3 if pt else 0.2)
        rows.append({"engine": engine, "variant": variant, "source": s, "target": t, "clean_acc": 0.8,
                     "adv_acc": 0.1, "n_clean_correct": 100, "asr": asr - (GAP if engine == "ort-cpu" else 0.0),
                     "fooling_rate": 0.5})
    return pd.DataFrame(rows)


def test_quality_matrix_reshapes_each_architecture() -> None:
    qm = T.quality_matrix(hand_table(), CLF)
    assert len(qm) == 2 * 2 * 2 * 9  # engines × variants × archs × 3×3 cells
    m = qm[(qm.engine == "torch") & (qm.variant == "uint8") & (qm.arch == B)].pivot(
        index="source_q", columns="target_q", values="asr")
    assert m.to_numpy().tolist() == [[1.0, 0.75, 0.5], [0.75, 1.0, 0.75], [0.5, 0.75, 1.0]]
    matrix, undefined = asr_matrix(hand_table(), "torch", "uint8", [f"{A}@q{q}" for q in (1, 2, 3)])
    assert undefined == 0 and matrix.values.tolist() == m.to_numpy().tolist()
    cross = T.cross_arch(hand_table(), CLF)
    torch_u8 = cross[(cross.engine == "torch") & (cross.variant == "uint8")]
    assert len(torch_u8) == 6 and (torch_u8["asr"] - 0.1 * torch_u8["quality"]).abs().max() < 1e-12


@pytest.mark.parametrize("falling", [True, False])
def test_neighbour_distance_summary_known_answers(falling: bool) -> None:
    qm = T.quality_matrix(hand_table(falling), CLF)
    dist = T.distance_summary(qm)
    d = dist[(dist.engine == "torch") & (dist.variant == "float") & (dist.arch == "all")].set_index("abs_dq")
    expect = {1: 0.75, 2: 0.5} if falling else {1: 0.5, 2: 0.75}
    assert d.loc[1, "mean_asr"] == pytest.approx(expect[1]) and d.loc[2, "mean_asr"] == pytest.approx(expect[2])
    assert d.loc[1, "cells"] == 8 and d.loc[2, "cells"] == 4  # two archs × (4 and 2 off-diagonal cells)
    trend = T.distance_trend(qm).set_index(["engine", "variant", "arch"])
    r = trend.loc[("torch", "float", A)]
    assert r["slope_per_q"] == pytest.approx(-0.25 if falling else 0.25)
    assert r["spearman_rho"] == pytest.approx(-1.0 if falling else 1.0)
    assert bool(r["neighbours_harder"]) is falling
    finding = " ".join(quality_findings(T.distance_trend(qm), dist, "torch", "float"))
    assert ("ARE hit harder" in finding) is falling and "|Δq|=1: " in finding


def test_classifier_alone_and_engine_gaps() -> None:
    t = hand_table()
    ca = T.classifier_alone(t, CLF)
    row = ca[(ca.engine == "torch") & (ca.variant == "uint8") & (ca.arch == A) & (ca.quality == 2)].iloc[0]
    assert (row.asr_whitebox_liccs, row.asr_whitebox_classifier) == (1.0, 0.9)
    assert (row.asr_classifier_to_liccs, row.asr_liccs_to_classifier) == (0.3, 0.2)
    gaps = T.engine_gaps(t, CLF, "torch", {"ort-cpu": "fp32"})
    assert set(gaps["engine"]) == {"ort-cpu"} and (gaps["mean_gap"] - GAP).abs().max() < 1e-12
    assert set(gaps["relation"]) == {T.WHITEBOX, T.SAME_ARCH, T.CROSS_ARCH, T.CLF_TO_LICCS, T.LICCS_TO_CLF, "all"}
    alls = gaps[gaps.relation == "all"].set_index("variant")
    assert alls.loc["uint8", "cells"] == 49  # 7 × 7 cells


def sampling_rows(evals: list[int]) -> pd.DataFrame:
    return pd.DataFrame([{"arch": A, "k": 2, "method": "saliency" if i == 0 else "random", "draw": i,
                          "members": "q1+q2", "asr_same_arch": 0.5, "asr_other_archs": 0.2, "asr_classifier": 0.1,
                          "grad_evals": e, "steps": 10, "images": 8} for i, e in enumerate(evals)])


def test_unequal_sampling_budget_is_refused() -> None:
    s = T.sampling_summary(sampling_rows([160, 160, 160]))
    assert s.loc[0, "grad_evals_per_set"] == 160 and s.loc[0, "draws"] == 2
    with pytest.raises(T.BudgetError, match="grad_evals"):
        T.sampling_summary(sampling_rows([160, 160, 240]))


def test_counting_ensemble_counts_member_gradient_evaluations() -> None:
    from liccs.attack.base import create_attack
    from liccs.papers.paper_a_attacks import CountingEnsemble

    torch.manual_seed(0)
    members = [nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)) for _ in range(3)]
    for k in (1, 3):
        ens = CountingEnsemble(members[:k], names=[f"m{i}" for i in range(k)])
        create_attack("pgd", ens, eps=8 / 255, steps=4)(torch.rand(5, 3, 8, 8), torch.arange(5))
        assert ens.grad_evals == k * 4 * 5
        ens(torch.rand(5, 3, 8, 8))  # an evaluation without grad is not counted
        assert ens.grad_evals == k * 4 * 5


def test_k_above_an_architectures_qualities_is_refused_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import liccs.run

    monkeypatch.setattr(liccs.run, "load_context", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ConfigError, match=r"sampling\.k\[1\].*3 is more than the 2 qualities"):
        liccs.run.run_config(CONFIG, quick=True, overrides=["sampling.k=[1, 3]"], progress=False)
    with pytest.raises(ConfigError, match=r"sampling\.images"):
        load_config(CONFIG, quick=True, overrides=["sampling.images=0"])


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    from liccs.cli import main

    out = tmp_path_factory.mktemp("paper-a") / "quick"
    assert main(["run", str(CONFIG), "--quick", "--no-progress", "--out", str(out)]) == 0
    return out


def test_quick_run_writes_every_table_and_report_file(quick_run: Path) -> None:
    for f in ("manifest.json", "report.md", "report.html"):
        assert (quick_run / f).stat().st_size > 0, f
    for name, _, _ in paper_a.TABLES:
        df = pd.read_csv(quick_run / "tables" / f"{name}.csv")
        assert len(df), name
    for t in ("transfer", "whitebox", "transfer_gap", "transfer_gap_summary"):
        assert (quick_run / "tables" / f"{t}.csv").is_file(), t
    md = (quick_run / "report.md").read_text()
    assert "Paper A white-box ASR" in md and "Paper A sampling" in md and "no selection leakage" in md
    wb = pd.read_csv(quick_run / "tables" / "paper_a_whitebox.csv")
    assert set(wb["attack"]) == {"pgd", "fgsm"} and "classifier alone" in set(wb["model"])


def test_quick_run_sampling_budgets_are_equal(quick_run: Path) -> None:
    cfg = load_config(CONFIG, quick=True)
    sets = pd.read_csv(quick_run / "tables" / "paper_a_sampling.csv")
    assert set(sets["k"]) == set(cfg.sampling.k) and sets["arch"].nunique() == 2
    for (_, k), g in sets.groupby(["arch", "k"]):
        assert list(g["method"]) == ["saliency"] + ["random"] * cfg.sampling.random_draws
        assert set(g["grad_evals"]) == {k * cfg.attack.steps * cfg.sampling.images}
    summary = pd.read_csv(quick_run / "tables" / "paper_a_sampling_summary.csv")
    assert len(summary) == 2 * len(cfg.sampling.k)


def test_differences_inside_the_images_noise_are_not_called_a_trend() -> None:
    """At the ASR ceiling (0.99 everywhere, 0.0005 between neighbours and distant cells, 100 images per cell)
    the verdict is "no difference", not a trend read off the fourth decimal."""
    t = hand_table()
    t["asr"] = 0.99 - 0.0005 * (t["asr"] < 1.0)
    qm = T.quality_matrix(t, CLF)
    trend = T.distance_trend(qm)
    assert (trend["verdict"] == "no difference beyond noise").all() and not trend["neighbours_harder"].any()
    finding = " ".join(quality_findings(trend, T.distance_summary(qm), "torch", "float"))
    assert "ARE hit harder" not in finding and "beyond the noise of the images" in finding
    assert T.binomial_noise(0.99, 100) == pytest.approx(2 * (0.99 * 0.01 / 100) ** 0.5)


def test_a_gradual_fall_with_distance_is_a_trend_even_when_the_distant_mean_dilutes_it() -> None:
    """ASR = 0.70 − 0.04·|Δq| over q1..q5 on 100 images per cell: neighbours 0.66 against the distant mean 0.593
    (0.067, inside the noise 0.097), but against the farthest cells 0.54 (0.12, beyond it): neighbours ARE hit
    harder. The same fall upside down is "distant harder"; a flat matrix is no trend."""
    models = [f"{A}@q{q}" for q in range(1, 6)] + [CLF]

    def table(step: float) -> pd.DataFrame:
        rows = []
        for s, t in itertools.product(models, models):
            ps, pt = T.codec_parts(s), T.codec_parts(t)
            asr = 0.70 - step * abs(ps[1] - pt[1]) if ps and pt else 0.5
            rows.append({"engine": "torch", "variant": "float", "source": s, "target": t, "clean_acc": 0.8,
                         "adv_acc": 0.1, "n_clean_correct": 100, "asr": asr, "fooling_rate": 0.5})
        return pd.DataFrame(rows)

    verdicts = {}
    for step in (0.04, -0.04, 0.0):
        r = T.distance_trend(T.quality_matrix(table(step), CLF)).set_index("arch").loc[A]
        assert r["farthest_dq"] == 4 and r["farthest_asr"] == pytest.approx(0.70 - 4 * step)
        assert r["neighbour_asr"] - r["distant_asr"] == pytest.approx(step * 20 / 12)
        assert abs(r["neighbour_asr"] - r["distant_asr"]) < r["noise"]  # the old contrast alone sees nothing
        verdicts[step] = r["verdict"]
    assert verdicts == {0.04: "neighbours harder", -0.04: "distant harder", 0.0: "no difference beyond noise"}
