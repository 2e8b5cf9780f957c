"""Scale-table indexes for the Gaussian conditional, in one vectorized search.

CompressAI's ``GaussianConditional.build_indexes`` loops over its scale table (64 entries by default), one
full pass over the scales each; on a Kodak image that is about as slow as a hyperprior's ``h_s``. This
computes the same integers with one ``torch.bucketize``: CompressAI's index is ``(L − 1) − #{j < L − 1 :
scale ≤ t_j}``, which is ``#{j < L − 1 : t_j < scale}``, bucketize's left-side count. Bit-identical, so the
bitstreams do not change (tested against CompressAI's, and by the deployed-codec benchmark).
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from liccs.engines.bitstream import crc32


def build_indexes(gc: nn.Module, scales: Tensor) -> Tensor:
    """``gc.build_indexes(scales)`` (int32, same shape), computed in one pass."""
    scales = gc.lower_bound_scale(scales)
    table = gc.scale_table[:-1].to(scales.dtype)
    return torch.bucketize(scales, table, right=False, out_int32=True)


#: Repair search: the scales nearest a table boundary that may sit on the other side on another engine, and how
#: many of them may have crossed at once. ``C(24, ≤3)`` = 2324 checksums tried at most: a wrong match has
#: probability ≤ 2324 / 2³² ≈ 5e-7 per repaired image.
REPAIR_CANDIDATES, REPAIR_MAX_FLIPS = 24, 3


def repair_indexes(gc: nn.Module, scales: Tensor, indexes: Tensor, want_crc: int,
                   candidates: int = REPAIR_CANDIDATES, max_flips: int = REPAIR_MAX_FLIPS) -> tuple[Tensor, int] | None:
    """The indexes the encoder used, when this decoder's ``scales`` (one image) put a few of them across a table
    boundary: (indexes whose crc32 is ``want_crc``, how many moved), or None when no such set is found.

    Two engines' ``h_s`` differ in the last bits; a scale within that distance of a boundary of the scale table
    lands in the neighbouring bucket on one of them, and the stream's index checksum refuses the decode. The
    crossed scales are among the few nearest a boundary, so the ``candidates`` nearest are moved to the other
    side, up to ``max_flips`` at a time, until the checksum matches. crc32 is affine over GF(2), so each
    candidate's effect on it is computed once and the subsets cost one XOR each. The bitstream is unchanged.
    """
    # distances from the raw scales: one clamped to the lower bound from far below cannot cross the first boundary
    s = scales.reshape(-1).double().clamp(min=1e-30)
    table = gc.scale_table[:-1].double()
    idx = indexes.reshape(-1).to(torch.int64)
    top = len(table)  # indexes run 0 … top
    lower = torch.where(idx > 0, torch.log(s / table[(idx - 1).clamp(min=0)]), torch.full_like(s, float("inf")))
    upper = torch.where(idx < top, torch.log(table[idx.clamp(max=top - 1)] / s), torch.full_like(s, float("inf")))
    dist = torch.minimum(lower.abs(), upper.abs())
    alt = torch.where(lower.abs() < upper.abs(), idx - 1, idx + 1)
    pick = torch.argsort(dist)[:candidates].tolist()
    old = idx.to(torch.int32).numpy().tobytes()
    c_old = crc32(old)
    c_zero = crc32(bytes(len(old)))
    delta = []
    for p in pick:  # crc32(D) ^ crc32(0): the linear part of crc32 for a change D at element p alone
        d = bytearray(len(old))
        d[4 * p: 4 * p + 4] = (int(idx[p]) ^ int(alt[p])).to_bytes(4, "little", signed=True)
        delta.append(crc32(bytes(d)) ^ c_zero)
    for k in range(1, max_flips + 1):
        for subset in itertools.combinations(range(len(pick)), k):
            c = c_old
            for j in subset:
                c ^= delta[j]
            if c == want_crc:
                fixed = idx.clone()
                for j in subset:
                    fixed[pick[j]] = alt[pick[j]]
                return fixed.to(torch.int32).reshape(indexes.shape), k
    return None
