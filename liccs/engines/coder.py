"""CompressAI's entropy decoding, with the decoded symbols converted to a tensor by numpy.

``EntropyModel.decompress`` turns each string's decoded symbols (a Python list from the rANS decoder) into a
tensor with ``torch.tensor(list)``: on a Kodak image's ``y`` (295k symbols) that conversion took 35 ms of a 50 ms
decode here; ``np.fromiter`` takes 11. :func:`decode_symbols` calls the same decoder with the same tables and
dequantizes the same way, so its output equals ``decompress``'s bit for bit (tested); bitstreams do not change.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn


def decode_symbols(model: nn.Module, strings: Sequence[bytes], indexes: Tensor, means: Tensor | None = None) -> Tensor:
    """``model.decompress(strings, indexes, means=means)`` for a CompressAI entropy model (float32 output)."""
    model._check_cdf_size()
    model._check_cdf_length()
    model._check_offsets_size()
    cdf = model._quantized_cdf.tolist()
    lengths = model._cdf_length.reshape(-1).int().tolist()
    offsets = model._offset.reshape(-1).int().tolist()
    out = torch.empty(indexes.shape, dtype=model._quantized_cdf.dtype)
    for i, s in enumerate(strings):
        values = model.entropy_coder.decode_with_indexes(s, indexes[i].reshape(-1).int().tolist(), cdf, lengths,
                                                         offsets)
        out[i] = torch.from_numpy(np.fromiter(values, dtype=np.int32, count=len(values))).reshape(out[i].shape)
    return model.dequantize(out, means, torch.float)


def decode_bottleneck(eb: nn.Module, strings: Sequence[bytes], size: Sequence[int]) -> Tensor:
    """``eb.decompress(strings, size)`` for CompressAI's ``EntropyBottleneck`` (its medians as the means)."""
    indexes = eb._build_indexes((len(strings), eb._quantized_cdf.size(0), *size)).to(eb._quantized_cdf.device)
    medians = eb._extend_ndims(eb._get_medians().detach(), len(size))
    return decode_symbols(eb, strings, indexes, medians.expand(len(strings), *([-1] * (len(size) + 1))))
