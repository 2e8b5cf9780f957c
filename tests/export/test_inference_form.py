"""Inference forms: GDN/GDN1/MaskedConv2d/LowerBound replaced by plain ops that compute the same thing."""

from __future__ import annotations

import pytest
import torch
from compressai.layers import GDN, GDN1, MaskedConv2d
from compressai.ops import LowerBound

from liccs.export.errors import ExportError
from liccs.export.graphs import codec_graphs
from liccs.export.inference import InferenceGDN, inference_form
from liccs.families import family_of
from liccs.zoo import CODECS
from tests.engines.helpers import codec


@pytest.mark.parametrize("layer", [GDN(8), GDN(8, inverse=True), GDN1(8), GDN1(8, inverse=True)],
                         ids=["gdn", "igdn", "gdn1", "igdn1"])
def test_gdn_inference_form_matches(layer):
    torch.manual_seed(0)
    with torch.no_grad():
        layer.gamma.add_(0.05 * torch.rand_like(layer.gamma))  # off-diagonal terms too
    x = torch.randn(2, 8, 5, 7)
    conv = inference_form(torch.nn.Sequential(layer))[0]
    assert isinstance(conv, InferenceGDN)
    torch.testing.assert_close(conv(x), layer(x), rtol=1e-6, atol=1e-7)


def test_masked_conv_inference_form_is_masked():
    torch.manual_seed(0)
    m = MaskedConv2d(4, 6, kernel_size=5, padding=2)
    with torch.no_grad():
        m.weight.normal_()  # unmasked weights: the inference form must mask them itself
    x = torch.randn(1, 4, 6, 6)
    ref = torch.nn.functional.conv2d(x, m.weight * m.mask, m.bias, padding=2)
    torch.testing.assert_close(inference_form(torch.nn.Sequential(m))[0](x), ref)


def test_unconvertible_layer_is_refused():
    class QReLU(torch.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ExportError, match="QReLU"):
        inference_form(torch.nn.Sequential(QReLU()))


@pytest.mark.parametrize("arch", CODECS.names())
def test_graphs_hold_no_training_layers(arch):
    """Every stage of every registered codec is free of GDN, MaskedConv2d and LowerBound, and equals the original."""
    c = codec(f"{arch}@q{min(CODECS.get(arch).qualities)}")
    graphs, skipped = codec_graphs(c, with_reconstruct=False)
    family = family_of(c)
    assert set(graphs) == set(family.stages)
    assert ("reconstruct" in skipped) == family.is_sequential
    for g in graphs.values():
        assert not [m for m in g.module.modules() if isinstance(m, (GDN, MaskedConv2d, LowerBound))], g.label
        x = g.example(image_hw=(64, 64), batch=1)[g.inputs[0].name]
        torch.testing.assert_close(g.module(x), g.reference(x), rtol=1e-5, atol=1e-6)
