"""How each codec family's latents become strings and back on a deployed codec (:class:`Coder`, one per family in
:data:`CODERS`): the entropy bottleneck alone (factorized prior, Ballé et al., ICLR 2018); ``z`` by the bottleneck
and ``y`` by the Gaussian conditional on ``h_s``'s scales (and means: Minnen et al., NeurIPS 2018); or ``y`` by
CompressAI's sequential loop around the context model (Minnen et al., joint autoregressive).

:class:`~liccs.engines.codec.DeployedCodec` asks its family's coder and branches on nothing; a new family adds its
coder here under the family's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

import torch
from torch import Tensor

from liccs.core import pad_to_multiple
from liccs.core.errors import InputError
from liccs.engines.autoregressive import compress_ar, decompress_ar
from liccs.engines.base import Runner
from liccs.engines.bitstream import crc32, frame
from liccs.engines.coder import (
    check_capacity,
    decode_bottleneck,
    decode_symbols,
    encode_bottleneck,
    encode_symbols,
    min_symbol_bits,
)
from liccs.engines.indexes import build_indexes, repair_indexes
from liccs.engines.limits import geometry
from liccs.families import CodecFamily, medians
from liccs.pipeline import PAD_MULTIPLE


class Deployed(Protocol):
    """What a coder uses of :class:`liccs.engines.codec.DeployedCodec`."""

    codec: Any
    family: CodecFamily
    name: str
    runners: Mapping[str, Runner]
    repaired: int

    def run_stage(self, stage: str, name: str, x: Tensor) -> Tensor:
        """One stage's runner on ``x``."""

    def hyper(self, z_hat: Tensor) -> Tensor:
        """``h_s`` on ``ẑ``, one image at a time."""

    def mismatch(self, bad: bool, on_mismatch: str, i: int, what: str) -> None:
        """Raise where image ``i`` decodes on other tables (``on_mismatch='raise'``)."""

Frames = list[tuple[bytes, tuple[int, ...]]]


def index_check(indexes: Tensor) -> int:
    """The checksum of one image's scale indexes (its stream carries it; the decoder's must match)."""
    return crc32(indexes.to(torch.int32).contiguous().numpy().tobytes())


class Coder:
    """The entropy bottleneck alone: ``y`` coded per channel (the factorized prior)."""

    def encode(self, dc: Deployed, y: Tensor) -> tuple[list[list[bytes]], tuple[int, ...]]:
        """(framed strings per latent, the last latent's (h, w)) of ``y`` = g_a's output."""
        return [[frame(s) for s in encode_bottleneck(dc.codec.entropy_bottleneck, y)]], tuple(y.shape[-2:])

    def decode(self, dc: Deployed, parsed: list[Frames], shape: tuple[int, ...],
               on_mismatch: str) -> tuple[Tensor, list[bool]]:
        """(ŷ, whether each image decoded on its encoder's tables) of the parsed strings."""
        eb = dc.codec.entropy_bottleneck
        return decode_bottleneck(eb, [p for p, _ in parsed[0]], shape), [True] * len(parsed[0])

    def profile_calls(self, codec: Any, d: Deployed, x: Tensor,
                      compressai: bool = False) -> dict[str, Callable[[], Any]]:
        """The CPU coder's steps a profile times on the latents of images ``x`` (through the PyTorch ``codec``), by name
        (``entropy_encode``, ``entropy_decode``, and ``build_indexes`` where there are table indexes): the
        deployed codec's coder, or CompressAI's own ``compress``/``decompress`` (``compressai``)."""
        eb = codec.entropy_bottleneck
        eb_enc, eb_dec = _bottleneck_calls(eb, compressai)
        y = codec.g_a(pad_to_multiple(x, PAD_MULTIPLE)[0])
        strings = eb.compress(y)
        return {"entropy_encode": lambda: eb_enc(y), "entropy_decode": lambda: eb_dec(strings, y.shape[-2:])}

    def expected_checks(self, latent: str, y_rows: int) -> int:
        """How many entropy-table checks the frame of ``latent`` carries as this coder writes it (an image of
        ``y_rows`` rows of ``y``): none, the bottleneck's tables are the model's."""
        return 0

    def check_capacity(self, dc: Deployed, parsed: list[Frames], shape: tuple[int, ...]) -> None:
        """Refuse a string too short for the symbols of ``shape`` (the bottleneck's latent: one table per
        channel)."""
        eb_bits = min_symbol_bits(dc.codec.entropy_bottleneck)
        positions = shape[0] * shape[1]
        for i, (payload, _) in enumerate(parsed[-1]):
            check_capacity(payload, float(eb_bits.sum()) * positions, eb_bits.numel() * positions,
                           f"{dc.name}: latent {dc.family.latents[-1]} of image {i}")


class HyperpriorCoder(Coder):
    """``z`` by the bottleneck, ``y`` by the Gaussian conditional on ``h_s(ẑ)``'s parameters, one table index
    checksum per image (scale hyperprior and mean-scale)."""

    def encode(self, dc: Deployed, y: Tensor) -> tuple[list[list[bytes]], tuple[int, ...]]:
        """([y strings, z strings], z's (h, w)): ``h_a``, the bottleneck, then ``y`` on ``h_s(ẑ)``'s tables."""
        eb = dc.codec.entropy_bottleneck
        z = dc.run_stage("h_a", "y", dc.family.hyper_input(y))
        z_strings = encode_bottleneck(eb, z)
        # what eb.decompress(z_strings) returns, without decoding: the coder is lossless on these integers
        med = medians(eb)
        z_hat = eb.dequantize(eb.quantize(z, "symbols", med), med)
        return [self.encode_y(dc, y, dc.hyper(z_hat)), [frame(s) for s in z_strings]], tuple(z.shape[-2:])

    def decode(self, dc: Deployed, parsed: list[Frames], shape: tuple[int, ...],
               on_mismatch: str) -> tuple[Tensor, list[bool]]:
        """ẑ from the bottleneck's strings, then ŷ on ``h_s(ẑ)``'s tables."""
        z_hat = decode_bottleneck(dc.codec.entropy_bottleneck, [p for p, _ in parsed[1]], shape)
        return self.decode_y(dc, parsed[0], dc.hyper(z_hat), on_mismatch)

    def _latents(self, codec: Any, d: Deployed, x: Tensor) -> tuple[Tensor, Tensor, list[bytes], Tensor]:
        """(y, z, z's strings, h_s's parameters) of images ``x`` through the PyTorch ``codec``."""
        eb = codec.entropy_bottleneck
        y = codec.g_a(pad_to_multiple(x, PAD_MULTIPLE)[0])
        z = codec.h_a(d.family.hyper_input(y))
        z_strings = eb.compress(z)
        return y, z, z_strings, codec.h_s(eb.decompress(z_strings, z.shape[-2:]))

    def profile_calls(self, codec: Any, d: Deployed, x: Tensor,
                      compressai: bool = False) -> dict[str, Callable[[], Any]]:
        """As :meth:`Coder.profile_calls`, with the scales' table indexes (computed once by the encoder and once by
        the decoder) as their own step."""
        gc, eb = codec.gaussian_conditional, codec.entropy_bottleneck
        eb_enc, eb_dec = _bottleneck_calls(eb, compressai)
        y, z, z_strings, params = self._latents(codec, d, x)
        scales, means = d.family.split_params(params)
        indexes = build_indexes(gc, scales)
        y_strings = gc.compress(y, indexes, means=means)
        gc_enc = (lambda v, i, m: gc.compress(v, i, means=m)) if compressai else partial(encode_symbols, gc)
        gc_dec = (lambda s, i, m: gc.decompress(s, i, means=m)) if compressai else partial(decode_symbols, gc)
        return {"build_indexes": lambda: gc.build_indexes(scales) if compressai else build_indexes(gc, scales),
                "entropy_encode": lambda: (eb_enc(z), gc_enc(y, indexes, means)),
                "entropy_decode": lambda: (eb_dec(z_strings, z.shape[-2:]), gc_dec(y_strings, indexes, means))}

    def expected_checks(self, latent: str, y_rows: int) -> int:
        """One check of the Gaussian's tables on ``y``'s frame; none on ``z``'s."""
        return 1 if latent == "y" else 0

    def check_capacity(self, dc: Deployed, parsed: list[Frames], shape: tuple[int, ...]) -> None:
        """The bottleneck's latent as :meth:`Coder.check_capacity`, and ``y`` at least its cheapest table's bits."""
        super().check_capacity(dc, parsed, shape)
        geom = geometry(dc.codec)
        r = geom.z_stride // geom.y_stride  # type: ignore[operator]
        n = geom.y_channels * shape[0] * shape[1] * r * r
        cheapest = float(min_symbol_bits(dc.codec.gaussian_conditional).min())
        for i, (payload, _) in enumerate(parsed[0]):
            check_capacity(payload, cheapest * n, n, f"{dc.name}: latent y of image {i}")

    def encode_y(self, dc: Deployed, y: Tensor, params: Tensor) -> list[bytes]:
        """Framed ``y`` strings, each with its scale indexes' checksum."""
        gc = dc.codec.gaussian_conditional
        scales, means = dc.family.split_params(params)
        indexes = build_indexes(gc, scales)
        strings = encode_symbols(gc, y, indexes, means)
        return [frame(s, [index_check(indexes[i])]) for i, s in enumerate(strings)]

    def decode_y(self, dc: Deployed, frames: Frames, params: Tensor,
                 on_mismatch: str) -> tuple[Tensor, list[bool]]:
        """ŷ of the ``y`` frames on the tables of ``params``; an image whose indexes' checksum differs from its
        stream's is repaired where a few scales sit across a table boundary, otherwise a mismatch."""
        gc = dc.codec.gaussian_conditional
        scales, means = dc.family.split_params(params)
        indexes = build_indexes(gc, scales)
        payloads, match = [], []
        for i, (payload, checks) in enumerate(frames):
            ok = bool(checks) and checks[0] == index_check(indexes[i])
            if not ok and checks:  # a few scales on the other side of a table boundary: find them by the checksum
                fixed = repair_indexes(gc, scales[i], indexes[i], checks[0])
                if fixed is not None:
                    indexes[i], ok = fixed[0], True
                    dc.repaired += 1
            dc.mismatch(not ok, on_mismatch, i, "the scale indexes")
            check_capacity(payload, float(min_symbol_bits(gc)[indexes[i].long()].sum()), indexes[i].numel(),
                           f"{dc.name}: latent y of image {i}")
            payloads.append(payload)  # decode_symbols pads it with zeros: a decode on other tables stays in its buffer
            match.append(ok)
        return decode_symbols(gc, payloads, indexes, means), match


class SequentialCoder(HyperpriorCoder):
    """``y`` by CompressAI's sequential loop around the ``context_step``/``entropy_parameters`` runners, one table
    checksum per latent row (:mod:`.autoregressive`)."""

    def expected_checks(self, latent: str, y_rows: int) -> int:
        """A check per row of ``y`` (the loop codes a row at a time); none on ``z``'s frame."""
        return y_rows if latent == "y" else 0

    def profile_calls(self, codec: Any, d: Deployed, x: Tensor,
                      compressai: bool = False) -> dict[str, Callable[[], Any]]:
        """As :meth:`Coder.profile_calls`: ``z`` by the bottleneck (CompressAI's with ``compressai``) and ``y`` by
        the sequential loop on the deployed runners (CompressAI has no other for the context model)."""
        gc, eb = codec.gaussian_conditional, codec.entropy_bottleneck
        eb_enc, eb_dec = _bottleneck_calls(eb, compressai)
        y, z, z_strings, params = self._latents(codec, d, x)
        cs, ep = d.runners["context_step"], d.runners["entropy_parameters"]
        coded = [compress_ar(gc, cs, ep, y[i:i + 1], params[i:i + 1]) for i in range(len(y))]

        def enc() -> Any:
            return eb_enc(z), [compress_ar(gc, cs, ep, y[i:i + 1], params[i:i + 1]) for i in range(len(y))]

        def dec() -> Any:
            eb_dec(z_strings, z.shape[-2:])
            return [decompress_ar(gc, cs, ep, s, params[i:i + 1], codec.M, tuple(c))
                    for i, (s, c) in enumerate(coded)]
        return {"entropy_encode": enc, "entropy_decode": dec}

    def encode_y(self, dc: Deployed, y: Tensor, params: Tensor) -> list[bytes]:
        """Framed ``y`` strings, each with one table checksum per latent row."""
        gc = dc.codec.gaussian_conditional
        coded = [compress_ar(gc, dc.runners["context_step"], dc.runners["entropy_parameters"], y[i:i + 1],
                             params[i:i + 1]) for i in range(y.shape[0])]
        return [frame(s, checks) for s, checks in coded]

    def decode_y(self, dc: Deployed, frames: Frames, params: Tensor,
                 on_mismatch: str) -> tuple[Tensor, list[bool]]:
        """ŷ row by row; a row whose tables' checksum differs is a mismatch (the loop stops there to raise)."""
        gc, ys, match = dc.codec.gaussian_conditional, [], []
        for i, (payload, checks) in enumerate(frames):
            y, bad = decompress_ar(gc, dc.runners["context_step"], dc.runners["entropy_parameters"], payload,
                                   params[i:i + 1], dc.codec.M, checks, on_mismatch == "raise")
            dc.mismatch(bad is not None, on_mismatch, i, f"latent row {bad}")
            ys.append(y)
            match.append(bad is None)
        return torch.cat(ys), match


def _bottleneck_calls(eb: Any, compressai: bool) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(encode, decode) of the entropy bottleneck: CompressAI's own, or the deployed codec's."""
    if compressai:
        return eb.compress, eb.decompress
    return partial(encode_bottleneck, eb), partial(decode_bottleneck, eb)


#: Each family's coder, by the family's name (:data:`liccs.families.FAMILIES`).
CODERS: dict[str, Coder] = {"factorized": Coder(), "scale-hyperprior": HyperpriorCoder(),
                            "mean-scale": HyperpriorCoder(), "autoregressive": SequentialCoder()}


def coder_for(family: CodecFamily) -> Coder:
    """The coder of ``family``; a family without one is named with those that have one."""
    try:
        return CODERS[family.name]
    except KeyError:
        raise InputError(f"codec family {family.name!r} has no coder; families with one: "
                         f"{', '.join(CODERS)}") from None
