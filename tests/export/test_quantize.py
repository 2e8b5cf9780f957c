"""int8 (static QDQ, calibrated on real inputs) and fp16 ONNX variants."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

from liccs.core.errors import InputError
from liccs.engines import runner_for
from liccs.export.cache import ArtifactCache
from liccs.export.errors import ExportError
from liccs.export.graphs import codec_graphs, stage_feeds
from liccs.export.onnx import OnnxFromTorch, load_onnx
from liccs.export.quantize import Fp16OnnxFromOnnx, Int8OnnxFromOnnx, compute_macs, compute_nodes
from liccs.profiling.flops import count_flops
from tests.engines.helpers import codec


@pytest.fixture(scope="module")
def h_s_onnx(tmp_path_factory, kodak_crop):
    model = codec("bmshj2018-hyperprior@q1")
    graph = codec_graphs(model, with_reconstruct=False)[0]["h_s"]
    cache = ArtifactCache(tmp_path_factory.mktemp("q"))
    feed = {k: v.numpy() for k, v in stage_feeds(model, kodak_crop)["h_s"].items()}
    return graph, cache, OnnxFromTorch(graph, cache, "torchscript"), feed


def test_int8_has_qdq_nodes_and_runs(h_s_onnx):
    graph, cache, step, feed = h_s_onnx
    art = Int8OnnxFromOnnx(step, [feed], cache)()
    ops = {n.op_type for n in load_onnx(art.path).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert art.meta["calibration_batches"] == 1
    assert Int8OnnxFromOnnx(step, [feed], cache)().cached
    with runner_for("ort-cpu-int8", graph, cache, exporter="torchscript", calibration=[feed]) as r:
        out = r.infer(feed)["params"]
    assert out.shape == (1, 192, 8, 8) and np.isfinite(out).all()


def _fp32_compute(path) -> list[bool]:
    """Per compute node in graph order: True when its weight is not dequantized (it stayed fp32)."""
    g = load_onnx(path).graph
    dq = {n.output[0] for n in g.node if n.op_type == "DequantizeLinear"}
    return [n.input[1] not in dq for n in g.node if n.op_type in ("Conv", "ConvTranspose")]


@pytest.mark.parametrize("keep,expect", [(1, [True, False, False]), ((-1,), [False, False, True]),
                                         ((0, -1), [True, False, True])])
def test_int8_keeps_the_chosen_compute_nodes_in_fp32(h_s_onnx, keep, expect):
    """An int k keeps the first k, a tuple those indices (negative from the end); the choice is in the key."""
    _, cache, step, feed = h_s_onnx
    art = Int8OnnxFromOnnx(step, [feed], cache, keep_fp32=keep)()
    assert _fp32_compute(art.path) == expect  # bmshj2018's h_s: deconv, deconv, conv
    assert art.path != Int8OnnxFromOnnx(step, [feed], cache)().path
    with pytest.raises(ExportError, match="out of range.*3 compute nodes"):
        Int8OnnxFromOnnx(step, [feed], cache, keep_fp32=(5,))()


@pytest.mark.parametrize("name,stage", [("bmshj2018-hyperprior@q1", "g_s"), ("cheng2020-anchor@q1", "g_a")])
def test_compute_macs_agree_with_torch_flop_counting(name, stage, tmp_path, kodak_crop):
    """The multiply-adds the int8 fit weighs layers by, from the ONNX graph (fp32 and QDQ alike) at a static input
    shape, sum to what PyTorch's FlopCounter counts for the stage's module at that shape (FLOPs = 2 × MACs)."""
    model = codec(name)
    graph = codec_graphs(model, with_reconstruct=False)[0][stage]
    cache = ArtifactCache(tmp_path)
    feed = stage_feeds(model, kodak_crop)[stage]
    fp32 = OnnxFromTorch(graph, cache)().path
    shapes = {k: tuple(v.shape) for k, v in feed.items()}
    macs = compute_macs(fp32, shapes)
    assert len(macs) == len(compute_nodes(fp32)) and min(macs) > 0
    assert 2 * sum(macs) == count_flops(graph.module, *feed.values())
    int8 = Int8OnnxFromOnnx(fp32, [{k: v.numpy() for k, v in feed.items()}], cache)().path
    assert sorted(compute_macs(int8, shapes)) == sorted(macs)  # onnxruntime's pre-processing may reorder branches


def test_int8_needs_calibration(h_s_onnx):
    graph, cache, _, _ = h_s_onnx
    with pytest.raises(InputError, match="calibration"):
        runner_for("ort-cpu-int8", graph, cache, exporter="torchscript")
    with pytest.raises(ExportError, match="calibration"):
        Int8OnnxFromOnnx("x.onnx", [], cache)


def test_fp16_keeps_float32_io(h_s_onnx):
    _, cache, step, _ = h_s_onnx
    model = load_onnx(Fp16OnnxFromOnnx(step, cache)().path)
    assert {i.type.tensor_type.elem_type for i in model.graph.input} == {TensorProto.FLOAT}
    assert TensorProto.FLOAT16 in {t.data_type for t in model.graph.initializer}
