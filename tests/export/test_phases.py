"""Transposed convolutions as ordinary ones (the four-phase split, the sub-pixel form of narrow layers): exact at
odd sizes, on every architecture, through ONNX, and the deployed codec's bitstreams unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from liccs.core.errors import InputError
from liccs.engines.bitstream import unframe
from liccs.engines.codec import DeployedCodec
from liccs.engines.factory import runner_for
from liccs.export.cache import ArtifactCache
from liccs.export.errors import ExportError
from liccs.export.graphs import codec_graphs
from liccs.export.phases import FourPhaseConvTranspose2d, SubPixelConvTranspose2d, split_transposed
from liccs.zoo import CODECS, load_codec
from tests.engines.helpers import codec, stress_checkpoint

ODD = [(1, 1), (3, 5), (7, 4)]
FORMS = {"four-phase": FourPhaseConvTranspose2d, "sub-pixel-output": SubPixelConvTranspose2d}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ArtifactCache(tmp_path_factory.mktemp("phases"))


@pytest.mark.parametrize("kernel,stride,padding,output_padding", [(5, 2, 2, 1), (3, 2, 1, 1), (4, 2, 1, 0),
                                                                   (6, 3, 2, 1)])
@pytest.mark.parametrize("hw", ODD)
@pytest.mark.parametrize("form", FORMS)
def test_split_equals_the_transposed_convolution(kernel, stride, padding, output_padding, hw, form) -> None:
    torch.manual_seed(0)
    m = nn.ConvTranspose2d(6, 5, kernel, stride, padding, output_padding)
    x = torch.randn(2, 6, *hw)
    with torch.no_grad():
        ref, got = m(x), FORMS[form](m)(x)
    assert got.shape == ref.shape == (2, 5, stride * hw[0], stride * hw[1])
    assert (got - ref).abs().max().item() <= 1e-5


def test_a_convolution_it_cannot_split_is_refused_or_left() -> None:
    odd = nn.ConvTranspose2d(4, 4, 3, 2, 0)  # output 2H + 1: not stride × input
    with pytest.raises(ExportError, match="cannot be split.*output size"):
        FourPhaseConvTranspose2d(odd)
    with pytest.raises(ExportError, match="cannot be split.*output size"):
        SubPixelConvTranspose2d(odd)
    net, n = split_transposed(nn.Sequential(odd, nn.ConvTranspose2d(4, 4, 5, 2, 2, 1)))
    assert n == 1 and isinstance(net[0], nn.ConvTranspose2d) and isinstance(net[1], FourPhaseConvTranspose2d)


def test_sub_pixel_output_rewrites_only_narrow_layers() -> None:
    """Wide transposed convolutions stay (the sub-pixel form does 44% more multiply-adds); a layer of at most 4
    output channels (an image's) becomes one convolution of 4·C_out outputs over a 3×3 window."""
    net = nn.Sequential(nn.ConvTranspose2d(16, 8, 5, 2, 2, 1), nn.ReLU(), nn.ConvTranspose2d(8, 3, 5, 2, 2, 1))
    out, n = split_transposed(net, "sub-pixel-output")
    assert n == 1 and isinstance(out[0], nn.ConvTranspose2d) and isinstance(out[2], SubPixelConvTranspose2d)
    assert tuple(out[2].weight.shape) == (12, 8, 3, 3)
    with pytest.raises(ExportError, match="rewrites nothing.*four-phase, sub-pixel-output"):
        split_transposed(net, "native")


@pytest.mark.parametrize("arch", CODECS.names())
@pytest.mark.parametrize("form", FORMS)
def test_every_architecture_exports_each_form_within_1e5(arch, form, cache) -> None:
    """Parity of the rewritten stage graphs against the PyTorch model, in torch and through ONNX Runtime, at an
    odd image size; the form is in the artifact key of the stages it changes (another file than the native one),
    and a stage it leaves alone keeps the native key."""
    model = codec(f"{arch}@q{min(CODECS.get(arch).qualities)}")
    graphs, _ = codec_graphs(model, with_reconstruct=False, transposed=form)
    native, _ = codec_graphs(model, with_reconstruct=False)
    split = [s for s in ("h_s", "g_s") if s in graphs and split_transposed(getattr(model, s), form)[1]]
    if arch.startswith("cheng2020"):
        assert not split  # sub-pixel convolutions, no transposed ones: nothing to split
    else:
        assert "g_s" in split
    if form == "sub-pixel-output":
        assert "h_s" not in split  # no narrow transposed convolution there
    for stage in set(graphs) - set(split):
        assert graphs[stage].source_hash == native[stage].source_hash and not graphs[stage].notes
    for stage in split:
        g = graphs[stage]
        assert g.source_hash != native[stage].source_hash and form in g.notes[0]
        feed = g.example(image_hw=(75, 117), batch=1)
        with torch.no_grad():
            ref, got = g.reference(*feed.values()), g.module(*feed.values())
        scale = ref.abs().max().item() or 1.0
        assert (got - ref).abs().max().item() <= 1e-5 * max(1.0, scale)
        with runner_for("ort-cpu", g, cache, exporter="torchscript") as r:
            out = r.infer(feed)
        assert (next(iter(out.values())) - ref).abs().max().item() <= 1e-5 * max(1.0, scale)


@pytest.mark.parametrize("name", ["bmshj2018-hyperprior@q1", "mbt2018-mean@q1"])
@pytest.mark.parametrize("form", FORMS)
def test_each_form_writes_the_same_bytes(name, form, tmp_path, kodak_crop, cache) -> None:
    """Byte-equal streams (latents spread over many tables) and the same decode as the native export, whose
    bytes equal CompressAI's (tests/engines/test_deployed_codec.py)."""
    model = load_codec(name, stress_checkpoint(name, tmp_path / "m.pt"))
    d = DeployedCodec.on_engine(model, "ort-cpu", cache, exporter="torchscript", transposed=form)
    native = DeployedCodec.on_engine(model, "ort-cpu", cache, exporter="torchscript")
    assert d.transposed["g_s"] == form and form in d.engine and native.transposed["g_s"] == "native"
    out, ref = d.compress(kodak_crop), native.compress(kodak_crop)
    assert [[unframe(s)[0] for s in lst] for lst in out["strings"]] == \
        [[unframe(s)[0] for s in lst] for lst in ref["strings"]]
    x_hat, x_ref = d.decompress(**out)["x_hat"], native.decompress(**out)["x_hat"]
    assert (x_hat - x_ref).abs().max().item() <= 1e-5


def test_unknown_forms_are_refused_with_the_valid_ones() -> None:
    model = codec("bmshj2018-hyperprior@q1")
    with pytest.raises(InputError, match="not one of.*four-phase"):
        codec_graphs(model, transposed="sub-pixel")
    with pytest.raises(InputError, match="unknown stage.*g_s"):
        DeployedCodec.on_engine(model, "torch", transposed={"decoder": "four-phase"})
