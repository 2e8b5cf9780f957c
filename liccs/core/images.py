"""Image geometry and the one [0, 1] check every consumer of images uses.

Images are float tensors ``[..., 3, H, W]`` in [0, 1]. Codecs pad to a multiple of their downsampling
(:func:`pad_to_multiple`, undone by :func:`crop_to`); classifiers resize the shorter side and centre-crop
(:func:`resize_center_crop`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from liccs.core.errors import InputError


def value_bounds(t: Tensor) -> tuple[float, float]:
    """(min, max) of a non-empty ``t`` in one pass; both are NaN when ``t`` holds a NaN."""
    lo, hi = torch.aminmax(t.detach())
    return float(lo), float(hi)


def check_range(x: Tensor, name: str = "images", bounds: tuple[float, float] = (0.0, 1.0)) -> None:
    """Raise :class:`InputError` naming ``name`` unless every value of ``x`` lies in ``bounds`` (NaN fails)."""
    if not x.numel():
        return
    lo, hi = value_bounds(x)
    if not (bounds[0] <= lo and hi <= bounds[1]):  # False for NaN too

        def show(v: float) -> str:  # enough digits that a value a hair past a bound does not print as the bound
            short = f"{v:.4g}"
            return f"{v:.9g}" if short in (f"{bounds[0]:.4g}", f"{bounds[1]:.4g}") else short

        raise InputError(f"{name} must lie in [{bounds[0]:g}, {bounds[1]:g}]; got min {show(lo)}, max {show(hi)}"
                         + (" (it holds NaN)" if lo != lo else ""))


def check_images(x: object, name: str = "images", dtype: torch.dtype | None = torch.float32) -> None:
    """Raise unless ``x`` is a float tensor ``[B, 3, H, W]`` (of ``dtype``, when given) with values in [0, 1]."""
    ok = isinstance(x, Tensor) and x.dim() == 4 and x.shape[1] == 3 and x.is_floating_point()
    if not ok or (dtype is not None and x.dtype != dtype):
        want = str(dtype).removeprefix("torch.") if dtype is not None else "float"
        raise InputError(f"{name} must be a {want} tensor [B, 3, H, W], got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    check_range(x, name)


def pad_to_multiple(x: Tensor, multiple: int = 64, mode: str = "replicate") -> tuple[Tensor, tuple[int, int]]:
    """Pad ``[..., H, W]`` at the bottom and right to multiples of ``multiple``; returns (padded, (H, W))."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    squeeze = x.dim() == 3
    y = x.unsqueeze(0) if squeeze else x
    y = F.pad(y.float() if not y.is_floating_point() else y, (0, pw, 0, ph), mode=mode)
    if not x.is_floating_point():
        y = y.to(x.dtype)
    return (y.squeeze(0) if squeeze else y), (h, w)


def crop_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Undo :func:`pad_to_multiple`: the top-left ``H × W`` of ``x``."""
    return x[..., : size[0], : size[1]]


def resize_center_crop(x: Tensor, resize: int, crop: int, interpolation: str = "bilinear") -> Tensor:
    """Resize the shorter side to ``resize``, then centre-crop ``crop × crop``.

    ``bilinear``/``bicubic`` are antialiased (torchvision's default); ``nearest`` and ``area`` are the exact
    pair the CIFAR-scale mini zoo uses: a 2× nearest upsample followed by ``area`` (2×2 mean) gives back
    the original pixels, so the codec is the only thing between the image and the classifier.
    """
    h, w = x.shape[-2:]
    scale = resize / min(h, w)
    nh, nw = max(crop, round(h * scale)), max(crop, round(w * scale))
    if (nh, nw) != (h, w):
        if interpolation in ("nearest", "area"):
            x = F.interpolate(x, size=(nh, nw), mode=interpolation)
        else:
            x = F.interpolate(x, size=(nh, nw), mode=interpolation, antialias=True, align_corners=False)
    top, left = (nh - crop) // 2, (nw - crop) // 2
    return x[..., top : top + crop, left : left + crop]
