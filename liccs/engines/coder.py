"""CompressAI's entropy coding, with the tables converted once and the symbols converted by numpy.

``EntropyModel.decompress`` turns each string's decoded symbols (a Python list from the rANS decoder) into a
tensor with ``torch.tensor(list)``: on a Kodak image's ``y`` (295k symbols) that conversion took 35 ms of a 50 ms
decode here; ``np.fromiter`` takes 11. Both ``compress`` and ``decompress`` also convert the model's CDF tables to
Python lists on every call (18 ``tolist`` calls per round trip of a hyperprior codec: 5 ms of a 52 ms round trip of
the mini codec at 256²); :func:`encode_symbols` and :func:`decode_symbols` convert them once per table tensor
(:func:`coder_tables`) and the symbols and indexes through numpy. They call the same coder with the same integers,
so their strings and tensors equal CompressAI's ``compress``/``decompress`` bit for bit (tested); bitstreams do not
change.

A string from outside is not trusted: :func:`check_capacity` refuses one too short to hold its symbols before the
decoder runs (:func:`min_stream_bytes` says why the bound never refuses a stream CompressAI's coder wrote), and
:func:`decode_symbols` hands the coder the string followed by zeros, so that a forged stream (its frame checksum
recomputed) makes it read zeros, never past its buffer.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from liccs.core.errors import InputError
from liccs.engines.bitstream import BitstreamError

#: entropy model → (its table tensors, their versions, the lists built from them)
_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def coder_tables(model: nn.Module) -> tuple[list, list, list]:
    """(CDFs, CDF lengths, offsets) of a CompressAI entropy model as its rANS coder takes them (Python lists).

    Built once per table tensor: the cache holds the tensors themselves and their version counters, so a
    ``model.update()`` (which assigns new tensors) or an in-place change rebuilds the lists."""
    model._check_cdf_size()
    model._check_cdf_length()
    model._check_offsets_size()
    tensors = (model._quantized_cdf, model._cdf_length, model._offset)
    versions = tuple(t._version for t in tensors)
    hit = _TABLES.get(model)
    if hit is not None and all(a is b for a, b in zip(hit[0], tensors)) and hit[1] == versions:
        return hit[2]
    lists = (model._quantized_cdf.tolist(), model._cdf_length.reshape(-1).int().tolist(),
             model._offset.reshape(-1).int().tolist())
    _TABLES[model] = (tensors, versions, lists)
    return lists


def _int_list(t: Tensor) -> list[int]:
    return t.reshape(-1).int().numpy().tolist()


def encode_symbols(model: nn.Module, inputs: Tensor, indexes: Tensor, means: Tensor | None = None) -> list[bytes]:
    """``model.compress(inputs, indexes, means=means)`` for a CompressAI entropy model: one string per image."""
    if inputs.dim() < 2 or inputs.size() != indexes.size():
        raise InputError(f"entropy coding needs latents of at least 2 dimensions and table indexes of the same "
                         f"shape; got latents {tuple(inputs.shape)} and indexes {tuple(indexes.shape)}")
    symbols = model.quantize(inputs, "symbols", means)
    cdf, lengths, offsets = coder_tables(model)
    return [model.entropy_coder.encode_with_indexes(_int_list(symbols[i]), _int_list(indexes[i]), cdf, lengths,
                                                    offsets) for i in range(symbols.size(0))]


#: CompressAI's rANS (ryg_rans' Rans64: 16-bit tables, a 64-bit state in [2^31, 2^63), 32-bit words out) always
#: ends a stream with its state: 8 bytes.
RANS_PRECISION, RANS_FLUSH_BYTES = 16, 8


def min_symbol_bits(model: nn.Module) -> Tensor:
    """Per entropy table of ``model``, the fewest bits a symbol coded with it costs: ``16 − log2(f_max)``, with
    ``f_max`` the table's largest quantized frequency (of 2^16; every symbol has at least 1, so ``f_max < 2^16``)."""
    cdf, lengths = model._quantized_cdf.to(torch.int64), model._cdf_length.reshape(-1).to(torch.int64)
    freq = cdf[:, 1:] - cdf[:, :-1]
    valid = torch.arange(freq.shape[1], device=freq.device)[None] < (lengths[:, None] - 1)
    f_max = torch.where(valid, freq, torch.zeros_like(freq)).amax(1).clamp(1, 2**RANS_PRECISION - 1)
    return RANS_PRECISION - torch.log2(f_max.to(torch.float64))


def min_stream_bytes(bits: float) -> int:
    """The fewest bytes a string must have to hold symbols whose cheapest codes total ``bits``: half the ideal.

    Why no stream CompressAI's coder wrote is refused: its encoder starts from the state 2^31, coding a symbol of
    frequency ``f`` multiplies the state by at least ``(q·2^16 + f − 1) / (q·f + f − 1)`` with ``q ≥ 2^15``
    (the state is at least 2^31), which is ``2^16/f`` to within a factor ``1 − 2^-15``; each 32-bit word it
    writes divides the state by at most 2^32 (times ``1 + 2^-15``), and the final state (below 2^63) takes 8
    bytes. So a string of symbols costing ``B`` bits at least has at least ``4 + B·(1 − 2^-14)/8`` bytes, and
    never fewer than 8; this asks for ``max(8, ⌊B/16⌋)``, half of that (tested on strings of the cheapest
    symbols, the worst case). Bypass-coded values only add bits.
    """
    return max(RANS_FLUSH_BYTES, int(bits // 16))


def check_capacity(payload: bytes, bits: float, symbols: int, where: str) -> None:
    """Raise :class:`BitstreamError` naming ``where`` when ``payload`` is too short for ``symbols`` symbols whose
    cheapest codes total ``bits`` (:func:`min_stream_bytes`)."""
    need = min_stream_bytes(bits)
    if len(payload) < need:
        raise BitstreamError(f"{where}: {len(payload)} bytes cannot hold its {symbols:,} symbols (the entropy coder "
                             f"writes at least {need:,} bytes for them)")


def decode_symbols(model: nn.Module, strings: Sequence[bytes], indexes: Tensor, means: Tensor | None = None) -> Tensor:
    """``model.decompress(strings, indexes, means=means)`` for a CompressAI entropy model (float32 output).

    Each string is followed by zeros, so that a forged string (its frame checksum recomputed) makes the coder read
    zeros rather than past its buffer: 4 bytes per symbol (a symbol step reads at most one 32-bit word) and 16 per
    string byte (the bypass values that runs of ``1111`` in the string itself can announce: at most 15 per 4 bits,
    4 bits each); in zeros a bypass count ends at once. A string the encoder wrote is decoded before the zeros,
    so the output does not change."""
    cdf, lengths, offsets = coder_tables(model)
    out = torch.empty(indexes.shape, dtype=model._quantized_cdf.dtype)
    for i, s in enumerate(strings):
        padded = bytes(s) + bytes(4 * indexes[i].numel() + 16 * len(s) + 64)
        values = model.entropy_coder.decode_with_indexes(padded, _int_list(indexes[i]), cdf, lengths, offsets)
        out[i] = torch.from_numpy(np.fromiter(values, dtype=np.int32, count=len(values))).reshape(out[i].shape)
    return model.dequantize(out, means, torch.float)


def _bottleneck_means(eb: nn.Module, batch: int, size: Sequence[int]) -> Tensor:
    medians = eb._extend_ndims(eb._get_medians().detach(), len(size))
    return medians.expand(batch, *([-1] * (len(size) + 1)))


def encode_bottleneck(eb: nn.Module, x: Tensor) -> list[bytes]:
    """``eb.compress(x)`` for CompressAI's ``EntropyBottleneck`` (its medians as the means)."""
    indexes = eb._build_indexes(x.size())
    return encode_symbols(eb, x, indexes, _bottleneck_means(eb, x.size(0), x.shape[2:]))


def decode_bottleneck(eb: nn.Module, strings: Sequence[bytes], size: Sequence[int]) -> Tensor:
    """``eb.decompress(strings, size)`` for CompressAI's ``EntropyBottleneck`` (its medians as the means)."""
    indexes = eb._build_indexes((len(strings), eb._quantized_cdf.size(0), *size)).to(eb._quantized_cdf.device)
    return decode_symbols(eb, strings, indexes, _bottleneck_means(eb, len(strings), size))
