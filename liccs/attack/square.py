"""Square: a score-based black-box attack by random search (Andriushchenko, Croce, Flammarion & Hein, "Square
Attack: a query-efficient black-box adversarial attack via random search", ECCV 2020).

Threat model: black box, L∞ or L2 ball of radius eps intersected with [0, 1]; the attacker sees only the scores
(logits) of the images it submits, never a gradient, so it runs against any deployed engine: give it a
``predict`` function from a [0, 1] image batch to logits (an ONNX Runtime session wrapped in two lines). It
minimizes the margin ``z_y − max_{j≠y} z_j`` (targeted: ``max_{j≠t} z_j − z_t``; the paper uses the
cross-entropy there) and stops on each image as soon as the margin is negative. Each query changes one square
window of side ``√(p·H·W)``, with ``p`` shrinking from ``p_init`` on the paper's schedule: L∞ sets the window to
``±eps`` per channel (the start: vertical stripes of ``±eps``); L2 moves the perturbation's mass of a second window
into the first as a pair of opposite-sign centred bumps, keeping the norm at eps (the start: a grid of bumps).
A change is kept only when it lowers the margin. :func:`square_attack` reports, per image, the queries used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from liccs.attack.base import Attack, register_attack
from liccs.attack.threat import ThreatModel, per_sample_norm
from liccs.core.errors import InputError
from liccs.core.progress import tqdm

#: From a [0, 1] image batch ``[B, 3, H, W]`` to scores ``[B, classes]`` (a tensor or an array).
Predict = Callable[[Tensor], Any]

MAX_QUERIES = 1_000_000
_TINY = 1e-12


@dataclass
class SquareResult:
    """Per image: the adversarial image, the queries it used (0: already misclassified), success, final margin."""

    adv: Tensor
    queries: Tensor
    success: Tensor
    clean_correct: Tensor
    margin: Tensor
    #: mean over the images of the negated margin after the start and after each iteration (what Square raises)
    history: Tensor


def check_budget(queries: int, p_init: float) -> None:
    """Refuse a query budget outside ``[1, MAX_QUERIES]`` or a window share outside ``(0, 1]``."""
    if not isinstance(queries, int) or isinstance(queries, bool) or not 1 <= queries <= MAX_QUERIES:
        raise InputError(f"queries must be an integer in [1, {MAX_QUERIES}], got {queries!r}")
    if isinstance(p_init, bool) or not isinstance(p_init, (int, float)) or not 0 < p_init <= 1:
        raise InputError(f"p_init must be a number in (0, 1], got {p_init!r}")


def p_schedule(p_init: float, it: int, queries: int) -> float:
    """The share ``p`` of the image a window covers at iteration ``it`` (the paper's halvings, on a 10k scale)."""
    t = int(it / queries * 10_000)
    for bound, div in ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128),
                       (8000, 256)):
        if t <= bound:
            return p_init / div
    return p_init / 512


def margins(scores: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    """``z_y − max_{j≠y} z_j`` (targeted: ``max_{j≠t} z_j − z_t``): negative exactly where the attack succeeded."""
    z_y = scores.gather(1, labels[:, None]).squeeze(1)
    other = scores.scatter(1, labels[:, None], float("-inf")).amax(1)
    return other - z_y if targeted else z_y - other


def _scores(predict: Predict, x: Tensor) -> Tensor:
    out = predict(x)
    out = torch.from_numpy(np.asarray(out)) if not isinstance(out, Tensor) else out
    return out.detach().to(device=x.device, dtype=torch.float32)


def _bump(h: int, w: int) -> Tensor:
    """A centred bump on an ``h × w`` rectangle: the sum of ``1/(n − k)²`` over the rings ``k`` a pixel lies inside
    (``n`` rings), unit L2 norm: most of its mass in the middle (the paper's pseudo-Gaussian perturbation)."""
    i, j = torch.arange(h)[:, None], torch.arange(w)[None, :]
    ring = torch.minimum(torch.minimum(i, h - 1 - i), torch.minimum(j, w - 1 - j))
    n = int(ring.max()) + 1
    weights = torch.cumsum(1.0 / (n - torch.arange(n, dtype=torch.float32)) ** 2, 0)
    b = weights[ring]
    return b / b.norm()


def _pair(s: int, gen: torch.Generator) -> Tensor:
    """An ``s × s`` window holding two bumps of opposite sign side by side, in a random orientation, unit norm."""
    half = s // 2
    pat = torch.cat([_bump(s, half), -_bump(s, s - half)], 1)
    if bool(torch.rand((), generator=gen) < 0.5):
        pat = pat.T
    return pat / pat.norm()


def _window(n: int, h: int, w: int, s: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """A random ``s × s`` window per image: (mask ``[n, 1, H, W]``, top rows ``[n]``, left columns ``[n]``)."""
    r = torch.randint(0, h - s + 1, (n,), generator=gen)
    c = torch.randint(0, w - s + 1, (n,), generator=gen)
    rows = (torch.arange(h)[None] >= r[:, None]) & (torch.arange(h)[None] < (r + s)[:, None])
    cols = (torch.arange(w)[None] >= c[:, None]) & (torch.arange(w)[None] < (c + s)[:, None])
    return (rows[:, :, None] & cols[:, None, :])[:, None], r, c


def _place(pattern: Tensor, r: Tensor, c: Tensor, h: int, w: int) -> Tensor:
    """``pattern`` (``s × s``) at each image's window, zero elsewhere: ``[n, 1, H, W]``."""
    s = pattern.shape[0]
    ii = (torch.arange(h)[None] - r[:, None]).clamp(0, s - 1)
    jj = (torch.arange(w)[None] - c[:, None]).clamp(0, s - 1)
    return pattern[ii[:, :, None], jj[:, None, :]][:, None]


def _signs(shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
    return torch.randint(0, 2, shape, generator=gen).float().mul_(2).sub_(1)


def _start(x: Tensor, threat: ThreatModel, gen: torch.Generator) -> Tensor:
    b, ch, h, w = x.shape
    if threat.norm == "linf":  # vertical stripes of ±eps
        return threat.project(x, x + threat.eps * _signs((b, ch, 1, w), gen).to(x))
    s = max(min(h, w) // 5, 1)  # a grid of bumps of random sign per channel, scaled to norm eps
    delta = torch.zeros_like(x)
    bump = _bump(s, s).to(x)
    for top in range(0, h - s + 1, s):
        for left in range(0, w - s + 1, s):
            delta[..., top:top + s, left:left + s] = bump * _signs((b, ch, 1, 1), gen).to(x)
    delta = delta * (threat.eps / (per_sample_norm(delta, 2) + _TINY))
    return threat.project(x, x + delta)


def _propose(x: Tensor, best: Tensor, threat: ThreatModel, p: float, gen: torch.Generator) -> Tensor:
    """One random-search proposal per image (rows of ``x``/``best``)."""
    n, ch, h, w = x.shape
    delta = best - x
    if threat.norm == "linf":
        s = min(max(round(math.sqrt(p * h * w)), 1), h - 1 if h > 1 else 1, w - 1 if w > 1 else 1)
        mask, _, _ = _window(n, h, w, s, gen)
        mask = mask.to(x.device)
        new = torch.where(mask, threat.eps * _signs((n, ch, 1, 1), gen).to(x), delta)
        return threat.project(x, x + new)
    s = max(round(math.sqrt(p * h * w)), 3)
    s = min(s + 1 - s % 2, h - (1 - h % 2), w - (1 - w % 2))  # odd, inside the image
    m1, r1, c1 = _window(n, h, w, s, gen)
    m2, _, _ = _window(n, h, w, s, gen)
    m1, m2 = m1.to(x.device), m2.to(x.device)
    union = m1 | m2
    total = per_sample_norm(delta, 2)  # [n, 1, 1, 1]
    in_union = (delta * union).pow(2).sum((2, 3), keepdim=True).sqrt()  # [n, C, 1, 1]
    old = delta * m1
    old = old / (old.pow(2).sum((2, 3), keepdim=True).sqrt() + _TINY)
    bump = _place(_pair(s, gen), r1, c1, h, w).to(x) * _signs((n, ch, 1, 1), gen).to(x)
    new = bump + old
    budget = ((threat.eps ** 2 - total.pow(2)).clamp_min(0) / ch + in_union.pow(2)).sqrt()
    new = new / (new.pow(2).sum((2, 3), keepdim=True).sqrt() + _TINY) * budget
    delta = torch.where(m1, new, torch.where(m2, torch.zeros_like(delta), delta))
    delta = delta * (threat.eps / (per_sample_norm(delta, 2) + _TINY))
    return threat.project(x, x + delta)


@torch.no_grad()
def square_attack(predict: Predict, x: Tensor, labels: Tensor, *, eps: float, norm: str = "linf",
                  queries: int = 1000, p_init: float = 0.05, targeted: bool = False, seed: int = 0,
                  progress: bool = False) -> SquareResult:
    """Square against ``predict`` (scores only) on ``x`` ``[B, 3, H, W]`` in [0, 1] with ``labels`` ``[B]``.

    Args:
        predict: images → logits; called on the images still being attacked, never differentiated.
        eps, norm: the threat model (:class:`~liccs.attack.threat.ThreatModel`).
        queries: the budget per image, the start included (the clean images' one query is not counted).
        p_init: the share of the image the first windows cover (paper: 0.05 for L∞, 0.1 for L2 on ImageNet).
        targeted: ``labels`` are targets to reach.
        seed: seeds every draw (a local generator; the global RNG is not touched).
    """
    threat = ThreatModel(norm, eps)
    check_budget(queries, p_init)
    gen = torch.Generator().manual_seed(seed)
    labels = labels.to(x.device)
    m_clean = margins(_scores(predict, x), labels, targeted)
    clean_correct = m_clean >= 0
    best = x.clone()
    margin = m_clean.clone()
    used = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    idx = clean_correct.nonzero().flatten()
    history = []
    if len(idx):
        start = _start(x[idx], threat, gen)
        m = margins(_scores(predict, start), labels[idx], targeted)
        best[idx], margin[idx], used[idx] = start, m, 1
    history.append(-margin.mean())
    for it in tqdm(range(1, queries), desc="square", disable=not progress, leave=False):
        idx = (clean_correct & (margin >= 0)).nonzero().flatten()
        if not len(idx):
            break
        cand = _propose(x[idx], best[idx], threat, p_schedule(p_init, it, queries), gen)
        m = margins(_scores(predict, cand), labels[idx], targeted)
        used[idx] += 1
        better = m < margin[idx]
        keep = idx[better]
        best[keep], margin[keep] = cand[better], m[better]
        history.append(-margin.mean())
    return SquareResult(best, used, margin < 0, clean_correct, margin, torch.stack(history))


@register_attack("square")
class Square(Attack):
    """Square as a registered attack on a PyTorch target: its scores (the ensemble's mean logits) are the only
    thing it reads. Against a deployed engine call :func:`square_attack` with the engine's predict function.

    Args:
        model: as :class:`~liccs.attack.base.Attack` (never differentiated).
        queries: the query budget per image.
        p_init: the share of the image the first windows cover.
        **kwargs: eps, norm, targeted, objective (a classification one; Square queries the margin), seed.
    """

    paper = ("Andriushchenko et al., Square Attack: a query-efficient black-box adversarial attack via random "
             "search, ECCV 2020")
    own_step_size = True
    score_only = True
    objectives = ("ce", "margin", "dlr")
    takes_diversity = False

    def __init__(self, model: nn.Module, *, queries: int = 1000, p_init: float = 0.05, **kwargs: Any) -> None:
        for key in ("steps", "alpha"):
            if kwargs.get(key) is not None:
                raise InputError(f"Square takes no {key} (it queries scores: its budget is queries, its step the "
                                 "window schedule)")
        if kwargs.get("random_start"):
            raise InputError("Square starts from its own stripes (L∞) or bumps (L2): random_start must be false")
        check_budget(queries, p_init)
        self.queries, self.p_init = queries, float(p_init)
        super().__init__(model, **kwargs)
        self.result: SquareResult | None = None  #: per-image queries, success and margins of the last call

    def perturb(self, x: Tensor, labels: Tensor, gen: torch.Generator) -> Tensor:
        """Run :func:`square_attack` on the target's scores (seeded from ``gen``); the per-image result is kept in
        ``result``."""
        seed = int(torch.randint(0, 2**62, (), generator=gen))
        self.result = square_attack(lambda v: self.target(v), x, labels, eps=self.threat.eps, norm=self.threat.norm,
                                    queries=self.queries, p_init=self.p_init, targeted=self.targeted, seed=seed,
                                    progress=self.progress)
        self.losses = self.result.history
        return self.result.adv

    def describe(self) -> dict[str, Any]:
        """As :meth:`Attack.describe`, with the query budget, ``p_init``, the margin loss and the queries used."""
        d = {**super().describe(), "steps": None, "alpha": None, "random_start": None, "queries": self.queries,
             "p_init": self.p_init, "score_only": True, "loss": "margin"}
        if self.result is not None:
            d["queries_used"] = self.result.queries.tolist()
        return d
