"""CompressAI's entropy coding, with the tables converted once and the symbols converted by numpy.

``EntropyModel.decompress`` turns each string's decoded symbols (a Python list from the rANS decoder) into a
tensor with ``torch.tensor(list)``: on a Kodak image's ``y`` (295k symbols) that conversion took 35 ms of a 50 ms
decode here; ``np.fromiter`` takes 11. Both ``compress`` and ``decompress`` also convert the model's CDF tables to
Python lists on every call (18 ``tolist`` calls per round trip of a hyperprior codec: 5 ms of a 52 ms round trip of
the mini codec at 256²); :func:`encode_symbols` and :func:`decode_symbols` convert them once per table tensor
(:func:`coder_tables`) and the symbols and indexes through numpy. They call the same coder with the same integers,
so their strings and tensors equal CompressAI's ``compress``/``decompress`` bit for bit (tested); bitstreams do not
change.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from liccs.errors import InputError

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


def decode_symbols(model: nn.Module, strings: Sequence[bytes], indexes: Tensor, means: Tensor | None = None) -> Tensor:
    """``model.decompress(strings, indexes, means=means)`` for a CompressAI entropy model (float32 output)."""
    cdf, lengths, offsets = coder_tables(model)
    out = torch.empty(indexes.shape, dtype=model._quantized_cdf.dtype)
    for i, s in enumerate(strings):
        values = model.entropy_coder.decode_with_indexes(s, _int_list(indexes[i]), cdf, lengths, offsets)
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
