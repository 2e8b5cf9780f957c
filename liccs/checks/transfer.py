"""Transfer of adversarial images to deployed engines: per-cell metrics, matrices and the transfer gap.

Definitions (one *cell* = adversarial images from one source, evaluated on one target model on one engine):

- ``clean_acc``: fraction of clean images the target classifies correctly.
- ``adv_acc``: fraction of adversarial images it classifies correctly.
- ``asr`` (attack success rate): among the images the target classifies correctly *when clean*, the
  fraction whose adversarial version it gets wrong (targeted: classifies as the target label).
  NaN when no image is clean-correct; ``n_clean_correct`` says over how many images it was counted.
- ``fooling_rate``: among all images, the fraction whose adversarial prediction differs from the
  target's *own* clean prediction (labels are not used).
- ``agree_clean`` / ``agree_adv``: top-1 agreement of this engine with the reference engine (PyTorch) on
  the same target, on clean and on adversarial inputs (NaN without a reference).
- ``variant``: ``float`` (the attack's float images) or ``uint8`` (rounded to 8 bits, what a deployed
  system receives).

The transfer gap is ``ASR(reference) − ASR(engine)`` per cell: positive when the deployed engine is
harder to fool than PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from liccs.core.errors import InputError
from liccs.core.progress import tqdm

PredictFn = Callable[[torch.Tensor], Any]  # images [B, 3, H, W] in [0, 1] → logits [B, classes]
VARIANTS = ("float", "uint8")
CELL = ("engine", "source", "target", "variant")


def _labels(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise InputError(f"{name} must be a 1-D array of integer class indices, got shape {a.shape} dtype {a.dtype}")
    return a.astype(np.int64)


def top1(logits: Any) -> np.ndarray:
    """Class indices from logits ``[N, classes]`` (torch or numpy)."""
    if isinstance(logits, torch.Tensor):
        return logits.detach().argmax(1).cpu().numpy().astype(np.int64)
    a = np.asarray(logits)
    if a.ndim != 2:
        raise InputError(f"logits must be [N, classes], got shape {a.shape}")
    return a.argmax(1).astype(np.int64)


def cell_metrics(labels: Any, clean_pred: Any, adv_pred: Any, *, ref_clean_pred: Any = None,
                 ref_adv_pred: Any = None, targets: Any = None) -> dict[str, float]:
    """The metrics of one cell from predicted classes (see the module docstring for the definitions)."""
    y, c, a = _labels(labels, "labels"), _labels(clean_pred, "clean_pred"), _labels(adv_pred, "adv_pred")
    if not (len(y) == len(c) == len(a)) or len(y) == 0:
        raise InputError(f"labels, clean_pred and adv_pred must be non-empty and of one length, got "
                         f"{len(y)}, {len(c)}, {len(a)}")
    correct = c == y
    if targets is None:
        success = a != y
    else:
        t = _labels(targets, "targets")
        if len(t) != len(y):
            raise InputError(f"targets must have {len(y)} entries, got {len(t)}")
        success = a == t
    n_cc = int(correct.sum())
    out = {"n": len(y), "clean_acc": float(correct.mean()), "adv_acc": float((a == y).mean()),
           "n_clean_correct": n_cc, "asr": float(success[correct].mean()) if n_cc else float("nan"),
           "fooling_rate": float((a != c).mean()), "agree_clean": float("nan"), "agree_adv": float("nan")}
    for key, ref, mine in (("agree_clean", ref_clean_pred, c), ("agree_adv", ref_adv_pred, a)):
        if ref is not None:
            r = _labels(ref, key)
            if len(r) != len(y):
                raise InputError(f"reference predictions for {key} must have {len(y)} entries, got {len(r)}")
            out[key] = float((r == mine).mean())
    return out


def as_uint8_variant(images: torch.Tensor) -> torch.Tensor:
    """What a deployed system receives: images rounded (not truncated) to 8 bits, back in [0, 1] float."""
    return images.detach().clamp(0, 1).mul(255).round().div(255)


@dataclass
class Predictions:
    """Predicted classes of one engine: clean per target; adversarial per (source, target, variant)."""

    clean: dict[str, np.ndarray] = field(default_factory=dict)
    adv: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)


def _predict(fn: PredictFn, images: torch.Tensor, batch_size: int) -> np.ndarray:
    preds = [top1(fn(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
    return np.concatenate(preds)


def predict_sets(adversarial: Mapping[str, torch.Tensor], clean: torch.Tensor, targets: Mapping[str, PredictFn], *,
                 variants: Sequence[str] = VARIANTS, batch_size: int = 32, progress: bool = True,
                 desc: str = "transfer") -> Predictions:
    """Run the clean images and every adversarial set (in every variant) through every target."""
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise InputError(f"variants must be a non-empty subset of {VARIANTS}, got {list(variants)}")
    for src, adv in adversarial.items():
        if tuple(adv.shape) != tuple(clean.shape):
            raise InputError(f"adversarial set {src!r} has shape {tuple(adv.shape)}, clean images {tuple(clean.shape)}")
    sets = {(s, v): (as_uint8_variant(x) if v == "uint8" else x) for s, x in adversarial.items() for v in variants}
    out = Predictions()
    jobs = [(t, None) for t in targets] + [(t, k) for t in targets for k in sets]
    for target, key in tqdm(jobs, desc=desc, disable=not progress):
        images = clean if key is None else sets[key]
        pred = _predict(targets[target], images, batch_size)
        if key is None:
            out.clean[target] = pred
        else:
            out.adv[(key[0], target, key[1])] = pred
    return out


def transfer_table(labels: Any, preds: Predictions, *, engine: str, reference: Predictions | None = None,
                   target_labels: Any = None) -> pd.DataFrame:
    """One row per (source, target, variant) of ``engine``: :func:`cell_metrics` against ``reference``."""
    rows = []
    for (source, target, variant), adv in preds.adv.items():
        ref_c = reference.clean.get(target) if reference else None
        ref_a = reference.adv.get((source, target, variant)) if reference else None
        m = cell_metrics(labels, preds.clean[target], adv, ref_clean_pred=ref_c, ref_adv_pred=ref_a,
                         targets=target_labels)
        rows.append({"engine": engine, "source": source, "target": target, "variant": variant, **m})
    return pd.DataFrame(rows)


def transfer_matrix(adversarial: Mapping[str, torch.Tensor], clean: torch.Tensor, labels: Any,
                    targets: Mapping[str, PredictFn], *, engine: str = "torch",
                    reference: Predictions | Mapping[str, PredictFn] | None = None,
                    variants: Sequence[str] = VARIANTS, batch_size: int = 32, target_labels: Any = None,
                    progress: bool = True) -> tuple[pd.DataFrame, Predictions]:
    """Evaluate adversarial sets (keyed by source) on targets (name → images-to-logits) of one engine.

    Args:
        adversarial: source name → adversarial images ``[N, 3, H, W]`` float in [0, 1].
        clean: the clean images they were made from, same shape; ``labels`` their classes.
        targets: target name (e.g. ``ARCH@qN``) → predict function of this engine.
        engine: engine name written in the ``engine`` column.
        reference: PyTorch's predictions (or predict functions) for the agreement columns; None for none.
        target_labels: the attack's target classes, for targeted attacks.

    Returns:
        (the long table of :func:`transfer_table`, this engine's predictions, reusable as a reference).
    """
    preds = predict_sets(adversarial, clean, targets, variants=variants, batch_size=batch_size,
                         progress=progress, desc=f"transfer {engine}")
    if reference is not None and not isinstance(reference, Predictions):
        reference = predict_sets(adversarial, clean, reference, variants=variants, batch_size=batch_size,
                                 progress=progress, desc="transfer reference")
    return transfer_table(labels, preds, engine=engine, reference=reference, target_labels=target_labels), preds


def matrices(table: pd.DataFrame, metric: str = "asr", variant: str = "uint8") -> dict[str, pd.DataFrame]:
    """Per engine, the source × target matrix of ``metric`` for one variant."""
    sub = table[table["variant"] == variant]
    if sub.empty:
        raise InputError(f"no rows of variant {variant!r} (have {sorted(table['variant'].unique())})")
    return {e: g.pivot_table(index="source", columns="target", values=metric, aggfunc="mean", sort=False)
            for e, g in sub.groupby("engine", sort=False)}


def transfer_gap(table: pd.DataFrame, *, reference_engine: str = "torch",
                 precision: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per cell of every other engine: ``gap = ASR(reference) − ASR(engine)``, with the engine's precision."""
    ref = table[table["engine"] == reference_engine]
    if ref.empty:
        raise InputError(f"reference engine {reference_engine!r} has no rows (engines: "
                         f"{sorted(table['engine'].unique())})")
    keys = ["source", "target", "variant"]
    other = table[table["engine"] != reference_engine]
    merged = other.merge(ref[keys + ["asr"]].rename(columns={"asr": "asr_reference"}), on=keys, how="inner")
    merged["gap"] = merged["asr_reference"] - merged["asr"]
    merged["precision"] = merged["engine"].map(lambda e: (precision or {}).get(e))
    return merged[["engine", "precision", *keys, "asr_reference", "asr", "gap", "agree_clean", "agree_adv"]]


def gap_summary(gaps: pd.DataFrame) -> pd.DataFrame:
    """Mean, min and max gap per engine, precision and variant (over sources and targets)."""
    return (gaps.groupby(["engine", "precision", "variant"], dropna=False, sort=False)["gap"]
            .agg(mean_gap="mean", min_gap="min", max_gap="max", cells="count").reset_index())
