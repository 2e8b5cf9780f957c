"""The vectorized scale-table indexes equal CompressAI's loop, including scales exactly on table entries."""

from __future__ import annotations

import pytest
import torch
from compressai.entropy_models import GaussianConditional
from compressai.models import MeanScaleHyperprior, ScaleHyperprior

from liccs.engines.indexes import build_indexes


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
