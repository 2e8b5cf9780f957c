"""K-way compression defense (paper B: "A training-free defense framework for robust learned image
compression").

The encoder tries the identity and K−1 invertible transforms (:mod:`liccs.papers.b.transforms`), encodes
each, scores each by the rate-distortion loss against the original image,

    ``L_t = R_t + λ · 255² · MSE(T_t⁻¹(x̂_t), x)``,   ``R_t`` in bits per pixel,

keeps the lowest (ties: the earlier candidate, so the identity wins ties), and writes the chosen index in
a header of ``⌈log2 K⌉`` bits per image, counted in the bpp. The decoder decodes and applies ``T⁻¹``.
``R_t`` is the real size of the codec's ``compress()`` output (``rate="bytes"``) or the likelihood estimate
of a CompressAI model's hard-rounded forward (``rate="likelihood"``; only the chosen candidate is then
entropy coded). λ defaults to CompressAI's training λ of the codec's quality (MSE models), the same scale.

The K−1 transforms are drawn once, without replacement, from the pool with ``seed``, so encoder and
decoder share the candidate list. Every transform keeps the image's frame (H×W in, H×W out: no growth the codec
would pay for); a candidate that would not at this size (a 90° rotation or transpose of a non-square image) is
not tried, and a header naming one is refused. Images are padded to a multiple of 64 after the transform and
cropped back; the image size is side information, as for
:func:`liccs.pipeline.codec_roundtrip`. Any object with CompressAI's contract is accepted:
``compress(x) -> {"strings", "shape"}`` and ``decompress(strings, shape) -> {"x_hat"}``; with K=1 the
output is the plain codec's, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from liccs.core import crop_to, pad_to_multiple
from liccs.core.errors import InputError
from liccs.families import mse_lambda
from liccs.papers.b.transforms import (
    DEFAULT_TRANSFORMS,
    Invertible,
    get_transform,
    get_transforms,
)
from liccs.pipeline import codec_forward

RATES = ("bytes", "likelihood")


@dataclass
class KWayEncoding:
    """What the defended encoder writes per image: the codec's strings and latent shape, the header."""

    strings: list[list[bytes]]
    shapes: list[Any]
    header: list[int]
    sizes: list[tuple[int, int]]
    header_bits: int

    def bits(self) -> list[int]:
        """Bits per image: the codec's bytes ×8 plus the header."""
        return [8 * sum(len(s) for s in st) + self.header_bits for st in self.strings]


@dataclass
class KWayResult:
    """A defended round trip: reconstructions, bits, and every candidate's rate, MSE and RD loss ``[B, K]``."""

    x_hat: Tensor
    bpp: Tensor
    chosen: list[int]
    rate: Tensor
    mse: Tensor
    rd: Tensor
    encoding: KWayEncoding
    names: list[str] = field(default_factory=list)


def codec_name(codec: Any) -> str:
    """``ARCH@qN`` of a codec, or of the PyTorch model a deployed codec wraps (``.codec``), else its class."""
    for obj in (codec, getattr(codec, "codec", None)):
        if getattr(obj, "liccs_name", None):
            return str(obj.liccs_name)
    return type(codec).__name__


def _lambda_of(codec: Any) -> float:
    name = codec_name(codec)
    if (lmbda := mse_lambda(name)) is not None:
        return lmbda
    raise InputError(f"no default λ for codec {name!r}: pass lmbda explicitly")


class KWayDefense:
    """Wrap a codec with the K-way transform search.

    Args:
        codec: any object with CompressAI's compress/decompress contract (PyTorch or deployed).
        k: number of candidates, identity included (1 ≤ k ≤ 1 + pool size).
        transforms: the pool of non-identity transforms (names or :class:`Invertible`).
        lmbda: λ of the RD loss; default CompressAI's λ for the codec's quality.
        rate: ``"bytes"`` (real compressed size) or ``"likelihood"`` (estimate; CompressAI models only).
        seed: draws the K−1 candidates from the pool.
    """

    def __init__(self, codec: Any, k: int = 2, *, transforms: Sequence[str | Invertible] = DEFAULT_TRANSFORMS,
                 lmbda: float | None = None, rate: str = "bytes", seed: int = 0, pad_multiple: int = 64) -> None:
        if not (hasattr(codec, "compress") and hasattr(codec, "decompress")):
            raise InputError(f"{type(codec).__name__} lacks compress()/decompress(): not a codec")
        pool = [t for t in get_transforms(transforms) if t.name != "identity"]
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(pool) + 1:
            raise InputError(f"k must be an integer in [1, {len(pool) + 1}] (identity + the pool), got {k!r}")
        if rate not in RATES:
            raise InputError(f"rate must be one of {RATES}, got {rate!r}")
        self.codec, self.k, self.rate_mode, self.seed, self.pad_multiple = codec, k, rate, seed, pad_multiple
        self.lmbda = float(lmbda) if lmbda is not None else _lambda_of(codec)
        if not math.isfinite(self.lmbda) or self.lmbda < 0:
            raise InputError(f"lmbda must be a finite number ≥ 0, got {lmbda}")
        perm = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed)).tolist()
        self.pool = pool
        self.candidates: list[Invertible] = [get_transform("identity")] + [pool[i] for i in perm[: k - 1]]
        self.header_bits = math.ceil(math.log2(k)) if k > 1 else 0

    def describe(self) -> dict[str, Any]:
        """What a result records about the defense: K, the candidates, λ, the rate mode, the seed, header bits, the
        codec."""
        return {"defense": "k-way", "k": self.k, "candidates": [t.name for t in self.candidates],
                "lmbda": self.lmbda, "rate": self.rate_mode, "seed": self.seed, "header_bits": self.header_bits,
                "codec": codec_name(self.codec), "codec_class": type(self.codec).__name__}

    # --- the codec contract on one batch of same-shaped images ------------------------------------

    def _compress(self, xt: Tensor) -> tuple[list[list[bytes]], Any, Any]:
        """(strings per image, latent shape, the codec's raw strings) of ``xt`` padded to the multiple."""
        out = self.codec.compress(pad_to_multiple(xt, self.pad_multiple)[0])
        return [[s[i] for s in out["strings"]] for i in range(xt.shape[0])], out["shape"], out["strings"]

    def _decompress(self, strings: Any, shape: Any, size: tuple[int, int]) -> Tensor:
        return crop_to(torch.as_tensor(self.codec.decompress(strings, shape)["x_hat"]), size)

    def _score(self, x: Tensor, t: Invertible) -> tuple[Tensor, Tensor, list[list[bytes]] | None, Any]:
        """(rate bpp [B], reconstruction in x's frame, strings or None, shape) of candidate ``t``."""
        xt = t(x)
        size = (int(xt.shape[-2]), int(xt.shape[-1]))
        pixels = size[0] * size[1]
        if self.rate_mode == "likelihood":
            est = codec_forward(self.codec, pad_to_multiple(xt, self.pad_multiple)[0], "hard")
            rate = est.bpp(pixels) + self.header_bits / pixels
            return rate, t.inverse(crop_to(est.x_hat.clamp(0, 1), size)), None, None
        strings, shape, raw = self._compress(xt)
        rate = torch.tensor([(8 * sum(len(b) for b in st) + self.header_bits) / pixels for st in strings])
        return rate.to(x.device), t.inverse(self._decompress(raw, shape, size)).to(x.device), strings, shape

    @torch.no_grad()
    def encode(self, x: Tensor) -> KWayResult:
        """Encode a batch ``[B, 3, H, W]`` in [0, 1] (any H, W); the result holds the decoder's output too."""
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise InputError(f"expected float images [B, 3, H, W], got {getattr(x, 'shape', type(x))}")
        b, size = x.shape[0], (int(x.shape[-2]), int(x.shape[-1]))
        inf = torch.full((b,), math.inf, dtype=torch.float64, device=x.device)
        scored = [self._score(x, t) if t.keeps_frame(*size) else (inf, None, None, None) for t in self.candidates]
        rate = torch.stack([sc[0].to(torch.float64) for sc in scored], 1)
        mse = torch.stack([inf if sc[1] is None else (sc[1] - x).pow(2).flatten(1).mean(1).to(torch.float64)
                           for sc in scored], 1)
        rd = rate + self.lmbda * 255.0**2 * mse  # a candidate that would leave the frame: +inf, never chosen
        chosen = rd.argmin(1).tolist()  # the first minimum: the identity wins ties
        strings: list[list[bytes] | None] = [None] * b
        shapes: list[Any] = [None] * b
        for j in sorted(set(chosen)):
            group = [i for i in range(b) if chosen[i] == j]
            if scored[j][2] is not None:
                st, sh = [scored[j][2][i] for i in group], scored[j][3]
            else:  # rate estimated: entropy-code the chosen candidate only
                st, sh, _ = self._compress(self.candidates[j](x[group]))
            for n, i in enumerate(group):
                strings[i], shapes[i] = st[n], sh
        enc = KWayEncoding(strings, shapes, chosen, [size] * b, self.header_bits)
        bpp = torch.tensor(enc.bits(), dtype=torch.float64) / (size[0] * size[1])
        return KWayResult(self.decode(enc), bpp, chosen, rate, mse, rd, enc, [t.name for t in self.candidates])

    @torch.no_grad()
    def check_encoding(self, enc: KWayEncoding) -> None:
        """Refuse an encoding this decoder cannot have written, naming the image and the field: lists of other
        lengths, a header index that is not an integer in range, or a size that is not two positive integers."""
        n = len(enc.header)
        for part in ("strings", "shapes", "sizes"):
            if len(getattr(enc, part)) != n:
                raise InputError(f"K-way encoding: {len(getattr(enc, part))} {part} for {n} header entries")
        for i, (idx, size) in enumerate(zip(enc.header, enc.sizes, strict=True)):
            if isinstance(idx, bool) or not isinstance(idx, int):
                raise InputError(f"K-way encoding, image {i}: header index {idx!r} is not an integer")
            if not 0 <= idx < len(self.candidates):
                raise InputError(f"K-way encoding, image {i}: header index {idx} is outside the "
                                 f"{len(self.candidates)} candidates")
            if (len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
                raise InputError(f"K-way encoding, image {i}: size {size!r} is not two positive integers")
        per_image = {len(st) for st in enc.strings}
        if len(per_image) > 1:
            raise InputError(f"K-way encoding: images hold different numbers of strings ({sorted(per_image)})")

    def decode(self, enc: KWayEncoding) -> Tensor:
        """Decode each image with its header's transform and invert it (images sharing one are decoded together);
        the encoding is checked first (:meth:`check_encoding`)."""
        self.check_encoding(enc)
        groups: dict[tuple[int, tuple[int, int], str], list[int]] = {}
        for i, (idx, size) in enumerate(zip(enc.header, enc.sizes, strict=True)):
            if not self.candidates[idx].keeps_frame(*size):
                raise InputError(f"header index {idx} ({self.candidates[idx].name}) does not keep the "
                                 f"{size[0]}×{size[1]} frame: no encoder writes it")
            groups.setdefault((idx, tuple(size), repr(enc.shapes[i])), []).append(i)
        out: list[Tensor | None] = [None] * len(enc.header)
        for (idx, (h, w), _), group in groups.items():
            t = self.candidates[idx]
            raw = [[enc.strings[i][lat] for i in group] for lat in range(len(enc.strings[group[0]]))]
            x_hat = t.inverse(self._decompress(raw, enc.shapes[group[0]], (h, w)))
            for n, i in enumerate(group):
                out[i] = x_hat[n : n + 1]
        return torch.cat(out)

    def roundtrip(self, x: Tensor) -> KWayResult:
        """Encode and decode: ``result.x_hat`` is the decoder's output from ``result.encoding`` alone."""
        return self.encode(x)
