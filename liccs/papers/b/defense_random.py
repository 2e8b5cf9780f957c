"""The randomized K-way defense of paper B ("A training-free defense framework for robust learned image
compression"): for each input image and each request, K−1 candidate transforms are drawn at random from a
family, the identity is always candidate 0, each candidate is encoded, the lowest RD loss

    ``L_k = R_k + λ · 255² · MSE(T_k⁻¹(x̂_k), x)``   (``R_k`` in bpp, header included)

is kept (ties: the earlier candidate, so the identity wins ties) and its index *in the family* is written in a
fixed-length header of ``⌈log2 |family|⌉`` bits, counted in the bpp. The decoder reads the header and needs no
seed. The family (:func:`transform_family`): the 7 non-identity dihedral transforms and the circular shifts
``shift:DY,DX`` for ``0 ≤ DY, DX ≤ max_shift`` (not both 0): 23 with the identity at ``max_shift = 3``, a 5-bit
header. Every transform is an exact pixel permutation that keeps the image's frame (H×W in, H×W out), so no
candidate pays for padding the codec would add; the 90° rotations and transposes keep it on square images only,
and are drawn only there (:meth:`RandomKWayDefense.draw`). Images are padded to the codec's multiple after the
transform and cropped back (:class:`~liccs.papers.b.defense.KWayDefense` does the same), the image size being side
information.

The family changed (2026-12): it held replicate-padded shifts ``pad:DY,DX`` and 2× upscaling ``up2``, which grow
the frame (a padded 128² image became 131², coded as 192² at ~1.9× the bits; ``up2`` codes 4× the pixels), so the
defense never chose them and they only took the K slots; they are gone (a rescaling that keeps the frame is not
invertible), and a header index now refers to this smaller family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from liccs.core.errors import InputError
from liccs.papers.b.defense import RATES, KWayDefense, KWayEncoding, KWayResult
from liccs.papers.b.transforms import Invertible, get_transform, shift

DIHEDRAL = ("hflip", "vflip", "rot90", "rot180", "rot270", "transpose", "antitranspose")


def transform_family(max_shift: int = 3, circular: bool = True) -> list[Invertible]:
    """The defense's family, identity first: the dihedral transforms, then circular shifts up to ``max_shift``."""
    if not isinstance(max_shift, int) or max_shift < 0:
        raise InputError(f"max_shift must be an integer ≥ 0, got {max_shift!r}")
    shifts = [(dy, dx) for dy in range(max_shift + 1) for dx in range(max_shift + 1) if (dy, dx) != (0, 0)]
    out = [get_transform("identity"), *(get_transform(n) for n in DIHEDRAL)]
    return out + ([shift(dy, dx) for dy, dx in shifts] if circular else [])


@dataclass
class Scoring:
    """Every candidate of a request: family indices ``[B, K]``, payload bits ``[B, K]`` (no header), MSE
    ``[B, K]`` against the encoder's input, reconstructions ``[K]`` of ``[B, 3, H, W]`` in the input's frame,
    strings ``[K][B]`` and latent shapes ``[K][B]``."""

    index: Tensor
    bits: Tensor
    mse: Tensor
    x_hat: list[Tensor]
    strings: list[list[list[bytes]]]
    shapes: list[list[Any]]
    pixels: int


class RandomKWayDefense(KWayDefense):
    """Per-input random K-way defense (paper B). Same ``encode``/``decode``/:class:`KWayResult` contract as
    :class:`KWayDefense`; ``encode(x, seed=...)`` takes the request seed (default: ``seed`` + a request count).

    Args:
        codec: any object with CompressAI's compress/decompress contract (PyTorch or deployed).
        k: candidates per image, identity included (1 ≤ k ≤ |family|).
        family: the transforms (identity first); default :func:`transform_family`.
        lmbda, rate, seed, pad_multiple: as for :class:`KWayDefense`.
    """

    def __init__(self, codec: Any, k: int = 4, *, family: list[Invertible] | None = None,
                 lmbda: float | None = None, rate: str = "bytes", seed: int = 0, pad_multiple: int = 64) -> None:
        fam = family if family is not None else transform_family()
        if not fam or fam[0].name != "identity" or len({t.name for t in fam}) != len(fam):
            raise InputError("the family must start with the identity and not repeat a transform")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(fam):
            raise InputError(f"k must be an integer in [1, {len(fam)}] (the family's size), got {k!r}")
        if rate not in RATES:
            raise InputError(f"rate must be one of {RATES}, got {rate!r}")
        super().__init__(codec, 1, transforms=[], lmbda=lmbda, rate=rate, seed=seed, pad_multiple=pad_multiple)
        self.k, self.family, self.pool = k, list(fam), list(fam[1:])
        self.candidates = self.family  # the decoder's table: header value → transform
        self.header_bits = math.ceil(math.log2(len(fam))) if len(fam) > 1 else 0
        self.requests = 0

    def describe(self) -> dict[str, Any]:
        """As :meth:`KWayDefense.describe`, with the family (the candidates are drawn per image)."""
        return {**super().describe(), "defense": "random-k-way", "family": [t.name for t in self.family],
                "family_size": len(self.family)}

    def eligible(self, hw: tuple[int, int]) -> list[int]:
        """Family indices (identity excluded) of the transforms that keep an ``hw`` frame."""
        return [i for i, t in enumerate(self.family) if i > 0 and t.keeps_frame(*hw)]

    def draw(self, batch: int, seed: int, hw: tuple[int, int] | None = None) -> Tensor:
        """Family indices ``[B, K]``: 0 then K−1 distinct non-identity transforms per image, from ``seed``;
        ``hw``: the images' size, which limits the draw to the :meth:`eligible` ones (``None``: the whole family,
        the same draws as a square size)."""
        pool = torch.tensor(self.eligible(hw) if hw is not None else range(1, len(self.family)), dtype=torch.long)
        if len(pool) < self.k - 1:
            raise InputError(f"k = {self.k} needs {self.k - 1} transforms that keep the {hw[0]}×{hw[1]} frame "
                             f"(90° rotations need a square image); the family has {len(pool)}")
        gen = torch.Generator().manual_seed(int(seed))
        zero = torch.zeros(1, dtype=torch.long)
        rows = [torch.cat([zero, pool[torch.randperm(len(pool), generator=gen)[: self.k - 1]]]) for _ in range(batch)]
        return torch.stack(rows)

    @torch.no_grad()
    def score(self, x: Tensor, seed: int | None = None) -> Scoring:
        """Encode and decode every drawn candidate of every image (images sharing a transform go together)."""
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise InputError(f"expected float images [B, 3, H, W], got {getattr(x, 'shape', type(x))}")
        if seed is None:
            seed, self.requests = self.seed + self.requests, self.requests + 1
        b, k = x.shape[0], self.k
        index = self.draw(b, seed, (int(x.shape[-2]), int(x.shape[-1])))
        bits = torch.zeros(b, k, dtype=torch.int64)
        mse = torch.zeros(b, k, dtype=torch.float64)
        x_hat = [torch.empty_like(x) for _ in range(k)]
        strings: list[list[Any]] = [[None] * b for _ in range(k)]
        shapes: list[list[Any]] = [[None] * b for _ in range(k)]
        pixels = int(x.shape[-2]) * int(x.shape[-1])
        for f in sorted(set(index.flatten().tolist())):
            where = (index == f).nonzero().tolist()  # (image, slot) pairs
            imgs = [i for i, _ in where]
            xi = x[imgs]
            if self.rate_mode == "likelihood":
                _, rec, _, _ = self._score(xi, self.family[f])
                st, sh, _ = self._compress(self.family[f](xi))
                sh = [sh] * len(imgs)
            else:
                _, rec, st, sh0 = self._score(xi, self.family[f])
                sh = [sh0] * len(imgs)
            for n, (i, j) in enumerate(where):
                x_hat[j][i] = rec[n]
                strings[j][i], shapes[j][i] = st[n], sh[n]
                bits[i, j] = 8 * sum(len(s) for s in st[n])
                mse[i, j] = (rec[n] - x[i]).pow(2).mean().double()
        return Scoring(index, bits, mse, x_hat, strings, shapes, pixels)

    def select(self, s: Scoring, mse: Tensor | None = None) -> tuple[list[int], Tensor, Tensor]:
        """(chosen slot per image, rate bpp ``[B, K]``, RD loss ``[B, K]``); ``mse`` replaces the scoring's
        (the oracle scores against the clean image). The first minimum wins: the identity wins ties."""
        rate = (s.bits + self.header_bits).double() / s.pixels
        rd = rate + self.lmbda * 255.0**2 * (s.mse if mse is None else mse)
        return rd.argmin(1).tolist(), rate, rd

    def result(self, s: Scoring, chosen: list[int], rate: Tensor, rd: Tensor, size: tuple[int, int]) -> KWayResult:
        """The encoding of ``chosen`` (slots) and the decoder's output of it."""
        b = len(chosen)
        enc = KWayEncoding([s.strings[c][i] for i, c in enumerate(chosen)],
                           [s.shapes[c][i] for i, c in enumerate(chosen)],
                           [int(s.index[i, c]) for i, c in enumerate(chosen)], [size] * b, self.header_bits)
        bpp = torch.tensor(enc.bits(), dtype=torch.float64) / s.pixels
        names = [self.family[f].name for f in s.index[0].tolist()]
        return KWayResult(self.decode(enc), bpp, chosen, rate, s.mse, rd, enc, names)

    @torch.no_grad()
    def encode(self, x: Tensor, seed: int | None = None) -> KWayResult:  # type: ignore[override]
        """Encode ``[B, 3, H, W]`` in [0, 1]; ``result.names`` are image 0's candidates (``candidate_names``
        gives every image's)."""
        s = self.score(x, seed)
        chosen, rate, rd = self.select(s)
        return self.result(s, chosen, rate, rd, (int(x.shape[-2]), int(x.shape[-1])))

    def candidate_names(self, s: Scoring) -> list[list[str]]:
        """Every image's K candidate transform names, from a scoring's drawn indices."""
        return [[self.family[f].name for f in row] for row in s.index.tolist()]

    def roundtrip(self, x: Tensor, seed: int | None = None) -> KWayResult:  # type: ignore[override]
        """Encode and decode (:meth:`encode` with the request ``seed``): ``result.x_hat`` is the decoder's output."""
        return self.encode(x, seed)
