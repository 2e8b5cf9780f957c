"""The artifact cache: hits, rebuild when the source changes, atomic writes, damaged files rebuilt."""

from __future__ import annotations

import pytest
import torch

import liccs.export.onnx as ox
from liccs.export.cache import ArtifactCache
from liccs.export.graphs import codec_graphs
from liccs.export.onnx import OnnxFromTorch
from liccs.zoo import load_codec


@pytest.fixture()
def counting(monkeypatch):
    calls = []
    real = ox._export_torchscript

    def export(graph, path, opset):
        calls.append(graph.label)
        real(graph, path, opset)

    monkeypatch.setattr(ox, "_export_torchscript", export)
    return calls


def _h_s(model):
    return codec_graphs(model, with_reconstruct=False)[0]["h_s"]


def test_hit_then_rebuild_when_weights_change(tmp_path, counting):
    cache = ArtifactCache(tmp_path)
    model = load_codec("bmshj2018-hyperprior@q1", "random")
    first = OnnxFromTorch(_h_s(model), cache, "torchscript")()
    again = OnnxFromTorch(_h_s(model), cache, "torchscript")()
    assert (first.cached, again.cached, again.path, len(counting)) == (False, True, first.path, 1)
    with torch.no_grad():
        model.h_s[0].weight.add_(1e-3)
    changed = OnnxFromTorch(_h_s(model), cache, "torchscript")()
    assert not changed.cached and changed.path != first.path and len(counting) == 2
    assert first.path.is_file()  # the old artifact stays valid for the old weights


def test_damaged_artifact_is_rebuilt(tmp_path, counting):
    cache = ArtifactCache(tmp_path)
    graph = _h_s(load_codec("bmshj2018-hyperprior@q1", "random"))
    art = OnnxFromTorch(graph, cache, "torchscript")()
    art.path.write_bytes(art.path.read_bytes()[:100])  # truncated behind the cache's back
    again = OnnxFromTorch(graph, cache, "torchscript")()
    assert not again.cached and len(counting) == 2 and again.path.stat().st_size > 100


def test_crash_during_build_leaves_nothing(tmp_path):
    cache = ArtifactCache(tmp_path)

    def build(tmp):
        tmp.write_bytes(b"half a model")
        raise KeyboardInterrupt  # a crash in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_build("onnx", "toy", {"k": 1}, ".onnx", build)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    art = cache.get_or_build("onnx", "toy", {"k": 1}, ".onnx", lambda tmp: tmp.write_bytes(b"model") and {})
    assert art.path.read_bytes() == b"model" and cache.lookup(art.path, {"k": 1}) is not None
    assert cache.lookup(art.path, {"k": 2}) is None  # another key is another artifact
