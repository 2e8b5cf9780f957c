"""Input diversity (DI; Xie et al., "Improving transferability of adversarial examples with input
diversity", CVPR 2019), an option of the iterative attacks.

With probability ``prob`` per step, the whole batch is resized to ``r × r'`` (``r`` uniform in
``[H, ⌊ratio·H⌋)``, the width scaled alike), zero-padded at a random offset to
``⌊ratio·H⌋ × ⌊ratio·W⌋``, and resized back to ``H × W`` so that the codec and the classifier see their
usual geometry (as torchattacks' DI-FGSM does). Every draw is a Python int from a CPU generator: no device sync.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from liccs.core.errors import InputError


class InputDiversity:
    """The DI transform ``T(x; p)``: random resize and pad with probability ``prob``.

    Args:
        prob: probability of transforming at each step (Xie et al. use 0.5).
        ratio: the padded canvas over the image side (> 1; Xie et al.'s 330/299 ≈ 1.1).
    """

    def __init__(self, prob: float = 0.5, ratio: float = 1.1) -> None:
        if not 0.0 <= prob <= 1.0:
            raise InputError(f"input diversity probability must be in [0, 1], got {prob}")
        if not ratio > 1.0:
            raise InputError(f"input diversity ratio must be > 1, got {ratio}")
        self.prob = float(prob)
        self.ratio = float(ratio)

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """``x`` resized and padded at random with probability ``prob`` (one draw per batch from ``gen``), else
        ``x``."""
        if torch.rand((), generator=gen).item() >= self.prob:  # a CPU draw: no device sync
            return x
        h, w = x.shape[-2:]
        big_h, big_w = int(h * self.ratio), int(w * self.ratio)
        if big_h <= h or big_w <= w:
            return x
        rh = int(torch.randint(h, big_h, (), generator=gen))
        rw = max(w, min(big_w - 1, round(rh * w / h)))
        top = int(torch.randint(0, big_h - rh + 1, (), generator=gen))
        left = int(torch.randint(0, big_w - rw + 1, (), generator=gen))
        y = F.interpolate(x, size=(rh, rw), mode="nearest")
        y = F.pad(y, (left, big_w - rw - left, top, big_h - rh - top))
        return F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False, antialias=True)

    def describe(self) -> dict[str, Any]:
        """The transform's name, ``prob`` and ``ratio``."""
        return {"transform": "input-diversity", "prob": self.prob, "ratio": self.ratio}
