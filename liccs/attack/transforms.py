"""Exactly invertible image transforms for the K-way defense: the dihedral group (flips, 90° rotations,
transposes) and small circular shifts.

Each acts on ``[..., H, W]`` and permutes pixels only, so ``inverse(forward(x)) == x`` bit for bit.
The 90° rotations and transposes swap H and W (``swaps_hw``). Names: ``identity``, ``hflip``, ``vflip``,
``rot90``, ``rot180``, ``rot270``, ``transpose``, ``antitranspose``, ``shift:DY,DX`` (circular roll).
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

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)


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
    raise InputError(f"unknown transform {name!r}; valid: {', '.join(_DIHEDRAL)}, shift:DY,DX")


def get_transforms(names: Sequence[str | Invertible]) -> list[Invertible]:
    """Transforms by name, refusing duplicates."""
    out = [get_transform(n) for n in names]
    seen = [t.name for t in out]
    if len(set(seen)) != len(seen):
        raise InputError(f"transform set repeats an entry: {seen}")
    return out
