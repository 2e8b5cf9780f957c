"""The main job. For now (foundation): a small real run through the zoo, the data and the pipeline.

It loads a codec and a classifier (pretrained weights where present, else random ones, said loudly),
pushes real ImageNet samples through the classifier alone and through LICCS with hard rounding,
measures real bits per pixel from CompressAI's entropy coder, and writes ``result.json`` and
``manifest.json``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from liccs.data import imagenet_samples, load_batch
from liccs.errors import WeightsError
from liccs.manifest import manifest, write_json
from liccs.pipeline import LICCS, codec_roundtrip, psnr
from liccs.zoo import CLASSIFIERS, load_classifier, load_codec

log = logging.getLogger("liccs")


@dataclass
class QuickConfig:
    codec: str = "bmshj2018-hyperprior@q3"
    classifier: str = "resnet18"
    weights: str = "pretrained"
    images: int = 8
    out: str = "runs/quick"


def _load_with_fallback(loader, name: str, weights: str) -> tuple[torch.nn.Module, str | None]:
    try:
        return loader(name, weights), None
    except WeightsError as e:
        if weights != "pretrained":
            raise
        note = f"{name}: {e} -> using RANDOM weights; accuracy numbers below mean nothing"
        log.warning(note)
        return loader(name, "random"), note


def quick_run(cfg: QuickConfig) -> dict[str, Any]:
    """Run the foundation's small job and write its result and manifest under ``cfg.out``."""
    t0 = time.perf_counter()
    notes: list[str] = []
    codec, note = _load_with_fallback(load_codec, cfg.codec, cfg.weights)
    notes += [note] if note else []
    clf, note = _load_with_fallback(load_classifier, cfg.classifier, cfg.weights)
    notes += [note] if note else []
    pre = CLASSIFIERS.get(cfg.classifier).preprocess
    batch = load_batch(imagenet_samples(), range(cfg.images), resize=pre.resize, crop=pre.crop, progress=True)
    x, y = batch.images, batch.label_tensor
    with torch.no_grad():
        clean_pred = clf(x).argmax(1)
        liccs = LICCS(codec, clf, rounding="hard")
        liccs_pred = liccs(x).argmax(1)
        x_hat, nbytes = codec_roundtrip(codec, x)
    pixels = x.shape[-2] * x.shape[-1]
    result = {
        "pipeline": liccs.describe(),
        "images": len(batch.names),
        "failures": batch.failures,
        "classifier_top1": (clean_pred == y).float().mean().item(),
        "liccs_top1": (liccs_pred == y).float().mean().item(),
        "agreement_with_classifier": (liccs_pred == clean_pred).float().mean().item(),
        "bpp_real": sum(nbytes) * 8 / (pixels * len(nbytes)),
        "psnr_db": psnr(x_hat, x).mean().item(),
        "seconds": round(time.perf_counter() - t0, 2),
        "notes": notes,
    }
    out = Path(cfg.out)
    write_json(out / "result.json", result)
    write_json(out / "manifest.json", manifest(asdict(cfg)))
    return result
