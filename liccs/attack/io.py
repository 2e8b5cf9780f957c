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

from liccs.core.errors import InputError
from liccs.core.manifest import manifest, write_json
from liccs.data import to_uint8

SIDECAR = "attack.json"
TENSORS = "adversarial.pt"


def plain_stem(name: str) -> bool:
    """Whether ``name`` can be written as ``NAME.png`` in the output folder: not empty, not hidden (a leading '.'),
    no path separator."""
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name


def _check_names(names: Sequence[str], n: int) -> None:
    if len(names) != n:
        raise InputError(f"{len(names)} names for {n} images")
    if len(set(names)) != len(names):
        raise InputError("image names (file stems) repeat")
    bad = [s for s in names if not plain_stem(s)]
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
    """(name → float image [3, H, W], sidecar) as written by :func:`save_adversarial`.

    The files are not trusted: a damaged or foreign ``adversarial.pt`` or ``attack.json``, names and images that do
    not pair up, or an image that is not a finite ``[3, H, W]`` tensor in [0, 1] raise :class:`InputError` naming
    the file and what is wrong.
    """
    out = Path(out_dir)
    path = out / TENSORS
    if not path.is_file():
        raise InputError(f"{out} holds no {TENSORS}: not written by save_adversarial")
    try:
        data = torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001  (a damaged pickle raises anything: UnpicklingError, KeyError, ...)
        raise InputError(f"{path}: not a readable {TENSORS} ({type(e).__name__})") from None
    names, images = (data.get("names"), data.get("images")) if isinstance(data, dict) else (None, None)
    if not isinstance(names, list) or not isinstance(images, list) or len(names) != len(images):
        raise InputError(f"{path}: not written by save_adversarial (it needs lists 'names' and 'images' of one "
                         "length)")
    _check_names([str(n) for n in names], len(images))
    for name, img in zip(names, images, strict=True):
        if not isinstance(img, Tensor) or img.dim() != 3 or img.shape[0] != 3 or not img.is_floating_point():
            raise InputError(f"{path}: image {name!r} is not a float [3, H, W] tensor")
        if not bool(torch.isfinite(img).all()) or img.numel() == 0 or img.min() < 0 or img.max() > 1:
            raise InputError(f"{path}: image {name!r} is empty, not finite or outside [0, 1]")
    side: dict[str, Any] = {}
    if (out / SIDECAR).is_file():
        try:
            side = json.loads((out / SIDECAR).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
            raise InputError(f"{out / SIDECAR}: not a readable sidecar ({type(e).__name__})") from None
        if not isinstance(side, dict):
            raise InputError(f"{out / SIDECAR}: not a readable sidecar (a JSON object was expected)")
    return dict(zip(names, images, strict=True)), side
