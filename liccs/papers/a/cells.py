"""Paper A's per-image outcomes ("Transferable learned image compression-resistant adversarial perturbations").

A *cell* is (attack setting, source, target): adversarial images crafted through ``source`` (a LICCS model, an
ensemble ``a+b``, or the classifier alone) with one setting (eps, steps), evaluated on ``target`` on the
reference engine. Its outcome per image is 1 (the target classified the clean image correctly and the
adversarial one wrongly), 0 (still correct) or NaN (the clean image was already wrong: not counted), so every
contrast of two cells is paired over the same images (:mod:`liccs.core.stats`). ASR is the mean over the counted
images, as in :func:`liccs.checks.transfer.cell_metrics`. The images the targets receive are the attack's,
rounded to 8 bits (what a deployed system receives).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from torch import Tensor

from liccs.checks.transfer import as_uint8_variant, top1
from liccs.papers.a.tables import codec_parts

#: top-1 of (target, images) from a store, else from the callable: :class:`liccs.papers.a.memo.PredictionMemo`
Memo = Callable[[str, Tensor, Callable[[], np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Setting:
    """One PGD setting: L∞ ``eps`` and ``steps``; step size ``min(eps, 2.5·eps/steps)`` (Madry et al., ICLR 2018)."""

    eps: float
    steps: int

    @property
    def step_size(self) -> float:
        return min(self.eps, 2.5 * self.eps / self.steps)

    @property
    def eps_255(self) -> float:
        return round(self.eps * 255, 4)

    def label(self) -> str:
        return f"{self.eps_255:g}/255, {self.steps} steps"


def nanmean(v: np.ndarray) -> float:
    """Mean of the finite entries; NaN (without a warning) when there is none."""
    v = np.asarray(v, dtype=float)
    ok = np.isfinite(v)
    return float(v[ok].mean()) if ok.any() else float("nan")


def predict(fn: Callable[[Tensor], Any], images: Tensor, batch_size: int) -> np.ndarray:
    """Top-1 of one target on ``images``, in batches."""
    with torch.no_grad():
        return np.concatenate([top1(fn(images[i:i + batch_size])) for i in range(0, len(images), batch_size)])


class Cells:
    """Per-image outcomes of every evaluated cell on one image set (``images``, ``labels``)."""

    def __init__(self, images: Tensor, labels: Tensor, fns: dict[str, Callable[[Tensor], Any]],
                 batch_size: int, memo: Memo | None = None, clean_top1: dict[str, np.ndarray] | None = None) -> None:
        """``clean_top1``: targets' top-1 on the clean images already known (an executor task's)."""
        self.images, self.labels = images, labels.numpy()
        self.fns, self.batch_size, self.memo = fns, batch_size, memo
        self._clean: dict[str, np.ndarray] = {t: np.asarray(p) == self.labels for t, p in (clean_top1 or {}).items()}
        self.outcome: dict[tuple[Setting, str, str], np.ndarray] = {}

    @classmethod
    def of(cls, outcome: dict[tuple[Setting, str, str], np.ndarray], n: int) -> Cells:
        """Cells of ``n`` images holding ``outcome`` only (no images or predictors: nothing more is evaluated)."""
        cells = cls(torch.empty(0), torch.zeros(n, dtype=torch.long), {}, 1)
        cells.outcome = dict(outcome)
        return cells

    def predict(self, target: str, images: Tensor) -> np.ndarray:
        """Top-1 of ``target`` on ``images``, through the memo where there is one."""
        compute = lambda: predict(self.fns[target], images, self.batch_size)  # noqa: E731
        return compute() if self.memo is None else self.memo(target, images, compute)

    def clean_correct(self, target: str) -> np.ndarray:
        if target not in self._clean:
            self._clean[target] = self.predict(target, self.images) == self.labels
        return self._clean[target]

    def add(self, setting: Setting, source: str, adversarial: Tensor, targets: Iterable[str],
            predictions: dict[str, np.ndarray] | None = None) -> None:
        """Evaluate ``adversarial`` (crafted through ``source``) on every target not evaluated yet; a target's top-1
        in ``predictions`` (an executor task's) is used as it is."""
        x = as_uint8_variant(adversarial)
        for t in targets:
            if (setting, source, t) in self.outcome:
                continue
            pred = (predictions or {}).get(t)
            wrong = (pred if pred is not None else self.predict(t, x)) != self.labels
            self.outcome[(setting, source, t)] = np.where(self.clean_correct(t), wrong.astype(float), np.nan)

    def get(self, setting: Setting, source: str, target: str) -> np.ndarray:
        return self.outcome[(setting, source, target)]

    def per_image(self, setting: Setting, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Per image, the mean outcome over the cells ``(source, target)`` where it was counted (NaN: none)."""
        if not pairs:
            return np.full(len(self.labels), np.nan)
        stack = np.stack([self.get(setting, s, t) for s, t in pairs])
        counted = np.isfinite(stack).sum(0)
        with np.errstate(invalid="ignore"):
            return np.where(counted > 0, np.nansum(stack, 0) / np.maximum(counted, 1), np.nan)

    def frame(self, classifier: str) -> pd.DataFrame:
        """One row per cell: setting, source and target (architecture, quality), ASR and how many images counted."""
        rows = []
        for (st, s, t), v in self.outcome.items():
            ps, pt = codec_parts(s) if "+" not in s else None, codec_parts(t)
            n = int(np.isfinite(v).sum())
            rows.append({"eps_255": st.eps_255, "steps": st.steps, "source": s, "target": t,
                         "source_arch": ps[0] if ps else ("classifier" if s == classifier else "ensemble"),
                         "source_q": ps[1] if ps else None, "target_arch": pt[0] if pt else "classifier",
                         "target_q": pt[1] if pt else None, "asr": nanmean(v),
                         "n_clean_correct": n})
        df = pd.DataFrame(rows)
        for col in ("source_q", "target_q"):
            df[col] = df[col].astype("Int64")
        return df


def ladder_pairs(ladder: Sequence[str], dq: Callable[[int], bool]) -> list[tuple[str, str]]:
    """Off-diagonal (source, target) pairs of one ladder whose quality distance |Δq| satisfies ``dq``."""
    q = {c: codec_parts(c)[1] for c in ladder}
    return [(s, t) for s in ladder for t in ladder if s != t and dq(abs(q[s] - q[t]))]


def decay_slope(cells: Cells, setting: Setting, ladder: Sequence[str]) -> tuple[float, float]:
    """(least-squares slope of cell ASR against |Δq| over the ladder's off-diagonal cells, Spearman ρ)."""
    q = {c: codec_parts(c)[1] for c in ladder}
    x, y = [], []
    for s, t in ladder_pairs(ladder, lambda d: True):
        v = cells.get(setting, s, t)
        if np.isfinite(v).any():
            x.append(abs(q[s] - q[t]))
            y.append(nanmean(v))
    if len(set(x)) < 2:
        return float("nan"), float("nan")
    rho = spearmanr(x, y).statistic if np.ptp(y) > 0 else float("nan")
    return float(np.polyfit(x, y, 1)[0]), float(rho)
