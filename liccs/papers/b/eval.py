"""Paper B's evaluation images ("A training-free defense framework for robust learned image compression").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from liccs.config import RunConfig
from liccs.data import open_source, to_float


@dataclass
class Images:
    """The evaluation images, each ``[1, 3, H, W]`` in [0, 1] (centre crops, or whole images of mixed sizes)."""

    x: list[Tensor]
    names: list[str]

    def groups(self, batch_size: int) -> list[list[int]]:
        """Indices in batches of at most ``batch_size`` images of one size, in order."""
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, xi in enumerate(self.x):
            by_size.setdefault(tuple(xi.shape), []).append(i)
        return [idx[j:j + batch_size] for idx in by_size.values() for j in range(0, len(idx), batch_size)]

    def stack(self, idx: list[int]) -> Tensor:
        return torch.cat([self.x[i] for i in idx])


def centre_crop(x: Tensor, side: int) -> Tensor:
    """The centre ``side × side`` of ``x`` (no resizing); the whole image where it is smaller."""
    h, w = x.shape[-2:]
    sh, sw = min(side, h), min(side, w)
    top, left = (h - sh) // 2, (w - sw) // 2
    return x[..., top:top + sh, left:left + sw].contiguous()


def load_images(cfg: RunConfig) -> Images:
    """``data.images`` images of ``data.source`` (evenly spaced, as the run's own), centre-cropped to
    ``paper_b.crop`` at full resolution (``0``: whole images). The run's own images are at the classifier's
    geometry, which a codec-only experiment does not use."""
    source = open_source(cfg.data.source)
    n = min(cfg.data.images, len(source))
    idx = sorted({round(i * (len(source) - 1) / max(1, n - 1)) for i in range(n)}) if n < len(source) else range(n)
    xs, names = [], []
    for i in idx:
        s = source.load(i)
        x = to_float(s.image)[None] if s.image.dtype == torch.uint8 else s.image[None].float()
        xs.append(centre_crop(x, cfg.paper_b.crop) if cfg.paper_b.crop else x.contiguous())
        names.append(s.name)
    return Images(xs, names)
