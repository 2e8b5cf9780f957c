"""Sanity checks of an attack evaluation (Carlini et al., "On evaluating adversarial robustness", 2019, §5):
success must not fall when the budget grows (eps, steps), an unbounded attack must reach (almost) every image,
and an adaptive attack on a defense must be at least as strong as the plain one.

:func:`sanity_table` runs the first three on a model and returns one row per measurement with ``ok`` and, where
not, why; :func:`adaptive_check` compares two per-image objective arrays (the plain and the adaptive attack's),
whatever produced them; :func:`monotone` is the shared rule. Each failed row is a warning sign of gradient
masking, a broken attack or too small a budget, never a robustness result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from liccs.attack.base import Attack
from liccs.core.errors import InputError
from liccs.core.stats import paired

#: An unbounded attack must fool at least this share of the images (Carlini et al.: "should reach 100%").
UNBOUNDED_MIN = 0.99


def monotone(values: Sequence[float], tol: float = 0.0) -> list[bool]:
    """Per value, whether it is at least the best of the values before it minus ``tol`` (non-decreasing)."""
    ok, best = [], -math.inf
    for v in values:
        ok.append(v >= best - tol)
        best = max(best, v)
    return ok


@torch.no_grad()
def success_rate(predict: Callable[[Tensor], Tensor], adv: Tensor, labels: Tensor) -> float:
    """The share of images whose top-1 under ``predict`` is not their label (untargeted success, clean errors
    included: one minus robust accuracy)."""
    return float((predict(adv).argmax(1) != labels.to(adv.device)).float().mean())


def sanity_table(make_attack: Callable[[float, int], Attack], x: Tensor, labels: Tensor, *, eps: Sequence[float],
                 steps: Sequence[int], focus_eps: float | None = None, unbounded_eps: float | None = None,
                 predict: Callable[[Tensor], Tensor] | None = None, tol: float = 0.0) -> list[dict[str, Any]]:
    """Rows ``{check, eps, steps, success, ok, why}``: success over ``eps`` (at ``steps[-1]``), over ``steps`` (at
    ``focus_eps``, default the middle eps), and at ``unbounded_eps`` (default 1, the whole L∞ box; give the image's
    L2 diameter for L2), which must reach :data:`UNBOUNDED_MIN`.

    Args:
        make_attack: ``(eps, steps) → attack``, the attack under test at that budget.
        x, labels: the images and their true labels.
        eps, steps: increasing budgets.
        predict: the scores success is judged by (default: the attack's target).
        tol: how far success may fall with a larger budget before a row fails (the sampling noise of a random
            start; 0 for a deterministic attack).
    """
    if list(eps) != sorted(eps) or list(steps) != sorted(steps) or not eps or not steps:
        raise InputError("sanity_table: eps and steps must be non-empty and increasing")
    focus = float(focus_eps) if focus_eps is not None else float(eps[len(eps) // 2])
    rows: list[dict[str, Any]] = []

    def measure(check: str, e: float, s: int) -> dict[str, Any]:
        atk = make_attack(e, s)
        judge = predict if predict is not None else atk.target
        row = {"check": check, "attack": atk.name, "eps": e, "steps": s,
               "success": success_rate(judge, atk(x, labels), labels), "ok": True, "why": ""}
        rows.append(row)
        return row

    for check, series in (("eps", [measure("eps", e, steps[-1]) for e in eps]),
                          ("steps", [measure("steps", focus, s) for s in steps])):
        for row, ok in zip(series, monotone([r["success"] for r in series], tol), strict=True):
            if not ok:
                row["ok"] = False
                row["why"] = f"success fell as {check} grew (Carlini et al. 2019: it must not)"
    row = measure("unbounded", float(unbounded_eps) if unbounded_eps is not None else 1.0, steps[-1])
    if row["success"] < UNBOUNDED_MIN:
        row["ok"] = False
        row["why"] = (f"an unbounded attack fooled {row['success']:.1%} < {UNBOUNDED_MIN:.0%} of the images: "
                      "gradient masking or a broken attack")
    return rows


def adaptive_check(plain: Sequence[float] | np.ndarray, adaptive: Sequence[float] | np.ndarray, *,
                   higher_is_stronger: bool = True, tol: float = 0.0, what: str = "adaptive vs plain",
                   seed: int = 0) -> dict[str, Any]:
    """Is the adaptive attack at least as strong as the plain one? Two per-image objective arrays (the same
    images, in order); the adaptive one is flagged when its mean strength falls below the plain one's by more
    than ``tol``.

    Returns ``{what, n, plain_mean, adaptive_mean, gain, ci_low, ci_high, p, weaker_share, flagged, why}``, where
    ``gain`` is the mean of the adaptive − plain strength (sign-adjusted by ``higher_is_stronger``) with its paired
    95% interval and sign-flip p-value (:func:`liccs.core.stats.paired`), and ``weaker_share`` the share of
    images on which the adaptive attack did worse.
    """
    a = np.asarray(adaptive, dtype=np.float64).ravel()
    p = np.asarray(plain, dtype=np.float64).ravel()
    if a.shape != p.shape or not a.size:
        raise InputError(f"{what}: two per-image arrays of one length are needed, got {p.shape} and {a.shape}")
    sign = 1.0 if higher_is_stronger else -1.0
    r = paired(sign * a, sign * p, kind="continuous", what=what, seed=seed)
    weaker = float(np.mean(sign * (a - p) < 0))
    flagged = bool(r.effect < -tol)
    why = (f"the adaptive attack is weaker than the plain one by {-r.effect:.4g} on average (95% CI of the gain "
           f"[{r.ci_low:.4g}, {r.ci_high:.4g}], worse on {weaker:.0%} of the images): it is not adaptive enough "
           "(Carlini et al. 2019)") if flagged else ""
    return {"what": what, "n": r.n, "plain_mean": float(p.mean()), "adaptive_mean": float(a.mean()), "gain": r.effect,
            "ci_low": r.ci_low, "ci_high": r.ci_high, "p": r.p, "weaker_share": weaker, "flagged": flagged,
            "why": why}
