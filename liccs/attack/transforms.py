"""Exactly invertible image transforms for the K-way defense (paper B, "A training-free defense framework
for robust learned image compression"): the dihedral group (flips, 90° rotations, transposes), small circular
shifts, padded shifts and 2× nearest upscaling.

Each acts on ``[..., H, W]`` and ``inverse(forward(x)) == x`` bit for bit. The 90° rotations and transposes
swap H and W (``swaps_hw``); ``pad:DY,DX`` replicate-pads DY rows on top and DX columns on the left (inverted
by cropping them off); ``up2`` repeats every pixel 2×2 (inverted by 2×2 average pooling, summed pairwise so
that four equal values give that value back exactly). :meth:`Invertible.out_size` gives the transformed size.
Names: ``identity``, ``hflip``, ``vflip``, ``rot90``, ``rot180``, ``rot270``, ``transpose``,
``antitranspose``, ``shift:DY,DX`` (circular roll), ``pad:DY,DX`` (DY, DX ≥ 0), ``up2``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from liccs.errors import InputError

Fn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Invertible:
    """A pixel permutation and its inverse."""

    name: str
    forward: Fn
    inverse: Fn
    swaps_hw: bool = False
    grow: tuple[int, int, int] = (1, 0, 0)  #: (scale, extra rows, extra cols) of the output size

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        """The size ``(H', W')`` of the transformed image of an ``h × w`` one."""
        s, dy, dx = self.grow
        h2, w2 = (w, h) if self.swaps_hw else (h, w)
        return s * h2 + dy, s * w2 + dx


def _t(x: Tensor) -> Tensor:
    return x.transpose(-2, -1)


def _anti(x: Tensor) -> Tensor:
    return torch.flip(x, (-2, -1)).transpose(-2, -1)


_DIHEDRAL: dict[str, Invertible] = {
    "identity": Invertible("identity", lambda x: x, lambda x: x),
    "hflip": Invertible("hflip", lambda x: torch.flip(x, (-1,)), lambda x: torch.flip(x, (-1,))),
    "vflip": Invertible("vflip", lambda x: torch.flip(x, (-2,)), lambda x: torch.flip(x, (-2,))),
    "rot90": Invertible("rot90", lambda x: torch.rot90(x, 1, (-2, -1)), lambda x: torch.rot90(x, -1, (-2, -1)), True),
    "rot180": Invertible("rot180", lambda x: torch.rot90(x, 2, (-2, -1)), lambda x: torch.rot90(x, -2, (-2, -1))),
    "rot270": Invertible("rot270", lambda x: torch.rot90(x, 3, (-2, -1)), lambda x: torch.rot90(x, -3, (-2, -1)), True),
    "transpose": Invertible("transpose", _t, _t, True),
    "antitranspose": Invertible("antitranspose", _anti, _anti, True),
}

_SHIFT = re.compile(r"^shift:(-?\d+),(-?\d+)$")
_PAD = re.compile(r"^pad:(\d+),(\d+)$")

#: The default pool: the 7 non-identity dihedral transforms and 8 circular shifts of 1–2 pixels.
DEFAULT_TRANSFORMS: tuple[str, ...] = (
    "hflip", "vflip", "rot90", "rot180", "rot270", "transpose", "antitranspose",
    "shift:0,1", "shift:1,0", "shift:1,1", "shift:0,-1", "shift:-1,0", "shift:-1,-1", "shift:2,2", "shift:-2,-2",
)


def shift(dy: int, dx: int) -> Invertible:
    """Circular shift by (dy, dx) pixels (``torch.roll``); its inverse rolls back."""
    return Invertible(f"shift:{dy},{dx}", lambda x: torch.roll(x, (dy, dx), (-2, -1)),
                      lambda x: torch.roll(x, (-dy, -dx), (-2, -1)))


def pad_shift(dy: int, dx: int) -> Invertible:
    """Replicate-pad ``dy`` rows on top and ``dx`` columns on the left (a translation whose inverse is a crop)."""
    if dy < 0 or dx < 0:
        raise InputError(f"pad:{dy},{dx}: the padding must be ≥ 0")

    def fwd(x: Tensor) -> Tensor:
        y = torch.cat([x[..., :1, :].expand(*x.shape[:-2], dy, x.shape[-1]), x], -2) if dy else x
        return torch.cat([y[..., :1].expand(*y.shape[:-1], dx), y], -1) if dx else y

    return Invertible(f"pad:{dy},{dx}", fwd, lambda x: x[..., dy:, dx:], grow=(1, dy, dx))


def _up2(x: Tensor) -> Tensor:
    return x.repeat_interleave(2, -2).repeat_interleave(2, -1)


def _pool2(x: Tensor) -> Tensor:
    """2×2 mean as ``((a + b) + (c + d)) · 0.25``: exact for four equal values (what :func:`_up2` writes)."""
    return ((x[..., 0::2, 0::2] + x[..., 0::2, 1::2]) + (x[..., 1::2, 0::2] + x[..., 1::2, 1::2])) * 0.25


UP2 = Invertible("up2", _up2, _pool2, grow=(2, 0, 0))


def get_transform(name: str | Invertible) -> Invertible:
    """A transform by name (see the module docstring); unknown names list the valid forms."""
    if isinstance(name, Invertible):
        return name
    if name in _DIHEDRAL:
        return _DIHEDRAL[name]
    m = _SHIFT.match(name.replace(" ", ""))
    if m:
        return shift(int(m[1]), int(m[2]))
    m = _PAD.match(name.replace(" ", ""))
    if m:
        return pad_shift(int(m[1]), int(m[2]))
    if name == "up2":
        return UP2
    raise InputError(f"unknown transform {name!r}; valid: {', '.join(_DIHEDRAL)}, shift:DY,DX, pad:DY,DX, up2")


def get_transforms(names: Sequence[str | Invertible]) -> list[Invertible]:
    """Transforms by name, refusing duplicates."""
    out = [get_transform(n) for n in names]
    seen = [t.name for t in out]
    if len(set(seen)) != len(seen):
        raise InputError(f"transform set repeats an entry: {seen}")
    return out
