"""Saliency-score sampling (paper A: "Transferable learned image compression-resistant adversarial
perturbations"): which source codecs to put in the ensemble.

Input: a measured matrix ``ASR[s, t]`` (perturbations crafted on source ``s``, evaluated on target
``t``), rows and columns labelled ``ARCH@qN``. For each target architecture ``a`` with qualities
``q_1 < … < q_n`` among the columns, the quality axis is normalized, ``u_j = (q_j − q_1) / (q_n − q_1)``,
and each source's points ``(u_j, ASR[s, (a, q_j)])`` become a curve ``f_{s,a}: [0, 1] → [0, 1]``, piecewise
linear (default) or PCHIP (Fritsch & Carlson 1980; monotone between points, no overshoot). The score of
a set ``S`` of sources (its coverage) is

    ``score(S) = (1/|A|) · Σ_{a ∈ A} (1/(v_a − w_a)) ∫_{w_a}^{v_a} max_{s ∈ S} f_{s,a}(u) du``,

the mean ASR of the upper envelope of the set's curves over the covered part ``[w_a, v_a]`` of each
target architecture's axis: the whole ladder ``[0, 1]`` when the deployed quality is unknown (default),
or the span of the given deployed targets (a single target: the envelope's value there). Linear curves
are integrated exactly (the envelope is linear between the points and the pairwise crossings);
PCHIP curves by the trapezoid rule on 256 intervals per segment. The best set of size ``k`` is found
exhaustively when there are ≤ 8 candidate sources or ≤ 10 000 sets, greedily (add the source of largest
gain) beyond; ties go to the earlier sources. The baseline draws ``R`` random ``k``-sets.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from liccs.errors import InputError
from liccs.zoo.codecs import parse_codec

INTERPOLATIONS = ("linear", "pchip")
EXHAUSTIVE_SOURCES = 8
EXHAUSTIVE_SETS = 10_000


@dataclass(frozen=True)
class AsrMatrix:
    """``values[s, t]`` in [0, 1]: ASR of perturbations crafted on ``sources[s]``, measured on ``targets[t]``."""

    values: np.ndarray
    sources: tuple[str, ...]
    targets: tuple[str, ...]

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=np.float64)
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "targets", tuple(self.targets))
        if v.shape != (len(self.sources), len(self.targets)):
            raise InputError(f"ASR matrix of shape {v.shape} for {len(self.sources)} sources "
                             f"× {len(self.targets)} targets")
        if not np.isfinite(v).all() or (v < 0).any() or (v > 1).any():
            raise InputError("ASR values must be finite and in [0, 1]")
        for names in (self.sources, self.targets):
            if len(set(names)) != len(names):
                raise InputError(f"repeated labels in {names}")
            for n in names:
                parse_codec(n)


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch–Carlson PCHIP derivatives at the knots (harmonic mean inside, shape-preserving ends)."""
    h, d = np.diff(x), np.diff(y) / np.diff(x)
    m = np.zeros_like(y)
    if len(x) == 2:
        return np.full_like(y, d[0])
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    same = (d[:-1] * d[1:]) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        m[1:-1] = np.where(same, (w1 + w2) / (w1 / d[:-1] + w2 / d[1:]), 0.0)
    for end, (h0, h1, d0, d1) in ((0, (h[0], h[1], d[0], d[1])), (-1, (h[-1], h[-2], d[-1], d[-2]))):
        s = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        if np.sign(s) != np.sign(d0):
            s = 0.0
        elif np.sign(d0) != np.sign(d1) and abs(s) > abs(3 * d0):
            s = 3 * d0
        m[end] = s
    return m


def _pchip_eval(x: np.ndarray, y: np.ndarray, m: np.ndarray, u: np.ndarray) -> np.ndarray:
    i = np.clip(np.searchsorted(x, u, side="right") - 1, 0, len(x) - 2)
    h = x[i + 1] - x[i]
    t = (u - x[i]) / h
    h00, h10, h01, h11 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t, -2 * t**3 + 3 * t**2, t**3 - t**2
    return h00 * y[i] + h10 * h * m[i] + h01 * y[i + 1] + h11 * h * m[i + 1]


def _grid(u: np.ndarray, rows: np.ndarray, interpolation: str) -> tuple[np.ndarray, np.ndarray]:
    """(grid, curves on the grid ``[S, G]``) for one architecture's columns at positions ``u``."""
    if interpolation == "pchip" and len(u) > 2:
        grid = np.unique(np.concatenate([np.linspace(a, b, 257) for a, b in itertools.pairwise(u)]))
        return grid, np.stack([_pchip_eval(u, r, pchip_slopes(u, r), grid) for r in rows])
    points = [u]
    for (a, b), (j, _) in zip(itertools.pairwise(u), itertools.pairwise(range(len(u))), strict=True):
        ya, yb = rows[:, j], rows[:, j + 1]
        da, db = ya[:, None] - ya[None, :], yb[:, None] - yb[None, :]
        cross = (da * db) < 0  # two lines swap order inside the segment
        t = np.where(cross, da / np.where(cross, da - db, 1.0), np.nan)
        points.append(a + (b - a) * t[np.isfinite(t)])
    grid = np.unique(np.concatenate(points))
    return grid, np.stack([np.interp(grid, u, r) for r in rows])


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1])) / 2)


@dataclass
class Coverage:
    """Precomputed curves of every source; ``score(indices)`` is the formula of the module docstring."""

    matrix: AsrMatrix
    interpolation: str = "linear"
    deployed: Sequence[str] | None = None
    _parts: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        specs = [parse_codec(t) for t in self.matrix.targets]
        unknown = [d for d in (self.deployed or []) if d not in self.matrix.targets]
        if unknown:
            raise InputError(f"deployed target(s) {unknown} are not columns of the ASR matrix")
        for arch in dict.fromkeys(s.arch for s in specs):
            cols = sorted((s.quality, j) for j, s in enumerate(specs) if s.arch == arch)
            q = np.array([c[0] for c in cols], dtype=np.float64)
            rows = self.matrix.values[:, [c[1] for c in cols]]
            if self.deployed is not None:
                dq = [parse_codec(d).quality for d in self.deployed if parse_codec(d).arch == arch]
                if not dq:
                    continue
                lo, hi = min(dq), max(dq)
            else:
                lo, hi = q[0], q[-1]
            if lo == hi:  # one quality: the envelope's value there
                self._parts.append((np.array([0.0]), rows[:, list(q).index(lo)][:, None]))
                continue
            u = (q - q[0]) / (q[-1] - q[0])
            grid, curves = _grid(u, rows, self.interpolation)
            w, v = (lo - q[0]) / (q[-1] - q[0]), (hi - q[0]) / (q[-1] - q[0])
            keep = (grid >= w - 1e-12) & (grid <= v + 1e-12)
            self._parts.append(((grid[keep] - w) / (v - w), curves[:, keep]))

    def score(self, indices: Sequence[int]) -> float:
        """Mean envelope ASR over the covered axes of the sources at ``indices``."""
        if not indices:
            return 0.0
        total = 0.0
        for grid, curves in self._parts:
            env = curves[list(indices)].max(0)
            total += float(env[0]) if len(grid) == 1 else _trapezoid(env, grid)
        return total / len(self._parts)


@dataclass(frozen=True)
class Selection:
    """A chosen set of sources, its coverage score, and how it was found."""

    sources: tuple[str, ...]
    score: float
    method: str
    sets_scored: int


def select_sources(matrix: AsrMatrix, k: int, *, interpolation: str = "linear", deployed: Sequence[str] | None = None,
                   candidates: Sequence[str] | None = None, method: str = "auto") -> Selection:
    """The set of ``k`` sources (rows) of highest coverage score (see the module docstring)."""
    names = list(candidates) if candidates is not None else list(matrix.sources)
    missing = [n for n in names if n not in matrix.sources]
    if missing:
        raise InputError(f"candidate source(s) {missing} are not rows of the ASR matrix")
    if not isinstance(k, int) or not 1 <= k <= len(names):
        raise InputError(f"k must be an integer in [1, {len(names)}], got {k!r}")
    if method not in ("auto", "exhaustive", "greedy"):
        raise InputError(f"method must be auto, exhaustive or greedy, got {method!r}")
    cov = Coverage(matrix, interpolation, deployed)
    idx = [matrix.sources.index(n) for n in names]
    if method == "auto":
        small = len(idx) <= EXHAUSTIVE_SOURCES or math.comb(len(idx), k) <= EXHAUSTIVE_SETS
        method = "exhaustive" if small else "greedy"
    best: tuple[int, ...] = ()
    best_score, scored = -1.0, 0
    if method == "exhaustive":
        for combo in itertools.combinations(idx, k):
            s, scored = cov.score(combo), scored + 1
            if s > best_score + 1e-12:
                best, best_score = combo, s
    else:
        for _ in range(k):
            pick = None
            for i in idx:
                if i in best:
                    continue
                s, scored = cov.score((*best, i)), scored + 1
                if pick is None or s > pick[1] + 1e-12:
                    pick = (i, s)
            best, best_score = (*best, pick[0]), pick[1]
    return Selection(tuple(matrix.sources[i] for i in best), best_score, method, scored)


@dataclass(frozen=True)
class RandomBaseline:
    """``draws`` random k-sets, the value of each (coverage, or what ``evaluate`` measured), mean and std (ddof=1)."""

    sets: tuple[tuple[str, ...], ...]
    values: tuple[float, ...]
    mean: float
    std: float


def random_baseline(matrix: AsrMatrix, k: int, draws: int, *, seed: int = 0, candidates: Sequence[str] | None = None,
                    evaluate: Callable[[tuple[str, ...]], float] | None = None, interpolation: str = "linear",
                    deployed: Sequence[str] | None = None) -> RandomBaseline:
    """Random sets of ``k`` distinct sources (each draw independent), scored by ``evaluate`` or by coverage."""
    names = list(candidates) if candidates is not None else list(matrix.sources)
    if not isinstance(k, int) or not 1 <= k <= len(names):
        raise InputError(f"k must be an integer in [1, {len(names)}], got {k!r}")
    if not isinstance(draws, int) or draws < 1:
        raise InputError(f"draws must be an integer ≥ 1, got {draws!r}")
    rng = np.random.default_rng(seed)
    sets = tuple(tuple(names[i] for i in sorted(rng.choice(len(names), size=k, replace=False))) for _ in range(draws))
    if evaluate is None:
        cov = Coverage(matrix, interpolation, deployed)
        evaluate = lambda s: cov.score([matrix.sources.index(n) for n in s])  # noqa: E731
    values = tuple(float(evaluate(s)) for s in sets)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return RandomBaseline(sets, values, float(np.mean(values)), std)


def saliency_attack(matrix: AsrMatrix, k: int, classifier: object, images: object, labels: object, *,
                    attack: str = "pgd", weights: str = "random", rounding: str = "ste", reduce: str = "loss",
                    interpolation: str = "linear", deployed: Sequence[str] | None = None, **attack_kwargs: object):
    """Select the best ``k`` sources and run the ensemble attack on them: (adv images, selection, attack)."""
    from liccs.attack.base import create_attack
    from liccs.attack.ensemble import build_ensemble

    sel = select_sources(matrix, k, interpolation=interpolation, deployed=deployed)
    ens = build_ensemble(sel.sources, classifier, weights=weights, rounding=rounding, reduce=reduce)
    atk = create_attack(attack, ens, **attack_kwargs)
    return atk(images, labels), sel, atk
