"""liccs's entropy coding equals CompressAI's ``compress``/``decompress`` bit for bit (tables converted once per
table tensor, symbols through numpy), for the Gaussian conditional with and without means and for the entropy
bottleneck, and stays equal after ``update()`` gives the model new tables."""

from __future__ import annotations

import pytest
import torch

from liccs.core.errors import InputError
from liccs.engines.coder import decode_bottleneck, decode_symbols, encode_bottleneck, encode_symbols
from liccs.export.graphs import stage_feeds
from liccs.families import family_of
from liccs.zoo import load_codec
from tests.engines.helpers import stress_checkpoint


@pytest.mark.parametrize("name", ["bmshj2018-factorized@q1", "bmshj2018-hyperprior@q1", "mbt2018-mean@q1"])
def test_coding_equals_compressai(name, kodak_crop, tmp_path):
    model = load_codec(name, stress_checkpoint(name, tmp_path / "stress.pt"))  # latents over many tables
    family = family_of(model)
    eb = model.entropy_bottleneck
    with torch.no_grad():
        x = stage_feeds(model, torch.cat([kodak_crop, kodak_crop.flip(-1)]))["g_a"]["x"]
        out = model.compress(x)
        shape, y = out["shape"], model.g_a(x)
        if not family.hyperprior:
            assert encode_bottleneck(eb, y) == out["strings"][0]
            assert torch.equal(decode_bottleneck(eb, out["strings"][0], shape), eb.decompress(out["strings"][0], shape))
            return
        gc, z = model.gaussian_conditional, model.h_a(family.hyper_input(y))
        assert encode_bottleneck(eb, z) == out["strings"][1]
        z_hat = eb.decompress(out["strings"][1], shape)
        assert torch.equal(decode_bottleneck(eb, out["strings"][1], shape), z_hat)
        scales, means = family.split_params(model.h_s(z_hat))
        indexes = gc.build_indexes(scales)
        assert encode_symbols(gc, y, indexes, means) == out["strings"][0]
        ref = gc.decompress(out["strings"][0], indexes, means=means)
        got = decode_symbols(gc, out["strings"][0], indexes, means)
        assert got.dtype == ref.dtype and torch.equal(got, ref)
        # new tables (update() assigns new tensors): the cached lists are rebuilt, not reused
        for p in eb.parameters():
            p.mul_(1.5)
        eb.update(force=True)
        strings = eb.compress(z)
        assert strings != out["strings"][1] and encode_bottleneck(eb, z) == strings


def test_mismatched_indexes_are_refused_naming_both_shapes():
    gc = load_codec("bmshj2018-hyperprior@q1", "random").gaussian_conditional
    y = torch.zeros(1, 8, 4, 4)
    with pytest.raises(InputError, match=r"latents \(1, 8, 4, 4\) and indexes \(1, 8, 4, 3\)"):
        encode_symbols(gc, y, torch.zeros(1, 8, 4, 3, dtype=torch.int32))
