"""CompressAI's sequential coding loop of autoregressive models (mbt2018, cheng2020), around stage runners.

For each latent position (row by row) the ``context_step`` runner (the masked 5×5 context convolution
without padding) sees the window of already coded ``ŷ`` and the ``entropy_parameters`` runner turns it (with
``h_s``'s params there) into the Gaussian's scale and mean; the scale picks the entropy table. This is
CompressAI's ``_compress_ar``/``_decompress_ar``
with the two networks replaced by runners, so the strings are interchangeable with CompressAI's own.
One crc32 per latent row of the table indexes goes into the frame, so a decoder that drifts onto other
tables is caught at the end of the first row it damages.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from compressai.ans import BufferedRansEncoder, RansDecoder
from torch import Tensor

from liccs.engines.base import Runner
from liccs.engines.coder import coder_tables
from liccs.engines.indexes import build_indexes

KERNEL, PAD = 5, 2


@contextmanager
def single_thread() -> Iterator[None]:
    """One torch thread for the loop's tiny per-position ops: on a busy CPU, waking a second thread costs
    more than the op (measured here: a 5×5 context convolution took 35 ms with 2 threads, 1.8 ms with 1)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _gaussian(cp: Runner, ep: Runner, window: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
    """(scales, means) ``[1, M, 1, 1]`` at the centre of a 5×5 ``window`` of ŷ."""
    ctx = cp.infer({"y_window": window}, check=False)["ctx_params"].cpu()
    gp = ep.infer({"params_ctx": torch.cat((params, ctx), dim=1)}, check=False)["gaussian_params"].cpu()
    return gp.chunk(2, 1)


@torch.no_grad()
@single_thread()
def compress_ar(gc: torch.nn.Module, cp: Runner, ep: Runner, y: Tensor, params: Tensor) -> tuple[bytes, list[int]]:
    """Encode one image's ``y`` ``[1, M, H, W]``: (rANS string, crc32 of the table indexes per row)."""
    cdf, lengths, offsets = coder_tables(gc)
    height, width = y.shape[-2:]
    y_hat = F.pad(y, (PAD, PAD, PAD, PAD))
    symbols, indexes, checks = [], [], []
    for h in range(height):
        crc = 0
        for w in range(width):
            window = y_hat[:, :, h:h + KERNEL, w:w + KERNEL]
            scales, means = _gaussian(cp, ep, window, params[:, :, h:h + 1, w:w + 1])
            idx = build_indexes(gc, scales.flatten(1))
            y_q = gc.quantize(window[:, :, PAD, PAD], "symbols", means.flatten(1))
            y_hat[:, :, h + PAD, w + PAD] = y_q + means.flatten(1)
            symbols.extend(y_q.flatten().tolist())
            indexes.extend(idx.flatten().tolist())
            crc = zlib.crc32(idx.to(torch.int32).numpy().tobytes(), crc)
        checks.append(crc & 0xFFFFFFFF)
    encoder = BufferedRansEncoder()
    encoder.encode_with_indexes(symbols, indexes, cdf, lengths, offsets)
    return encoder.flush(), checks


@torch.no_grad()
@single_thread()
def decompress_ar(gc: torch.nn.Module, cp: Runner, ep: Runner, payload: bytes, params: Tensor, channels: int,
                  checks: tuple[int, ...] | None, stop_on_mismatch: bool = True) -> tuple[Tensor, int | None]:
    """Decode one image's ``ŷ`` ``[1, M, H, W]``: (ŷ, first latent row whose tables differ from the encoder's).

    With ``stop_on_mismatch`` the loop ends after that row (ŷ is then incomplete). The stream is padded
    with zeros, so a decode on drifted tables stays inside its buffer.
    """
    cdf, lengths, offsets = coder_tables(gc)
    height, width = params.shape[-2:]
    y_hat = torch.zeros(1, channels, height + 2 * PAD, width + 2 * PAD)
    decoder = RansDecoder()
    decoder.set_stream(payload + bytes(4 * channels * height * width + 16 * len(payload) + 64))
    bad_row = None
    for h in range(height):
        crc = 0
        for w in range(width):
            window = y_hat[:, :, h:h + KERNEL, w:w + KERNEL]
            scales, means = _gaussian(cp, ep, window, params[:, :, h:h + 1, w:w + 1])
            idx = build_indexes(gc, scales)
            crc = zlib.crc32(idx.to(torch.int32).numpy().tobytes(), crc)
            rv = decoder.decode_stream(idx.flatten().tolist(), cdf, lengths, offsets)
            y_hat[:, :, h + PAD:h + PAD + 1, w + PAD:w + PAD + 1] = gc.dequantize(
                torch.tensor(rv, dtype=torch.float32).reshape(1, -1, 1, 1), means)
        if checks is not None and bad_row is None and (h >= len(checks) or checks[h] != crc & 0xFFFFFFFF):
            bad_row = h
            if stop_on_mismatch:
                break
    return y_hat[:, :, PAD:-PAD, PAD:-PAD], bad_row
