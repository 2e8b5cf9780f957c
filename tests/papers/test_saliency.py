"""Saliency-score sampling on hand-made ASR matrices whose best sets are known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.interpolate import PchipInterpolator

from liccs.core.errors import InputError, UnknownNameError
from liccs.papers.a.saliency import (
    SCORES,
    AsrMatrix,
    Coverage,
    enumerate_sets,
    random_baseline,
    saliency_attack,
    score_sets,
    select_sources,
)

HP = [f"bmshj2018-hyperprior@q{q}" for q in range(1, 9)]
MS = [f"mbt2018-mean@q{q}" for q in range(1, 9)]


def band(rows: dict[int, tuple[int, int, float]], n: int = 8, floor: float = 0.0) -> np.ndarray:
    """Source i hits targets lo..hi (1-based qualities) with ASR a; `floor` elsewhere, 0.5 on its own quality."""
    v = np.full((n, n), floor)
    for i in range(n):
        v[i, i] = max(v[i, i], 0.5)
    for i, (lo, hi, a) in rows.items():
        v[i - 1, lo - 1 : hi] = a
    return v


def test_best_pair_covers_the_ladder():
    m = AsrMatrix(band({2: (1, 4, 0.9), 6: (5, 8, 0.85)}), HP, HP)
    assert select_sources(m, 1).sources == (HP[1],)
    sel = select_sources(m, 2)
    assert sel.sources == (HP[1], HP[5]) and sel.method == "exhaustive" and sel.sets_scored == 28
    assert select_sources(m, 2, interpolation="pchip").sources == (HP[1], HP[5])


def test_exhaustive_beats_greedy_where_greedy_is_myopic():
    # A (q4) covers the middle best alone; B (q1) and C (q8) together cover everything
    m = AsrMatrix(band({4: (3, 6, 0.6), 1: (1, 4, 0.55), 8: (5, 8, 0.55)}), HP, HP)
    assert select_sources(m, 1).sources == (HP[3],)
    assert select_sources(m, 2, method="exhaustive").sources == (HP[0], HP[7])
    greedy = select_sources(m, 2, method="greedy")
    assert HP[3] in greedy.sources
    assert greedy.score < select_sources(m, 2).score


def test_envelope_integral_is_exact_for_crossing_lines():
    # f1 falls 1 → 0 and f2 rises 0 → 1 over the normalized axis: ∫ max = 3/4 (not the trapezoid's 1)
    m = AsrMatrix(np.array([[1.0, 0.0], [0.0, 1.0]]), HP[:2], HP[:2])
    cov = Coverage(m)
    assert cov.score([0]) == pytest.approx(0.5)
    assert cov.score([0, 1]) == pytest.approx(0.75)


def test_sets_spanning_architectures():
    names = HP[:4] + MS[:4]
    v = np.full((8, 8), 0.1)
    v[1, :4] = 0.9  # hyperprior@q2 hits every hyperprior quality
    v[6, 4:] = 0.8  # mbt2018-mean@q3 hits every mbt2018-mean quality
    v[0, :] = 0.5   # hyperprior@q1 hits everything moderately: the best single source
    m = AsrMatrix(v, names, names)
    assert select_sources(m, 1).sources == (names[0],)
    assert select_sources(m, 2).sources == (names[1], names[6])
    # only the hyperprior targets deployed: mbt2018-mean's coverage no longer counts
    assert select_sources(m, 1, deployed=HP[:4]).sources == (names[1],)


def test_known_deployed_quality_scores_that_column():
    v = band({2: (1, 4, 0.9), 6: (5, 8, 0.85)})
    v[3, 6] = 0.95  # q4 is the best source against q7 alone
    m = AsrMatrix(v, HP, HP)
    sel = select_sources(m, 1, deployed=[HP[6]])
    assert sel.sources == (HP[3],) and sel.score == pytest.approx(0.95)


def test_greedy_beyond_the_exhaustive_limit():
    names = HP + MS
    rng = np.random.default_rng(0)
    m = AsrMatrix(rng.uniform(0, 1, (16, 16)), names, names)
    sel = select_sources(m, 8)
    assert sel.method == "greedy" and len(set(sel.sources)) == 8
    assert select_sources(m, 2).method == "exhaustive"  # C(16, 2) = 120 sets: still exhaustive


def test_pchip_curves_are_scipys():
    # one source on an uneven ladder (q1, q2, q4, q7, q8): its area is scipy's exact PCHIP integral
    targets = [HP[q - 1] for q in (1, 2, 4, 7, 8)]
    y = np.array([0.1, 0.9, 0.8, 0.1, 0.2])
    u = (np.array([1, 2, 4, 7, 8]) - 1) / 7
    m = AsrMatrix(y[None, :], HP[:1], targets)
    exact = float(PchipInterpolator(u, y).integrate(0, 1))
    linear = float(np.sum(np.diff(u) * (y[1:] + y[:-1]) / 2))
    assert abs(exact - linear) > 1e-3  # the test can tell PCHIP from linear
    assert score_sets(m, [HP[:1]], interpolation="pchip", score="sum")[0] == pytest.approx(exact, abs=1e-12)
    assert score_sets(m, [HP[:1]], interpolation="linear", score="sum")[0] == pytest.approx(linear, abs=1e-12)
    # envelope and union of one source are the same curve, on the 256-interval trapezoid grid
    for score in ("envelope", "union"):
        assert score_sets(m, [HP[:1]], interpolation="pchip", score=score)[0] == pytest.approx(exact, abs=1e-5)
    # a span [q2, q7] of deployed targets: the integral over that span, normalized
    dep = [targets[1], targets[3]]
    part = float(PchipInterpolator(u, y).integrate(u[1], u[3])) / (u[3] - u[1])
    assert score_sets(m, [HP[:1]], interpolation="pchip", score="sum", deployed=dep)[0] == pytest.approx(part)


# f0 = 1 − u and f1 = u/2 on the normalized axis (they cross at u = 2/3)
CROSS = AsrMatrix(np.array([[1.0, 0.0], [0.0, 0.5]]), HP[:2], HP[:2])


@pytest.mark.parametrize(("score", "pair", "single"), [
    ("envelope", 7 / 12, 1 / 2),  # ∫₀^⅔ (1 − u) + ∫_⅔^1 u/2 = 4/9 + 5/36
    ("sum", 3 / 8, 1 / 2),        # (1/2 + 1/4) / 2
    ("union", 2 / 3, 1 / 2),      # ∫ 1 − u (1 − u/2) du = 1 − 1/2 + 1/6 (the knots' trapezoid would say 3/4)
])
def test_score_variants_on_two_crossing_lines(score, pair, single):
    cov = Coverage(CROSS, score=score)
    assert cov.score_name == score
    assert cov.score([0, 1]) == pytest.approx(pair, abs=1e-5)
    assert cov.score([0]) == pytest.approx(single, abs=1e-12)
    assert cov.score([]) == 0.0
    np.testing.assert_allclose(score_sets(CROSS, [HP[:2], HP[:1], HP[1:2]], score=score),
                               [cov.score([0, 1]), single, cov.score([1])], atol=1e-12)


def test_linear_envelope_and_sum_are_exact():
    assert Coverage(CROSS).score([0, 1]) == pytest.approx(7 / 12, abs=1e-14)
    assert Coverage(CROSS, score="sum").score([0, 1]) == pytest.approx(3 / 8, abs=1e-14)


def test_level_topk_by_hand():
    v = np.array([[0.9, 0.5, 0.1, 0.9],
                  [0.5, 0.5, 0.8, 0.3],
                  [0.2, 0.7, 0.8, 0.6]])
    m = AsrMatrix(v, HP[:3], HP[:4])
    # k = 1, best per level: s0, s2, s1 (tie with s2: the earlier source), s0
    got = score_sets(m, [(HP[0],), (HP[1],), (HP[2],)], score="level-topk")
    np.testing.assert_allclose(got, [2 / 4, 1 / 4, 1 / 4])
    # k = 2, top 2 per level: {s0,s1}, {s2,s0} (tie s0/s1), {s1,s2}, {s0,s2}
    got = score_sets(m, enumerate_sets(HP[:3], 2), score="level-topk")
    np.testing.assert_allclose(got, [5 / 8, 3 / 4, 5 / 8])
    assert select_sources(m, 2, score="level-topk").sources == (HP[0], HP[2])
    # the ranked pool is the candidates when given: among {s1, s2}, s1 is best at q1 and q3
    assert score_sets(m, [(HP[1],)], score="level-topk", candidates=HP[1:3])[0] == pytest.approx(1 / 2)
    # a deployed span keeps only its levels: q3 alone
    assert score_sets(m, [(HP[1],), (HP[2],)], score="level-topk", deployed=[HP[2]]) == pytest.approx([1, 0])


def test_sum_picks_the_individually_best_sources():
    rng = np.random.default_rng(5)
    m = AsrMatrix(rng.uniform(0, 1, (8, 8)), HP, HP)
    single = score_sets(m, [(n,) for n in HP], score="sum")
    best = tuple(HP[i] for i in sorted(np.argsort(-single)[:3]))
    sel = select_sources(m, 3, score="sum")
    assert sel.sources == best and sel.score == pytest.approx(np.sort(single)[-3:].mean())


def test_enumerate_sets_covers_every_set_once():
    names = HP[:6]
    for k in range(1, 7):
        sets = enumerate_sets(names, k)
        assert len(sets) == math.comb(6, k) and len(set(sets)) == len(sets)
        assert all(len(s) == k and list(s) == sorted(s, key=names.index) for s in sets)
        every = {frozenset(names[i] for i in range(6) if mask >> i & 1) for mask in range(64)
                 if bin(mask).count("1") == k}
        assert {frozenset(s) for s in sets} == every
    assert enumerate_sets(names, 2) == list(itertools.combinations(names, 2))
    for bad in (0, 7, 2.0):
        with pytest.raises(InputError):
            enumerate_sets(names, bad)


def test_score_sets_matches_one_coverage():
    rng = np.random.default_rng(2)
    m = AsrMatrix(rng.uniform(0, 1, (8, 8)), HP, HP)
    sets = [*enumerate_sets(HP, 3), (HP[4],), ()]
    for score in SCORES:
        for interpolation in ("linear", "pchip"):
            cov = Coverage(m, interpolation, None, score)
            want = [cov.score([HP.index(n) for n in s]) for s in sets]
            got = score_sets(m, sets, interpolation=interpolation, score=score)
            assert got.shape == (len(sets),) and got[-1] == 0.0
            np.testing.assert_allclose(got, want, atol=1e-12)
    with pytest.raises(InputError):
        score_sets(m, [("nosuch@q1",)])
    with pytest.raises(InputError):
        score_sets(m, [(HP[0], HP[0])])


def test_unknown_score_lists_the_valid_ones():
    m = AsrMatrix(np.zeros((2, 2)), HP[:2], HP[:2])
    for call in (lambda: Coverage(m, score="max"), lambda: select_sources(m, 1, score="max"),
                 lambda: score_sets(m, [HP[:1]], score="max"), lambda: random_baseline(m, 1, 1, score="max")):
        with pytest.raises(InputError) as err:
            call()
        assert all(name in str(err.value) for name in SCORES) and "'max'" in str(err.value)


def test_random_baseline_draws_distinct_sets():
    m = AsrMatrix(band({2: (1, 4, 0.9), 6: (5, 8, 0.85)}), HP, HP)
    for draws in (5, 20, 27):
        base = random_baseline(m, 2, draws=draws, seed=1)
        assert len(base.sets) == draws and len(set(base.sets)) == draws
        assert all(s in enumerate_sets(HP, 2) for s in base.sets)
    for draws in (28, 50):  # at least every set: each set once, in enumeration order
        base = random_baseline(m, 2, draws=draws, seed=1)
        assert list(base.sets) == enumerate_sets(HP, 2) and len(base.values) == 28
    # many sets (C(20, 10) = 184 756): still distinct, and reproducible
    names = HP + MS + [f"cheng2020-anchor@q{q}" for q in range(1, 5)]
    big = AsrMatrix(np.random.default_rng(0).uniform(0, 1, (20, 20)), names, names)
    base = random_baseline(big, 10, draws=40, seed=0, evaluate=lambda s: 0.0)
    assert len(set(base.sets)) == 40 and all(len(set(s)) == 10 for s in base.sets)
    assert random_baseline(big, 10, draws=40, seed=0, evaluate=lambda s: 0.0).sets == base.sets


def test_random_baseline_spread_comes_from_real_draws():
    m = AsrMatrix(band({2: (1, 4, 0.9), 6: (5, 8, 0.85)}), HP, HP)
    base = random_baseline(m, 3, draws=12, seed=3)
    assert len(base.sets) == 12 and all(len(set(s)) == 3 for s in base.sets)
    cov = Coverage(m)
    values = [cov.score([HP.index(n) for n in s]) for s in base.sets]
    assert base.values == pytest.approx(values)
    assert base.mean == pytest.approx(np.mean(values)) and base.std == pytest.approx(np.std(values, ddof=1))
    assert base.std > 0 and base.mean < select_sources(m, 3).score
    assert random_baseline(m, 3, draws=12, seed=4).sets != base.sets
    seen = []
    custom = random_baseline(m, 2, draws=5, seed=0, evaluate=lambda s: seen.append(s) or float(len(seen)))
    assert custom.values == (1.0, 2.0, 3.0, 4.0, 5.0) and list(custom.sets) == seen


@pytest.mark.parametrize("bad", [
    dict(values=np.full((2, 2), 1.5)), dict(values=np.zeros((2, 3))), dict(sources=(HP[0], HP[0])),
])
def test_bad_matrices(bad):
    kw = dict(values=np.zeros((2, 2)), sources=tuple(HP[:2]), targets=tuple(HP[:2])) | bad
    with pytest.raises(InputError):
        AsrMatrix(**kw)


def test_bad_selection_arguments():
    m = AsrMatrix(np.zeros((2, 2)), HP[:2], HP[:2])
    with pytest.raises(InputError):
        select_sources(m, 3)
    with pytest.raises(InputError):
        select_sources(m, 1, deployed=[HP[5]])
    with pytest.raises(InputError):
        select_sources(m, 1, interpolation="cubic")
    with pytest.raises(InputError):
        select_sources(m, 1, deployed=[])
    with pytest.raises(UnknownNameError):
        AsrMatrix(np.zeros((1, 1)), ["nosuch@q1"], HP[:1])


def test_saliency_attack_runs_the_ensemble_on_the_chosen_set(trained_cnn, batch):
    names = [f"bmshj2018-factorized@q{q}" for q in (1, 2, 3)]
    m = AsrMatrix(np.array([[0.9, 0.2, 0.1], [0.2, 0.3, 0.2], [0.1, 0.2, 0.9]]), names, names)
    x, y = batch[0][:2], batch[1][:2]
    adv, sel, atk = saliency_attack(m, 2, trained_cnn, x, y, steps=1, eps=4 / 255)
    assert sel.sources == (names[0], names[2])
    assert atk.describe()["source_models"] == list(sel.sources)
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6 and not torch.equal(adv, x)
