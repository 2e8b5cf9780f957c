"""The vectorized scale-table indexes equal CompressAI's loop, including scales exactly on table entries."""

from __future__ import annotations

import pytest
import torch
from compressai.entropy_models import GaussianConditional
from compressai.models import MeanScaleHyperprior, ScaleHyperprior
from compressai.models.google import get_scale_table

from liccs.engines.bitstream import crc32
from liccs.engines.indexes import build_indexes, repair_indexes


@pytest.mark.parametrize("model", [ScaleHyperprior, MeanScaleHyperprior])
def test_indexes_match_compressai(model: type) -> None:
    gc = model(8, 8).gaussian_conditional
    gc.update_scale_table(gc.scale_table if gc.scale_table.numel() else torch.exp(torch.linspace(-2.3, 3.2, 64)))
    table = gc.scale_table
    g = torch.Generator().manual_seed(0)
    scales = torch.cat([torch.rand(4, 8, 16, 16, generator=g).flatten() * 40 - 5,  # below, inside and above
                        table, table.nextafter(torch.tensor(0.0)), table.nextafter(torch.tensor(1e9)),
                        torch.tensor([0.0, -1.0, float("inf")])]).view(1, 1, 1, -1)
    want = gc.build_indexes(scales)
    got = build_indexes(gc, scales)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got, want)


def test_indexes_default_table() -> None:
    gc = GaussianConditional(None)
    from compressai.models.google import get_scale_table

    gc.update_scale_table(get_scale_table())
    scales = torch.rand(2, 3, 5, 7) * 100
    assert torch.equal(build_indexes(gc, scales), gc.build_indexes(scales))


def _crossed(scales: torch.Tensor, table: torch.Tensor, positions: list[int]) -> torch.Tensor:
    """``scales`` with the given positions put just across their nearest table boundary (another engine's last bits)."""
    out = scales.clone().reshape(-1)
    for p in positions:
        j = int(torch.argmin((torch.log(table[:-1]) - torch.log(out[p])).abs()))
        below = out[p] < table[j]
        out[p] = table[j] * (1 + 3e-7) if below else table[j] * (1 - 3e-7)
    return out.reshape(scales.shape)


@pytest.mark.parametrize("flips", [1, 2, 3])
def test_repair_finds_the_encoders_indexes_from_the_checksum(flips: int) -> None:
    """The encoder's scales sit a hair on one side of a boundary, the decoder's a hair on the other: the checksum
    finds which moved, and nothing else changes."""
    gc = ScaleHyperprior(8, 8).gaussian_conditional
    gc.update_scale_table(get_scale_table())
    table = gc.scale_table
    g = torch.Generator().manual_seed(1)
    scales = torch.exp(torch.rand(8, 12, 12, generator=g) * 5 - 2)
    near = [5, 300, 900][:flips]
    enc = _crossed(scales, table, near)  # on the boundaries' one side …
    dec = _crossed(enc, table, near)  # … and the other
    want, got = build_indexes(gc, enc), build_indexes(gc, dec)
    assert int((want != got).sum()) == flips
    fixed = repair_indexes(gc, dec, got, crc32(want.numpy().tobytes()))
    assert fixed is not None and fixed[1] == flips and torch.equal(fixed[0], want) and fixed[0].dtype == want.dtype


def test_repair_gives_up_when_many_scales_moved() -> None:
    gc = ScaleHyperprior(8, 8).gaussian_conditional
    gc.update_scale_table(get_scale_table())
    g = torch.Generator().manual_seed(2)
    scales = torch.exp(torch.rand(8, 12, 12, generator=g) * 5 - 2)
    want = build_indexes(gc, scales)
    moved = build_indexes(gc, scales * 1.05)  # 5%: a third of the scales change bucket
    assert int((want != moved).sum()) > 3
    assert repair_indexes(gc, scales * 1.05, moved, crc32(want.numpy().tobytes())) is None
