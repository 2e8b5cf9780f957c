"""Saving adversarial images: a uint8 PNG per image (rounded, same file stem as its input), the float
tensors (``adversarial.pt``), and a JSON sidecar (``attack.json``: the attack, its threat model, the
surrogate(s), the source model(s), the seed, and the manifest with versions).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from liccs.data import to_uint8
from liccs.errors import InputError
from liccs.manifest import manifest, write_json

SIDECAR = "attack.json"
TENSORS = "adversarial.pt"


def _check_names(names: Sequence[str], n: int) -> None:
    if len(names) != n:
        raise InputError(f"{len(names)} names for {n} images")
    if len(set(names)) != len(names):
        raise InputError("image names (file stems) repeat")
    bad = [s for s in names if not s or "/" in s or "\\" in s or s.startswith(".")]
    if bad:
        raise InputError(f"image names must be plain file stems, got {bad[:3]}")


def save_png(image: Tensor, path: str | Path) -> Path:
    """One float [3, H, W] image in [0, 1] as an 8-bit RGB PNG, rounded to nearest (:func:`liccs.data.to_uint8`)."""
    path = Path(path)
    arr = to_uint8(image).permute(1, 2, 0).cpu().numpy()
    Image.fromarray(np.ascontiguousarray(arr), mode="RGB").save(path)
    return path


def save_adversarial(out_dir: str | Path, images: Tensor | Sequence[Tensor], names: Sequence[str],
                     sidecar: dict[str, Any], *, labels: Sequence[int | None] | None = None) -> Path:
    """Write ``<stem>.png`` per image, ``adversarial.pt`` and ``attack.json`` under ``out_dir``.

    Returns the sidecar's path.
    """
    imgs = list(images)
    _check_names(names, len(imgs))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for img, name in zip(imgs, names, strict=True):
        if img.dim() != 3 or img.shape[0] != 3:
            raise InputError(f"image {name!r} must be [3, H, W], got {tuple(img.shape)}")
        save_png(img, out / f"{name}.png")
    torch.save({"names": list(names), "images": [i.detach().cpu().float() for i in imgs],
                "labels": list(labels) if labels is not None else None}, out / TENSORS)
    files = {"png": [f"{n}.png" for n in names], "tensors": TENSORS}
    return write_json(out / SIDECAR, {**sidecar, "files": files, "manifest": manifest()})


def load_adversarial(out_dir: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(name → float image [3, H, W], sidecar) as written by :func:`save_adversarial`."""
    out = Path(out_dir)
    if not (out / TENSORS).is_file():
        raise InputError(f"{out} holds no {TENSORS}: not written by save_adversarial")
    data = torch.load(out / TENSORS, weights_only=True)
    side = json.loads((out / SIDECAR).read_text()) if (out / SIDECAR).is_file() else {}
    return dict(zip(data["names"], data["images"], strict=True)), side
