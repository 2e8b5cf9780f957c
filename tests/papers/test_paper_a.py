"""Paper A's driver: the per-image cells and pairs, the claims on hand-made outcomes with known answers (an
effect that holds, an absent effect with enough images, too few images to decide), the sampling ablation's
percentile and budget check, bad input refused before any work, and the quick variant end to end."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from liccs.config import ConfigError, load_config
from liccs.core import stats
from liccs.jobs.run_setup import RunError
from liccs.papers.a import stage as paper_a
from liccs.papers.a.cells import Cells, Setting, ladder_pairs
from liccs.papers.a.claims import claims
from liccs.papers.a.outcomes import IMAGE_SETS, recompute_claims
from liccs.papers.a.sampling import ablation, common_targets, percentile, unit_percentiles
from liccs.papers.a.tables import BudgetError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "liccs" / "configs" / "paper-a.toml"
A, IND, CLF = "bmshj2018-hyperprior", "mbt2018-mean", "resnet18"
LADDER = [f"{A}@q{q}" for q in range(1, 7)]
LINEAGE = [f"{IND}@q{q}" for q in (2, 4, 6)]
ST = Setting(2 / 255, 10)


def sc(**kw: object) -> SimpleNamespace:
    base = dict(far_dq=4, k=[2], score="envelope", interpolation="linear", alpha=0.05, sesoi_neighbour=0.05,
                sesoi_lineage=0.05, sesoi_saliency=0.03, sesoi_codec_aware=0.05)
    return SimpleNamespace(**(base | kw))


def hand_cells(n: int, p_near: float, p_far: float, seed: int = 0) -> Cells:
    """Outcomes drawn per image: success with probability ``p_near`` at |Δq| ≤ 1, ``p_far`` beyond; the
    classifier alone at ``p_far``; every clean image correct except image 0 on q1 (NaN there)."""
    rng = np.random.default_rng(seed)
    cells = Cells(torch.zeros(n, 3, 2, 2), torch.zeros(n, dtype=torch.long), {}, 8)
    models = [*LADDER, *LINEAGE]
    q = {m: int(m.split("@q")[1]) for m in models}
    for s in [*models, CLF]:
        for t in models:
            p = p_far if s == CLF or abs(q[s] - q[t]) > 1 else p_near
            v = (rng.random(n) < p).astype(float)
            if t == LADDER[0]:
                v[0] = np.nan
            cells.outcome[(ST, s, t)] = v
    return cells


def test_ladder_pairs_and_per_image_means() -> None:
    assert len(ladder_pairs(LADDER, lambda d: d == 1)) == 10 and len(ladder_pairs(LADDER, lambda d: d >= 4)) == 6
    cells = Cells(torch.zeros(3, 3, 2, 2), torch.zeros(3, dtype=torch.long), {}, 8)
    cells.outcome[(ST, "a", "b")] = np.array([1.0, np.nan, np.nan])
    cells.outcome[(ST, "a", "c")] = np.array([0.0, 1.0, np.nan])
    out = cells.per_image(ST, [("a", "b"), ("a", "c")])
    assert out[0] == 0.5 and out[1] == 1.0 and np.isnan(out[2])  # NaN: counted nowhere


@pytest.mark.parametrize(("n", "p_near", "p_far", "expected"), [
    (400, 0.7, 0.4, stats.HOLDS),       # a 0.3 effect on 400 images
    (400, 0.5, 0.5, stats.NOT_HELD),    # no effect, the CI excludes 0.05
    (6, 0.55, 0.5, stats.UNDECIDED),    # six images cannot tell
])
def test_neighbour_claim_verdicts_known_answers(n: int, p_near: float, p_far: float, expected: str) -> None:
    table, lines = claims(hand_cells(n, p_near, p_far), ST, LADDER, [LINEAGE], CLF, None, None, sc())
    row = table.set_index("claim").loc["neighbours"]
    assert row["verdict"] == expected and row["n_images"] == n
    assert row["effect"] == pytest.approx(row["mean_a"] - row["mean_b"])
    assert row["ci_low"] <= row["effect"] <= row["ci_high"] and row["mde"] > 0
    assert any(line.startswith("Paper A claim, neighbours:") and "MDE" in line for line in lines)
    # the lineage ladder's q2/q4/q6 have |Δq| = 2 and 4 only: nothing is "near" there, so no effect
    assert table.set_index("claim").loc["neighbours without shared weights", "effect"] == pytest.approx(0, abs=0.1)
    assert len(table) == 6 and set(table["verdict"]) <= set(stats.VERDICTS)
    across = table.set_index("claim").loc["neighbours across training (chain ↔ independent)"]
    assert across["effect"] == pytest.approx(p_near - p_far, abs=0.5 if n < 20 else 0.1)


def test_lineage_claims_resample_the_replicates_too() -> None:
    """Two replicates of the lineage ladder: the claims stack them (two-way CI), and a replicate whose neighbours
    transfer like far qualities pulls the effect toward zero and widens the CI beyond the images-only one."""
    second = [f"bmshj2018-factorized@q{q}" for q in (2, 4, 6)]  # any registered name: the second seed
    cells = hand_cells(300, 0.7, 0.3)
    rng = np.random.default_rng(1)
    for s in [*LADDER, *second]:
        for t in [*LADDER, *second]:
            if s in second or t in second:  # the second seed: no neighbour effect at all
                cells.outcome[(ST, s, t)] = (rng.random(300) < 0.3).astype(float)
    one, _ = claims(cells, ST, LADDER, [LINEAGE], CLF, None, None, sc())
    two, _ = claims(cells, ST, LADDER, [LINEAGE, second], CLF, None, None, sc())
    a, b = (t.set_index("claim").loc["neighbours across training (chain ↔ independent)"] for t in (one, two))
    assert b["ci_method"] == stats.TWO_WAY and "2 replicates" in b["test"] and a["ci_method"] != stats.TWO_WAY
    assert b["effect"] == pytest.approx(a["effect"] / 2, abs=0.05)  # the mean over the two seeds
    assert b["ci_high"] - b["ci_low"] > a["ci_high"] - a["ci_low"]


def test_codec_aware_claim_holds_when_the_classifier_alone_transfers_worse() -> None:
    table, _ = claims(hand_cells(400, 0.8, 0.2), ST, LADDER, [LINEAGE], CLF, None, None, sc())
    assert table.set_index("claim").loc["codec-aware beats codec-blind", "verdict"] == stats.HOLDS


def test_sampling_percentile_and_ablation() -> None:
    assert percentile(np.array([0.1, 0.2, 0.3, 0.4]), 0.3) == pytest.approx(0.625)  # 2 below, 1 equal: (2+0.5)/4
    rows = []
    for i, m in enumerate(["q1+q2", "q1+q3", "q2+q3"]):
        r = {"k": 2, "members": m, "set": m, "grad_evals": 40, "heldout_asr_nonmember": [0.2, 0.5, 0.4][i],
             "heldout_asr_other_arch": [0.1, 0.3, 0.2][i]}
        from liccs.papers.a.saliency import INTERPOLATIONS, SCORES

        for s in SCORES:
            for ip in INTERPOLATIONS:
                r[f"score_{s}_{ip}"] = [1.0, 3.0, 2.0][i]  # the score ranks the sets as their held-out ASR
        rows.append(r)
    ab = ablation(pd.DataFrame(rows))
    r = ab[(ab.score == "envelope") & (ab.interpolation == "linear")].iloc[0]
    assert r["chosen"] == "q1+q3" and r["nonmember_percentile"] == pytest.approx(5 / 6)
    assert r["nonmember_spearman"] == pytest.approx(1.0) and r["nonmember_best_set"] == "q1+q3"


def test_each_unit_ranks_its_own_sets_and_the_claim_tests_their_percentiles() -> None:
    rows = []
    for unit, asr in (("a", [0.1, 0.2, 0.3, 0.4]), ("b", [0.4, 0.3, 0.2, 0.1]), ("c", [0.2, 0.1, 0.4, 0.3])):
        for i, v in enumerate(asr):  # the score favours set 3 in every unit
            rows.append({"unit": unit, "k": 2, "members": f"s{i}", "set": f"{unit}{i}", "heldout_asr_common": v,
                         "score_envelope_linear": float(i == 3)})
    sets = pd.DataFrame(rows)
    got = unit_percentiles(sets, 2, "envelope", "linear")
    assert list(got["unit"]) == ["a", "b", "c"] and list(got["chosen"]) == ["s3"] * 3
    assert list(got["percentile"]) == pytest.approx([0.875, 0.125, 0.625])  # best, worst, second of four
    assert unit_percentiles(sets, 3, "envelope", "linear").empty  # no 3-sets: no unit


def test_unequal_budgets_are_refused() -> None:
    from liccs.papers.a.sampling import check_budget, label

    check_budget(pd.DataFrame({"k": [2, 2, 3], "members": ["a", "b", "c"], "grad_evals": [40, 40, 60]}))
    with pytest.raises(BudgetError, match="differ"):
        check_budget(pd.DataFrame({"k": [2, 2], "members": ["a", "b"], "grad_evals": [40, 60]}))
    with pytest.raises(BudgetError, match="zero"):
        check_budget(pd.DataFrame({"k": [2], "members": ["a"], "grad_evals": [0]}))
    assert label((f"{A}@q1", f"{A}@q3")) == "q1+q3"


def test_counting_ensemble_counts_member_gradient_evaluations() -> None:
    from liccs.attack.base import create_attack
    from liccs.papers.a.attacks import CountingEnsemble

    torch.manual_seed(0)
    members = [nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)) for _ in range(3)]
    for k in (1, 3):
        ens = CountingEnsemble(members[:k], names=[f"m{i}" for i in range(k)])
        create_attack("pgd", ens, eps=8 / 255, steps=4)(torch.rand(5, 3, 8, 8), torch.arange(5))
        assert ens.grad_evals == k * 4 * 5
        ens(torch.rand(5, 3, 8, 8))  # an evaluation without grad is not counted
        assert ens.grad_evals == k * 4 * 5


def test_bad_sampling_config_is_refused_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import liccs.jobs.run as run_job

    monkeypatch.setattr(run_job, "load_context", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ConfigError, match=r"paper_a\.k\[1\].*k=3 is more than the 2 candidate"):
        run_job.run_config(CONFIG, quick=True, overrides=["paper_a.k=[1, 3]"], progress=False)
    with pytest.raises(ConfigError, match=r"paper_a\.arch.*valid: mini-tiny-bmshj2018-hyperprior"):
        run_job.run_config(CONFIG, quick=True, overrides=['paper_a.arch="nope"'], progress=False)
    with pytest.raises(ConfigError, match=r"paper_a\.units\[0\]"):
        run_job.run_config(CONFIG, quick=True, overrides=['paper_a.units=["mini-tiny-bmshj2018-hyperprior"]'],
                           progress=False)
    with pytest.raises(ConfigError, match=r"paper_a\.candidates\[0\]: q5"):
        run_job.run_config(CONFIG, quick=True, overrides=["paper_a.candidates=[5]"], progress=False)
    for engines, why in [('["nope"]', r"deployed_engines\[0\].*unknown engine 'nope'. Valid engines: .*ort-cpu"),
                         ('["torch"]', r"deployed_engines\[0\]: 'torch' is the reference engine")]:
        with pytest.raises(ConfigError, match=why):
            run_job.run_config(CONFIG, quick=True, overrides=[f"paper_a.deployed_engines={engines}"], progress=False)
    with pytest.raises(ConfigError, match=r"paper_a\.focus_images: -1"):
        run_job.run_config(CONFIG, quick=True, overrides=["paper_a.focus_images=-1"], progress=False)
    with pytest.raises(RunError, match="export.enabled is false"):
        run_job.run_config(CONFIG, quick=True, overrides=["attack.enabled=true", "transfer.enabled=true"],
                             progress=False)
    with pytest.raises(ConfigError, match=r"paper_a\.images"):
        load_config(CONFIG, quick=True, overrides=["paper_a.images=0"])
    with pytest.raises(ConfigError, match=r"paper_a\.focus_eps"):
        load_config(CONFIG, quick=True, overrides=['paper_a.focus_eps="flattest"'])


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    from liccs.cli import main

    out = tmp_path_factory.mktemp("paper-a") / "quick"
    assert main(["run", str(CONFIG), "--quick", "--no-progress", "--out", str(out)]) == 0
    return out


def test_quick_run_writes_every_table_and_the_claims(quick_run: Path) -> None:
    for f in ("manifest.json", "report.md", "report.html"):
        assert (quick_run / f).stat().st_size > 0, f
    for spec in paper_a.TABLES:
        assert (quick_run / "tables" / f"{spec.name}.{spec.files[0]}").is_file(), spec.name
    cl = pd.read_csv(quick_run / "tables" / "paper_a_claims.csv")
    # 5 claims, saliency at k = 1, 2, across the two units at k = 1, 2, and two on the deployed engine
    assert len(cl) == 11 and set(cl["verdict"]) <= set(stats.VERDICTS)
    assert {"neighbours on ort-cpu", "attacks survive deployment on ort-cpu"} <= set(cl["claim"])
    dep = pd.read_csv(quick_run / "tables" / "paper_a_deployed.csv")
    ladder = {c for c in load_config(CONFIG, quick=True).models.codecs if c.startswith("mini-tiny-bmshj2018-hyp")}
    assert set(dep["source"]) == ladder and len(dep) == len(ladder) * (len(ladder) + 1)
    assert dep["how"].str.contains("graph").all() and dep["diff"].between(-1, 1).all()
    rm = pd.read_csv(quick_run / "tables" / "paper_a_rate_matched.csv")
    assert (rm["bpp_ratio"] > 0).all() and set(rm["source"]) == ladder
    assert pd.read_csv(quick_run / "tables" / "paper_a_cross_arch.csv")["target_bpp"].gt(0).all()
    md = (quick_run / "report.md").read_text()
    assert "Paper A claim, neighbours" in md and "Focus setting" in md
    assert "sampling: 6 images of cifar10-test disjoint from the 8 run images" in md
    assert "focus selection: 4 images of cifar10-test disjoint from the 8 run images and the 6 set aside" in md
    sweep = pd.read_csv(quick_run / "tables" / "paper_a_sweep.csv")
    cfg = load_config(CONFIG, quick=True)
    # the focus-selection images at every eps, the run's images at the focus eps and every number of steps
    sel, run = sweep[sweep["images"] == "focus selection"], sweep[sweep["images"] == "run"]
    assert len(sel) == len(cfg.paper_a.eps) and len(run) == len(cfg.paper_a.steps)
    assert sel["focus"].sum() == 1 and run["focus"].sum() == 1
    outcomes = pd.read_csv(quick_run / "tables" / "paper_a_outcomes.csv.gz")
    assert outcomes.groupby("images")["image"].nunique().to_dict() == {"focus selection": 4, "held-out": 6, "run": 8}


def test_the_claims_recompute_from_the_committed_per_image_outcomes(quick_run: Path, tmp_path: Path) -> None:
    """recompute_claims on the report folder gives its claims table, cell for cell (through the same CSV)."""
    out = pd.read_csv(quick_run / "tables" / "paper_a_outcomes.csv.gz")
    assert set(out["images"]) == set(IMAGE_SETS) and set(out["success"].dropna()) <= {0.0, 1.0}
    assert (out["clean_correct"] == out["success"].notna()).all()
    recomputed = recompute_claims(quick_run)
    recomputed.to_csv(tmp_path / "claims.csv", index=False)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "claims.csv"),
                                  pd.read_csv(quick_run / "tables" / "paper_a_claims.csv"), check_exact=True)
    flipped = out.assign(success=lambda d: d["success"].map({0.0: 1.0, 1.0: 0.0}))  # a changed file: other claims
    (tmp_path / "tables").mkdir()
    for f in (quick_run / "tables").iterdir():
        (tmp_path / "tables" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "manifest.json").write_bytes((quick_run / "manifest.json").read_bytes())
    flipped.to_csv(tmp_path / "tables" / "paper_a_outcomes.csv.gz", index=False)
    again = recompute_claims(tmp_path)
    assert not again[["mean_a", "mean_b"]].equals(recomputed[["mean_a", "mean_b"]])


def test_every_set_is_scored_on_the_same_targets(quick_run: Path) -> None:
    """The saliency claim's held-out targets: one list, the same for every set, none of them a member of any."""
    cfg = load_config(CONFIG, quick=True)
    sets = pd.read_csv(quick_run / "tables" / "paper_a_sampling.csv").query(f"unit == '{cfg.paper_a.arch}'")
    held = pd.read_csv(quick_run / "tables" / "paper_a_outcomes.csv.gz").query("images == 'held-out'")
    ladder = sorted(c for c in cfg.models.codecs if c.startswith(cfg.paper_a.arch + "@"))
    lineage = [c for c in cfg.models.codecs if c.split("@")[0] in cfg.paper_a.lineage_archs]
    others = [c for c in cfg.models.codecs if c not in ladder and c not in lineage]
    candidates = ladder  # paper_a.candidates = [] in the quick run: every quality
    common = common_targets(ladder, candidates, lineage, others)
    assert common == [*lineage, *others] and not set(common) & set(candidates)
    for src in sets["set"]:
        assert set(common) <= set(held[held["source"] == src]["target"]), src
        rows = held[(held["source"] == src) & held["target"].isin(common)]
        mean = rows.groupby("image")["success"].mean().mean()  # per image over the common targets, then images
        got = float(sets.loc[sets["set"] == src, "heldout_asr_common"].iloc[0])
        assert mean == pytest.approx(got) or (np.isnan(mean) and np.isnan(got)), src


def test_quick_run_enumerates_every_set_with_equal_budgets(quick_run: Path) -> None:
    cfg = load_config(CONFIG, quick=True)
    sets = pd.read_csv(quick_run / "tables" / "paper_a_sampling.csv")
    # per unit (the swept ladder, the mean-scale one): two qualities, so two 1-sets and one 2-set
    assert list(sets.groupby(["unit", "k"]).size()) == [2, 1, 2, 1]
    for k, g in sets.groupby("k"):
        assert set(g["grad_evals"]) == {k * cfg.paper_a.steps[0] * cfg.paper_a.images}


def test_paper_a_on_ray_gives_the_serial_tables(quick_run: Path, tmp_path: Path, ray_session) -> None:
    """Paper A's crafts as tasks on a local Ray instance: every table cell equal to the serial run's."""
    from liccs.cli import main

    out = tmp_path / "ray"
    assert main(["run", str(CONFIG), "--quick", "--no-progress", "--out", str(out), "--executor", "ray"]) == 0
    for spec in paper_a.TABLES:
        a, b = (pd.read_csv(d / "tables" / f"{spec.name}.{spec.files[0]}") for d in (quick_run, out))
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=spec.name)
    tasks = json.loads((out / "manifest.json").read_text())["executor"]["tasks"]
    assert tasks and {t["status"] for t in tasks} == {"done"} and {t["stage"] for t in tasks} == {"paper-a"}
    # three batches: the sweep with every clean top-1, all the focus setting's sets, the replay per (engine, target)
    batches = {b: [t["label"] for t in tasks if t["batch"] == b] for b in sorted({t["batch"] for t in tasks})}
    assert len(batches) == 3
    first, focus, replay = batches.values()
    assert any(x.startswith("clean ") for x in first) and not any(x.startswith("clean ") for x in focus)
    cfg = load_config(CONFIG, quick=True)
    assert sorted(replay) == sorted(f"ort-cpu {t}" for t in [*cfg.models.codecs[:2], cfg.models.classifier])
    assert any("+" in x for x in focus)  # the sampling's k-sets run beside the focus setting's single sources


def test_predictions_are_kept_so_an_interrupted_run_does_not_evaluate_again(tmp_path: Path) -> None:
    from liccs.papers.a.memo import PredictionMemo

    torch.manual_seed(0)
    images, labels = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    calls: list[str] = []

    def fn(name: str, w: torch.Tensor):
        def f(x: torch.Tensor) -> torch.Tensor:
            calls.append(name)
            return x.flatten(1)[:, :3] @ w
        return f

    fns = {"t": fn("t", torch.eye(3)), "u": fn("u", torch.eye(3).flip(0))}
    adv = (images + 0.1).clamp(0, 1)
    memo = PredictionMemo(tmp_path, {"t": "sha-t", "u": "sha-u"}, batch_size=4)
    first = Cells(images, labels, fns, 4, memo)
    first.add(ST, "s", adv, ["t", "u"])
    assert calls  # evaluated once ...
    calls.clear()
    again = Cells(images, labels, fns, 4, PredictionMemo(tmp_path, {"t": "sha-t", "u": "sha-u"}, batch_size=4))
    again.add(ST, "s", adv, ["t", "u"])
    assert not calls  # ... and read back, not evaluated again
    for t in ("t", "u"):
        np.testing.assert_array_equal(first.get(ST, "s", t), again.get(ST, "s", t))
    plain = Cells(images, labels, fns, 4)
    plain.add(ST, "s", adv, ["t", "u"])
    for t in ("t", "u"):
        np.testing.assert_array_equal(plain.get(ST, "s", t), again.get(ST, "s", t))  # the same outcomes
    calls.clear()
    other = Cells(images, labels, fns, 4, PredictionMemo(tmp_path, {"t": "other-weights", "u": "sha-u"}, 4))
    other.add(ST, "s", adv, ["t"])
    assert calls == ["t"] * 4  # other weights: clean and adversarial images evaluated again (two batches each)
