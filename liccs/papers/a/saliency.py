"""Saliency-score sampling (paper A: "Transferable learned image compression-resistant adversarial
perturbations"): which source codecs to put in the ensemble.

Input: a measured matrix ``ASR[s, t]`` (perturbations crafted on source ``s``, evaluated on target
``t``), rows and columns labelled ``ARCH@qN``. For each target architecture ``a`` with qualities
``q_1 < … < q_n`` among the columns, the quality axis is normalized, ``u_j = (q_j − q_1) / (q_n − q_1)``,
and each source's points ``(u_j, ASR[s, (a, q_j)])`` become a curve ``f_{s,a}: [0, 1] → [0, 1]``, piecewise
linear (default) or PCHIP (Fritsch & Carlson 1980, :class:`scipy.interpolate.PchipInterpolator`; monotone
between points, no overshoot). The covered part ``[w_a, v_a]`` of each target architecture's axis is the
whole ladder ``[0, 1]`` when the deployed quality is unknown (default), or the span of the given deployed
targets (a single target: the curves' values there); architectures without a deployed target do not count.
The score of a set ``S`` of sources is the mean over the covered architectures ``A`` of a per-architecture
value; the variants (``score=``, names in :data:`SCORES`) are

``envelope`` (default): the mean ASR of the upper envelope of the set's curves,
    ``(1/(v_a − w_a)) ∫_{w_a}^{v_a} max_{s ∈ S} f_{s,a}(u) du``
    — a target quality counts once, through the set's best source there (coverage of the ladder);
``sum``: the members' mean area, ``(1/(v_a − w_a)) ∫ mean_{s ∈ S} f_{s,a}(u) du`` — each source is scored by
    its own area and the score is additive (the best set is the ``k`` individually best sources);
``union``: ``(1/(v_a − w_a)) ∫ 1 − Π_{s ∈ S} (1 − f_{s,a}(u)) du`` — the fraction of images fooled by at
    least one member if the members' hits were independent (≥ ``envelope``, rewards redundancy a little);
``level-topk``: no curves — at each measured target level (each column of ``a`` inside ``[w_a, v_a]``),
    the fraction of the set's ``k = |S|`` members that are among the ``k`` sources of highest ASR at that
    level (ties broken by source order; the ranked pool is every row, or ``candidates`` when given),
    averaged over those levels.

Integration: with linear curves the ``envelope`` is integrated exactly (it is linear between the points
and the pairwise crossings) and so is ``sum`` (the trapezoid rule on the knots is exact for a
piecewise-linear function; with PCHIP the exact polynomial integral ``PchipInterpolator.integrate``);
``union`` is not linear between the knots, and is integrated like every PCHIP curve by the trapezoid rule
on 256 intervals per segment. The best set of size ``k`` is found exhaustively (every ``k``-set of
:func:`enumerate_sets`) when there are ≤ 8 candidate sources or ≤ 10 000 sets, greedily (add the source of
largest gain) beyond; ties (within 1e-12) go to the earlier set. :func:`score_sets` scores many sets with
one :class:`Coverage`. The baseline :func:`random_baseline` draws ``R`` distinct random ``k``-sets.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

from liccs.attack.ensemble import build_ensemble
from liccs.attack.spec import COMMON, AttackSpec
from liccs.core.errors import InputError
from liccs.zoo.codecs import parse_codec

INTERPOLATIONS = ("linear", "pchip")
SCORES = ("envelope", "sum", "union", "level-topk")
EXHAUSTIVE_SOURCES = 8
EXHAUSTIVE_SETS = 10_000
FINE_INTERVALS = 256  # trapezoid intervals per segment for PCHIP curves and the union score
_CHUNK = 4_000_000  # floats per vectorized block when scoring many sets


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


def _fine_grid(u: np.ndarray) -> np.ndarray:
    return np.unique(np.concatenate([np.linspace(a, b, FINE_INTERVALS + 1) for a, b in itertools.pairwise(u)]))


def _curves(u: np.ndarray, rows: np.ndarray, grid: np.ndarray, interpolation: str) -> np.ndarray:
    """The curves of ``rows`` (``[S, n]`` at knots ``u``) on ``grid``: ``[S, G]``."""
    if interpolation == "pchip" and len(u) > 2:
        return np.clip(PchipInterpolator(u, rows, axis=1)(grid), 0.0, 1.0)
    return np.stack([np.interp(grid, u, r) for r in rows])


def _crossing_grid(u: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The knots and every pairwise crossing of the linear curves: the envelope is linear in between."""
    points = [u]
    for j, (a, b) in enumerate(itertools.pairwise(u)):
        ya, yb = rows[:, j], rows[:, j + 1]
        da, db = ya[:, None] - ya[None, :], yb[:, None] - yb[None, :]
        cross = (da * db) < 0  # two lines swap order inside the segment
        t = np.where(cross, da / np.where(cross, da - db, 1.0), np.nan)
        points.append(a + (b - a) * t[np.isfinite(t)])
    return np.unique(np.concatenate(points))


def _trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trapezoid rule along the last axis of ``y``."""
    return np.sum((x[1:] - x[:-1]) * (y[..., 1:] + y[..., :-1]), axis=-1) / 2


@dataclass
class _Axis:
    """One covered target architecture: what the chosen score needs, on the normalized span ``[0, 1]``.

    ``grid``/``curves`` (``[S, G]``) for ``envelope`` and ``union`` (``G == 1``: a single quality);
    ``areas`` (``[S]``) for ``sum``; ``ranks`` (``[L, S]``, rank of each source at each level, ``S`` for
    sources outside the pool) for ``level-topk``.
    """

    grid: np.ndarray | None = None
    curves: np.ndarray | None = None
    areas: np.ndarray | None = None
    ranks: np.ndarray | None = None


class Coverage:
    """Precomputed curves of every source; ``score(indices)`` is the formula of the module docstring, variant
    ``score`` (kept as ``score_name``, since ``score`` is the method).

    ``candidates`` (source names) only matters for ``level-topk``: the pool whose top ``k`` is counted
    (default: every row of the matrix).
    """

    def __init__(self, matrix: AsrMatrix, interpolation: str = "linear", deployed: Sequence[str] | None = None,
                 score: str = "envelope", candidates: Sequence[str] | None = None) -> None:
        if interpolation not in INTERPOLATIONS:
            raise InputError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
        if score not in SCORES:
            raise InputError(f"score must be one of {SCORES}, got {score!r}")
        self.matrix, self.interpolation, self.score_name = matrix, interpolation, score
        self.deployed = list(deployed) if deployed is not None else None
        self.candidates = list(candidates) if candidates is not None else None
        self._parts: list[_Axis] = []
        specs = [parse_codec(t) for t in matrix.targets]
        unknown = [d for d in (self.deployed or []) if d not in matrix.targets]
        if unknown:
            raise InputError(f"deployed target(s) {unknown} are not columns of the ASR matrix")
        missing = [c for c in (self.candidates or []) if c not in matrix.sources]
        if missing:
            raise InputError(f"candidate source(s) {missing} are not rows of the ASR matrix")
        n_src = len(matrix.sources)
        pool = (np.array([matrix.sources.index(c) for c in self.candidates], dtype=np.int64)
                if self.candidates is not None else np.arange(n_src))
        pool = np.sort(pool)  # ties go to the earlier source (row order)
        for arch in dict.fromkeys(s.arch for s in specs):
            cols = sorted((s.quality, j) for j, s in enumerate(specs) if s.arch == arch)
            q = np.array([c[0] for c in cols], dtype=np.float64)
            rows = matrix.values[:, [c[1] for c in cols]]
            if self.deployed is not None:
                dq = [parse_codec(d).quality for d in self.deployed if parse_codec(d).arch == arch]
                if not dq:
                    continue
                lo, hi = min(dq), max(dq)
            else:
                lo, hi = q[0], q[-1]
            self._parts.append(self._axis(q, rows, lo, hi, pool, n_src))
        if not self._parts:
            raise InputError("no deployed target: nothing to score")

    def _axis(self, q: np.ndarray, rows: np.ndarray, lo: float, hi: float, pool: np.ndarray, n_src: int) -> _Axis:
        name = self.score_name
        if name == "level-topk":
            levels = rows[pool][:, (q >= lo) & (q <= hi)]  # [P, L]
            order = np.argsort(-levels, axis=0, kind="stable")  # [P, L]: pool positions, best first
            ranks = np.full((levels.shape[1], n_src), n_src, dtype=np.int64)
            for lvl in range(levels.shape[1]):
                ranks[lvl, pool[order[:, lvl]]] = np.arange(len(pool))
            return _Axis(ranks=ranks)
        if lo == hi:  # one quality: the curves' values there
            return _Axis(grid=np.array([0.0]), curves=rows[:, list(q).index(lo)][:, None])
        u = (q - q[0]) / (q[-1] - q[0])
        w, v = (lo - q[0]) / (q[-1] - q[0]), (hi - q[0]) / (q[-1] - q[0])
        pchip = self.interpolation == "pchip" and len(u) > 2
        if name == "sum":
            if pchip:
                return _Axis(areas=PchipInterpolator(u, rows, axis=1).integrate(w, v) / (v - w))
            keep = (u >= w - 1e-12) & (u <= v + 1e-12)
            return _Axis(areas=_trapezoid(rows[:, keep], (u[keep] - w) / (v - w)))
        grid = _crossing_grid(u, rows) if name == "envelope" and not pchip else _fine_grid(u)
        keep = (grid >= w - 1e-12) & (grid <= v + 1e-12)
        return _Axis(grid=(grid[keep] - w) / (v - w), curves=_curves(u, rows, grid[keep], self.interpolation))

    def _value(self, part: _Axis, sets: np.ndarray) -> np.ndarray:
        """The per-architecture value of each row of ``sets`` (``[N, k]`` source indices)."""
        k = sets.shape[1]
        if self.score_name == "sum":
            return part.areas[sets].mean(1)
        if self.score_name == "level-topk":
            return (part.ranks[:, sets] < k).sum(-1).mean(0) / k
        y = part.curves[sets]  # [N, k, G]
        y = y.max(1) if self.score_name == "envelope" else 1.0 - np.prod(1.0 - y, axis=1)
        return y[:, 0] if len(part.grid) == 1 else _trapezoid(y, part.grid)

    def score_many(self, sets: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
        """Scores of many sets of equal size (``[N, k]`` row indices), vectorized; an empty set scores 0."""
        sets = np.asarray(sets, dtype=np.int64)
        if sets.ndim != 2:
            raise InputError(f"sets must be an [N, k] array of source indices, got shape {sets.shape}")
        out = np.zeros(len(sets))
        if sets.shape[1] == 0 or len(sets) == 0:
            return out
        width = max(p.curves.shape[1] if p.curves is not None else 1 for p in self._parts)
        step = max(1, _CHUNK // (sets.shape[1] * width))
        for start in range(0, len(sets), step):
            block = sets[start:start + step]
            out[start:start + step] = sum(self._value(p, block) for p in self._parts) / len(self._parts)
        return out

    def score(self, indices: Sequence[int]) -> float:
        """The score (module docstring, variant ``score_name``) of the sources at ``indices``."""
        if len(indices) == 0:
            return 0.0
        return float(self.score_many([list(indices)])[0])


def _check_names(matrix: AsrMatrix, names: Sequence[str], what: str = "candidate") -> list[str]:
    names = list(names)
    missing = [n for n in names if n not in matrix.sources]
    if missing:
        raise InputError(f"{what} source(s) {missing} are not rows of the ASR matrix")
    if len(set(names)) != len(names):
        raise InputError(f"repeated {what} sources in {names}")
    return names


def enumerate_sets(names: Sequence[str], k: int) -> list[tuple[str, ...]]:
    """Every ``k``-subset of ``names`` exactly once, in :func:`itertools.combinations` order (members in
    the order of ``names``): ``comb(len(names), k)`` sets."""
    names = list(names)
    if len(set(names)) != len(names):
        raise InputError(f"repeated names in {names}")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(names):
        raise InputError(f"k must be an integer in [1, {len(names)}], got {k!r}")
    return list(itertools.combinations(names, k))


def _score_named(cov: Coverage, matrix: AsrMatrix, sets: Sequence[Sequence[str]]) -> np.ndarray:
    out = np.zeros(len(sets))
    by_size: dict[int, list[int]] = {}
    for i, s in enumerate(sets):
        _check_names(matrix, s, "set member")
        by_size.setdefault(len(s), []).append(i)
    for size, where in by_size.items():
        if size:
            idx = np.array([[matrix.sources.index(n) for n in sets[i]] for i in where], dtype=np.int64)
            out[where] = cov.score_many(idx)
    return out


def score_sets(matrix: AsrMatrix, sets: Sequence[Sequence[str]], *, interpolation: str = "linear",
               score: str = "envelope", deployed: Sequence[str] | None = None,
               candidates: Sequence[str] | None = None) -> np.ndarray:
    """The score of each set of source names (any sizes; an empty set scores 0), with one :class:`Coverage`.

    ``candidates`` is the ranked pool of ``level-topk`` (default: every row)."""
    cov = Coverage(matrix, interpolation, deployed, score, candidates)
    return _score_named(cov, matrix, sets)


@dataclass(frozen=True)
class Selection:
    """A chosen set of sources, its coverage score, and how it was found."""

    sources: tuple[str, ...]
    score: float
    method: str
    sets_scored: int


def select_sources(matrix: AsrMatrix, k: int, *, interpolation: str = "linear", deployed: Sequence[str] | None = None,
                   candidates: Sequence[str] | None = None, method: str = "auto",
                   score: str = "envelope") -> Selection:
    """The set of ``k`` sources (rows) of highest score ``score`` (see the module docstring)."""
    names = _check_names(matrix, candidates if candidates is not None else matrix.sources)
    if not isinstance(k, int) or not 1 <= k <= len(names):
        raise InputError(f"k must be an integer in [1, {len(names)}], got {k!r}")
    if method not in ("auto", "exhaustive", "greedy"):
        raise InputError(f"method must be auto, exhaustive or greedy, got {method!r}")
    cov = Coverage(matrix, interpolation, deployed, score, candidates)
    idx = [matrix.sources.index(n) for n in names]
    if method == "auto":
        small = len(idx) <= EXHAUSTIVE_SOURCES or math.comb(len(idx), k) <= EXHAUSTIVE_SETS
        method = "exhaustive" if small else "greedy"
    if method == "exhaustive":
        combos = np.array(list(itertools.combinations(idx, k)), dtype=np.int64)
        values = cov.score_many(combos)
        i = int(np.flatnonzero(values >= values.max() - 1e-12)[0])
        best, best_score, scored = tuple(int(c) for c in combos[i]), float(values[i]), len(combos)
    else:
        best, best_score, scored = (), 0.0, 0
        for _ in range(k):
            rest = [i for i in idx if i not in best]
            values = cov.score_many([[*best, i] for i in rest])
            j = int(np.flatnonzero(values >= values.max() - 1e-12)[0])
            best, best_score, scored = (*best, rest[j]), float(values[j]), scored + len(rest)
    return Selection(tuple(matrix.sources[i] for i in best), best_score, method, scored)


@dataclass(frozen=True)
class RandomBaseline:
    """``draws`` distinct random k-sets, the value of each (coverage, or what ``evaluate`` measured), mean and
    std (ddof=1)."""

    sets: tuple[tuple[str, ...], ...]
    values: tuple[float, ...]
    mean: float
    std: float


def _distinct_sets(names: list[str], k: int, draws: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    total = math.comb(len(names), k)
    if draws >= total:
        return enumerate_sets(names, k)
    if total <= 100_000 or draws > total // 2:
        every = enumerate_sets(names, k)
        return [every[i] for i in rng.choice(total, size=draws, replace=False)]
    seen: dict[tuple[str, ...], None] = {}
    while len(seen) < draws:
        seen.setdefault(tuple(names[i] for i in sorted(rng.choice(len(names), size=k, replace=False))))
    return list(seen)


def random_baseline(matrix: AsrMatrix, k: int, draws: int, *, seed: int = 0, candidates: Sequence[str] | None = None,
                    evaluate: Callable[[tuple[str, ...]], float] | None = None, interpolation: str = "linear",
                    deployed: Sequence[str] | None = None, score: str = "envelope") -> RandomBaseline:
    """Random sets of ``k`` distinct sources, drawn WITHOUT replacement across draws (every set at most once),
    scored by ``evaluate`` or by ``score``.

    When ``draws ≥ comb(len(candidates), k)`` every set is returned once, in :func:`enumerate_sets` order
    (fewer than ``draws`` values); otherwise ``draws`` distinct sets in the order drawn (seeded by ``seed``),
    members in candidate order.
    """
    names = _check_names(matrix, candidates if candidates is not None else matrix.sources)
    if not isinstance(k, int) or not 1 <= k <= len(names):
        raise InputError(f"k must be an integer in [1, {len(names)}], got {k!r}")
    if not isinstance(draws, int) or draws < 1:
        raise InputError(f"draws must be an integer ≥ 1, got {draws!r}")
    sets = tuple(_distinct_sets(names, k, draws, np.random.default_rng(seed)))
    if evaluate is None:
        cov = Coverage(matrix, interpolation, deployed, score, candidates)
        values = tuple(float(v) for v in _score_named(cov, matrix, sets))
    else:
        values = tuple(float(evaluate(s)) for s in sets)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return RandomBaseline(sets, values, float(np.mean(values)), std)


def saliency_attack(matrix: AsrMatrix, k: int, classifier: object, images: object, labels: object, *,
                    attack: str = "pgd", weights: str = "random", rounding: str = "ste", reduce: str = "loss",
                    interpolation: str = "linear", deployed: Sequence[str] | None = None, score: str = "envelope",
                    **attack_kwargs: object):
    """Select the best ``k`` sources and run the ensemble attack on them: (adv images, selection, attack)."""

    sel = select_sources(matrix, k, interpolation=interpolation, deployed=deployed, score=score)
    ens = build_ensemble(sel.sources, classifier, weights=weights, rounding=rounding, reduce=reduce)
    common = {k: v for k, v in attack_kwargs.items() if k in COMMON}
    params = {k: v for k, v in attack_kwargs.items() if k not in COMMON}
    atk = AttackSpec(attack, params=params, **common).build(ens)
    return atk(images, labels), sel, atk
