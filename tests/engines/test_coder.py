"""liccs's entropy decode equals CompressAI's ``decompress`` bit for bit (numpy converts the symbols instead of
``torch.tensor(list)``), for the Gaussian conditional with and without means and for the entropy bottleneck."""

from __future__ import annotations

import pytest
import torch

from liccs.engines.coder import decode_bottleneck, decode_symbols
from liccs.export.graphs import stage_feeds
from liccs.zoo import load_codec
from tests.engines.helpers import stress_checkpoint


@pytest.mark.parametrize("name", ["bmshj2018-factorized@q1", "bmshj2018-hyperprior@q1", "mbt2018-mean@q1"])
def test_decode_equals_compressai(name, kodak_crop, tmp_path):
    model = load_codec(name, stress_checkpoint(name, tmp_path / "stress.pt"))  # latents over many tables
    with torch.no_grad():
        x = torch.cat([kodak_crop, kodak_crop.flip(-1)])
        out = model.compress(stage_feeds(model, x)["g_a"]["x"])
        shape = out["shape"]
        if not hasattr(model, "gaussian_conditional"):
            assert torch.equal(decode_bottleneck(model.entropy_bottleneck, out["strings"][0], shape),
                               model.entropy_bottleneck.decompress(out["strings"][0], shape))
            return
        eb, gc = model.entropy_bottleneck, model.gaussian_conditional
        z_hat = eb.decompress(out["strings"][1], shape)
        assert torch.equal(decode_bottleneck(eb, out["strings"][1], shape), z_hat)
        params = model.h_s(z_hat)
        scales, means = params.chunk(2, 1) if params.shape[1] != model.M else (params, None)
        indexes = gc.build_indexes(scales)
        ref = gc.decompress(out["strings"][0], indexes, means=means)
        got = decode_symbols(gc, out["strings"][0], indexes, means)
        assert got.dtype == ref.dtype and torch.equal(got, ref)
