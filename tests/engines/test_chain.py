"""A stage split across engines: split_tail's two graphs compose to the stage; the deployed codec with its output
layer on another engine writes the same bytes and decodes the same image."""

from __future__ import annotations

import pytest
import torch

from liccs.core.errors import InputError, LiccsError
from liccs.engines.address import parse_split
from liccs.engines.base import ENGINES
from liccs.engines.chain import ChainRunner
from liccs.engines.codec import DeployedCodec
from liccs.export.cache import ArtifactCache
from liccs.export.graphs import SPLIT_TENSOR, codec_graphs, split_tail
from liccs.zoo import CODECS
from tests.engines.helpers import codec

ARCHS = [f"{a}@q{min(CODECS.get(a).qualities)}" for a in CODECS.names()]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ArtifactCache(tmp_path_factory.mktemp("chain"))


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("stage", ["g_a", "g_s"])
def test_split_tail_composes_to_the_stage(name, stage):
    """head then tail is the stage, exactly (the same layers); the tail's input spec has the head's output channels
    and stride; each part has its own source hash (its artifact key)."""
    graph = codec_graphs(codec(name), with_reconstruct=False)[0][stage]
    head, tail = split_tail(graph)
    (x,) = graph.example((75, 117), batch=1).values()
    with torch.no_grad():
        mid = head.module(x)
        assert torch.equal(tail.module(mid), graph.module(x))
        assert torch.equal(tail.reference(head.reference(x)), graph.reference(x))
    (spec,) = tail.inputs
    assert spec.name == SPLIT_TENSOR == head.outputs[0] and spec.channels == mid.shape[1]
    assert spec.stride * mid.shape[-1] == graph.inputs[0].stride * x.shape[-1]
    assert len({graph.source_hash, head.source_hash, tail.source_hash}) == 3
    assert (head.label, tail.label) == (f"{graph.label}.head", f"{graph.label}.tail")


def test_split_tail_refuses_what_is_not_a_chain():
    graphs = codec_graphs(codec("mbt2018@q1"), with_reconstruct=False)[0]
    with pytest.raises(InputError, match="chain of layers"):
        split_tail(graphs["context_step"])


@pytest.mark.parametrize("bad", ["ort-cpu>", ">torch", "torch>ort-cpu>torch"])
def test_parse_split_names_the_form(bad):
    with pytest.raises(InputError, match="HEAD>TAIL"):
        parse_split(bad)
    assert parse_split("ort-cpu") is None and parse_split("ov-cpu>ort-cpu") == ("ov-cpu", "ort-cpu")


def test_deployed_codec_with_its_output_layer_on_another_engine(kodak_crop, cache):
    """g_s on ort-cpu but its output layer on torch: bitstreams byte-equal to the plain ort-cpu codec's (g_s does
    not touch them), the image within 1e-4."""
    model = codec("mini-tiny-bmshj2018-hyperprior@q1")
    plain = DeployedCodec.on_engine(model, "ort-cpu", cache, exporter="torchscript")
    ref = plain.compress(kodak_crop)
    x_ref = plain.decompress(**ref)["x_hat"]
    for split in ("ort-cpu>torch",):
        d = DeployedCodec.on_engine(model, {"default": "ort-cpu", "g_s": split}, cache, exporter="torchscript")
        assert isinstance(d.runners["g_s"], ChainRunner)
        assert [r.name.split(":")[0] for r in d.runners["g_s"].runners] == split.split(">")
        out = d.compress(kodak_crop)
        assert out["strings"] == ref["strings"]
        assert (d.decompress(**out)["x_hat"] - x_ref).abs().max().item() <= 1e-4


def test_a_split_with_an_unknown_engine_lists_the_valid_ones(cache):
    with pytest.raises(LiccsError, match="ort-cpu"):
        DeployedCodec.on_engine(codec("bmshj2018-hyperprior@q1"), {"g_s": "ort-cpu>no-such-engine"}, cache)


def test_openvino_head_onnx_runtime_tail(kodak_crop, cache):
    """The measured reason for the split: OpenVINO for g_s, ONNX Runtime for its output layer."""
    if reason := ENGINES.get("ov-cpu").unavailable_reason():
        pytest.skip(reason)
    model = codec("mini-tiny-bmshj2018-hyperprior@q1")
    plain = DeployedCodec.on_engine(model, "ort-cpu", cache, exporter="torchscript")
    ref = plain.compress(kodak_crop)
    d = DeployedCodec.on_engine(model, {"default": "ort-cpu", "g_s": "ov-cpu>ort-cpu"}, cache, exporter="torchscript")
    assert (d.decompress(**ref)["x_hat"] - plain.decompress(**ref)["x_hat"]).abs().max().item() <= 1e-4


def test_an_int8_tail_calibrates_on_the_heads_outputs(kodak_crop, cache):
    """``A>B`` with an int8 B: B's calibration feeds are its own input (the head's output on the stage's feeds), so
    it quantizes with the ranges of what it will see; the split stays within int8 error of the fp32 stage."""
    from liccs.engines.factory import _tail_feeds, runner_for
    from liccs.export.graphs import stage_feeds

    model = codec("mini-tiny-bmshj2018-hyperprior@q1")
    graph = codec_graphs(model, with_reconstruct=False)[0]["g_s"]
    feeds = {k: v.numpy() for k, v in stage_feeds(model, kodak_crop)["g_s"].items()}
    head, tail = split_tail(graph)
    (t,) = _tail_feeds(head, tail, [feeds])
    with torch.no_grad():
        assert list(t) == [SPLIT_TENSOR] and torch.equal(torch.as_tensor(t[SPLIT_TENSOR]),
                                                         head.module(torch.as_tensor(feeds["y_hat"])))
    split = runner_for("ort-cpu>ort-cpu-int8", graph, cache, exporter="torchscript", calibration=[feeds])
    fp32 = runner_for("ort-cpu", graph, cache, exporter="torchscript")
    with split, fp32:
        a, b = (next(iter(r.infer(feeds).values())) for r in (split, fp32))
    err = float(abs(torch.as_tensor(a) - torch.as_tensor(b)).max())
    assert 0 < err < 0.05  # quantized (not equal), and calibrated on the right tensor (not off by its range)
