"""Exactly invertible image transforms for the K-way defense (paper B, "A training-free defense framework
for robust learned image compression"): the dihedral group (flips, 90° rotations, transposes) and circular shifts.

Each acts on ``[..., H, W]``, is a pixel permutation, and ``inverse(forward(x)) == x`` bit for bit. Every one
keeps the image's frame (the output is H×W, so the codec's padding to its multiple costs nothing more) — the 90°
rotations and transposes only on square images (``swaps_hw``; :meth:`Invertible.keeps_frame` says where a
transform may be used). Names: ``identity``, ``hflip``, ``vflip``, ``rot90``, ``rot180``, ``rot270``,
``transpose``, ``antitranspose``, ``shift:DY,DX`` (circular roll).

Removed, because they grow the frame and so can never win the defense's RD choice: ``pad:DY,DX`` (replicate-padded
shifts: a 128² image became 131², padded by the codec to 192² and coded at ~1.9× the bits) and ``up2`` (2× nearest
upscaling: 4× the pixels coded). A rescaling that keeps the frame (down then up) is not invertible.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from liccs.core.errors import InputError

Fn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Invertible:
    """A pixel permutation and its inverse; ``swaps_hw``: it maps ``h × w`` to ``w × h``."""

    name: str
    forward: Fn
    inverse: Fn
    swaps_hw: bool = False

    def __call__(self, x: Tensor) -> Tensor:
        """The transformed image, ``forward(x)``."""
        return self.forward(x)

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        """The size ``(H', W')`` of the transformed image of an ``h × w`` one."""
        return (w, h) if self.swaps_hw else (h, w)

    def keeps_frame(self, h: int, w: int) -> bool:
        """Whether the transformed ``h × w`` image is ``h × w`` again (the defense uses it only there)."""
        return self.out_size(h, w) == (h, w)


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
_REMOVED = re.compile(r"^(pad:\d+,\d+|up2)$")

#: The default pool: the 7 non-identity dihedral transforms and 8 circular shifts of 1–2 pixels.
DEFAULT_TRANSFORMS: tuple[str, ...] = (
    "hflip", "vflip", "rot90", "rot180", "rot270", "transpose", "antitranspose",
    "shift:0,1", "shift:1,0", "shift:1,1", "shift:0,-1", "shift:-1,0", "shift:-1,-1", "shift:2,2", "shift:-2,-2",
)


def shift(dy: int, dx: int) -> Invertible:
    """Circular shift by (dy, dx) pixels (``torch.roll``); its inverse rolls back."""
    return Invertible(f"shift:{dy},{dx}", lambda x: torch.roll(x, (dy, dx), (-2, -1)),
                      lambda x: torch.roll(x, (-dy, -dx), (-2, -1)))


def get_transform(name: str | Invertible) -> Invertible:
    """A transform by name (see the module docstring); unknown names list the valid forms."""
    if isinstance(name, Invertible):
        return name
    if name in _DIHEDRAL:
        return _DIHEDRAL[name]
    m = _SHIFT.match(name.replace(" ", ""))
    if m:
        return shift(int(m[1]), int(m[2]))
    if _REMOVED.match(name.replace(" ", "")):
        raise InputError(f"transform {name!r} was removed: it grows the frame the codec must code (module "
                         f"liccs.papers.b.transforms); valid: {', '.join(_DIHEDRAL)}, shift:DY,DX")
    raise InputError(f"unknown transform {name!r}; valid: {', '.join(_DIHEDRAL)}, shift:DY,DX")


def get_transforms(names: Sequence[str | Invertible]) -> list[Invertible]:
    """Transforms by name, refusing duplicates."""
    out = [get_transform(n) for n in names]
    seen = [t.name for t in out]
    if len(set(seen)) != len(seen):
        raise InputError(f"transform set repeats an entry: {seen}")
    return out
