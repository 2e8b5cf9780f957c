"""Paper A's top-1 predictions kept on disk, so that an interrupted run resumes its cell evaluations as it resumes
its crafting ("Transferable learned image compression-resistant adversarial perturbations").

A prediction is the top-1 of one target on one image set on PyTorch (the reference engine), keyed like the crafted
sets: by the images' bytes, the target's weights (a codec target's with the classifier's), the engine and the
batch size, not by the code. Delete ``<run.out>/adversarial/paper-a/top1/`` after a change to how targets predict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from liccs.core.fileio import json_digest, load_keyed, save_keyed
from liccs.stage import Context

#: The engine whose predictions are kept: the route of a target on PyTorch is fixed by its weights; an int8
#: engine's also by its calibration and export settings, which the key does not cover.
ENGINE = "torch"


class PredictionMemo:
    """Top-1 of ``target`` on ``images`` from ``folder``, else ``compute()`` kept there."""

    def __init__(self, folder: Path, identity: dict[str, str], batch_size: int, engine: str = ENGINE) -> None:
        self.folder, self.identity, self.batch_size, self.engine = Path(folder), identity, batch_size, engine

    def __call__(self, target: str, images: Tensor, compute: Callable[[], np.ndarray]) -> np.ndarray:
        key = json_digest({"target": target, "weights": self.identity[target], "engine": self.engine,
                           "batch_size": self.batch_size,
                           "images": hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()})
        path = self.folder / f"{target.replace('@', '-')[:80]}-{key[:20]}.pt"
        hit = load_keyed(path, key)
        if hit is not None:
            return hit["top1"].numpy()
        top1 = np.asarray(compute())
        save_keyed(path, {"key": key, "top1": torch.as_tensor(top1)})
        return top1


def memo_for(ctx: Context, out: Path) -> PredictionMemo | None:
    """The run's memo of reference-engine predictions, or None where the reference engine is not PyTorch."""
    if ctx.cfg.transfer.reference_engine != ENGINE:
        return None
    clf = ctx.cfg.models.classifier

    def weights(m: str) -> str:
        w = ctx.weights.get(m, {})
        return str(w.get("sha256") or w.get("source") or m)

    identity = {m: f"{weights(m)}+{weights(clf)}" for m in ctx.names.codecs} | {clf: weights(clf)}
    return PredictionMemo(out / "adversarial" / "paper-a" / "top1", identity, ctx.cfg.transfer.batch_size)
