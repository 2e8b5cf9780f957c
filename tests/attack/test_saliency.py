"""Saliency-score sampling on hand-made ASR matrices whose best sets are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liccs.attack.saliency import AsrMatrix, Coverage, pchip_slopes, random_baseline, saliency_attack, select_sources
from liccs.errors import InputError, UnknownNameError

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


def test_pchip_matches_scipy():
    interpolate = pytest.importorskip("scipy.interpolate")
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(0, 1, 7))
    for y in (rng.uniform(0, 1, 7), np.array([0, 0.1, 0.5, 0.5, 0.4, 0.9, 1.0])):
        np.testing.assert_allclose(pchip_slopes(x, y), interpolate.PchipInterpolator(x, y).derivative()(x), atol=1e-12)


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
