"""Training data for the offline mini zoo: CIFAR-10 as uint8 tensors, natural-image crops.

CIFAR-10 is decoded once from the shared zips and kept as one uint8 tensor file in the liccs cache.
Natural-image crops come from ``imagenet-samples`` only (Kodak is the test set and never trained on).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from liccs.core.errors import ImageReadError
from liccs.core.manifest import write_json
from liccs.core.paths import cache_dir
from liccs.core.progress import tqdm
from liccs.data import cifar10, imagenet_samples, to_float
from liccs.zoo.weights import sha256_of

log = logging.getLogger(__name__)


def _data_cache() -> Path:
    d = cache_dir() / "zoo" / "data"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _cached_tensors(path: Path) -> dict[str, Tensor] | None:
    meta = path.with_suffix(".json")
    if not (path.is_file() and meta.is_file()):
        return None

    if json.loads(meta.read_text()).get("sha256") != sha256_of(path):
        log.warning("cached data %s does not match its recorded sha256; rebuilding it", path)
        return None
    return torch.load(path, weights_only=True)


def _save_tensors(path: Path, obj: dict[str, Tensor]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
    write_json(path.with_suffix(".json"), {"sha256": sha256_of(path)})


def cifar10_tensors(split: str, limit_per_class: int | None = None, progress: bool = True) -> tuple[Tensor, Tensor]:
    """CIFAR-10 ``split`` as (uint8 images ``[N, 3, 32, 32]``, int64 labels ``[N]``), cached after the first read."""
    suffix = "" if limit_per_class is None else f"-{limit_per_class}pc"
    path = _data_cache() / f"cifar10-{split}{suffix}.pt"
    cached = _cached_tensors(path)
    if cached is not None:
        return cached["images"], cached["labels"]
    src = cifar10(split, limit_per_class=limit_per_class)
    images = torch.empty(len(src), 3, 32, 32, dtype=torch.uint8)
    labels = torch.empty(len(src), dtype=torch.long)
    for i in tqdm(range(len(src)), desc=f"decoding cifar10-{split}", disable=not progress, leave=False):
        _, _, label = src.describe(i)
        images[i] = src.read(i)
        labels[i] = label
    _save_tensors(path, {"images": images, "labels": labels})
    return images, labels


def rescale(img: Tensor, s: float, size: int) -> Tensor:
    """``img`` ``[3, H, W]`` scaled by ``s`` (bilinear antialiased down, bicubic up), never below ``size`` on
    either side (``s`` near ``size / min(H, W)`` can round the scaled side down to ``size - 1``)."""
    h, w = img.shape[-2:]
    out = (int(h * s), int(w * s))  # what scale_factor gives (floor)
    kw: dict = {"size": (max(size, out[0]), max(size, out[1]))} if min(out) < size else {"scale_factor": s}
    kw.update({"mode": "bilinear", "antialias": True} if s < 1 else {"mode": "bicubic"})
    return F.interpolate(img[None], align_corners=False, **kw)[0].clamp(0, 1)


def natural_crops(size: int, per_image: int, seed: int, progress: bool = True) -> Tensor:
    """Random ``size × size`` uint8 crops from ``imagenet-samples``, ``per_image`` per image.

    Each image is first downscaled by a random factor in [0.5, 1] (never below ``size``), which removes
    JPEG artefacts and matches the detail level of Kodak-like photographs.
    """
    path = _data_cache() / f"imagenet-crops-{size}-{per_image}-s{seed}.pt"
    cached = _cached_tensors(path)
    if cached is not None:
        return cached["images"]

    src = imagenet_samples()
    g = torch.Generator().manual_seed(seed)
    crops: list[Tensor] = []
    for i in tqdm(range(len(src)), desc="cutting imagenet-samples crops", disable=not progress, leave=False):
        try:
            img = to_float(src.read(i))
        except ImageReadError as e:
            log.warning("skipping %s", e)
            continue
        h, w = img.shape[-2:]
        lo = max(0.5, size / min(h, w))
        if lo > 1.0:  # too small for one crop
            img = rescale(img, lo, size)
        else:
            s = lo + (1.0 - lo) * torch.rand(1, generator=g).item()
            if s < 0.999:
                img = rescale(img, s, size)
        h, w = img.shape[-2:]
        for _ in range(per_image):
            top = int(torch.randint(0, h - size + 1, (1,), generator=g))
            left = int(torch.randint(0, w - size + 1, (1,), generator=g))
            crops.append(img[:, top : top + size, left : left + size].mul(255).round().to(torch.uint8))
    images = torch.stack(crops)
    _save_tensors(path, {"images": images})
    return images
