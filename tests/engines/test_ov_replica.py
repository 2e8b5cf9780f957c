"""The differentiable replica of OpenVINO models (the IR of ``ov-cpu-int8``) against the real engine."""

from __future__ import annotations

import pytest
import torch
from onnx import TensorProto, helper, save

from liccs.core.errors import InputError
from liccs.engines import ENGINES, runner_for
from liccs.engines.ov_replica import OvReplica
from liccs.export.cache import ArtifactCache
from liccs.export.graphs import classifier_graph, codec_graphs
from liccs.zoo import load_codec
from tests.engines.test_replica import CODEC, cifar, classifier

#: OpenVINO's engines with a replica (bf16 compute has none yet: the replica computes in f32)
OV = [e for e in ENGINES.names() if ENGINES.get(e).backend == "openvino" and ENGINES.get(e).precision != "bf16"]
pytestmark = pytest.mark.skipif(bool(ENGINES.get("ov-cpu").unavailable_reason()),
                                reason=ENGINES.get("ov-cpu").unavailable_reason() or "")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> ArtifactCache:
    return ArtifactCache(tmp_path_factory.mktemp("ov-replica") / "artifacts")


@pytest.mark.parametrize("engine", OV)
@pytest.mark.parametrize("kind", ["classifier", "reconstruct"])
def test_replica_follows_the_engine_and_passes_gradients(engine, kind, shared_data, cache) -> None:
    """fp32: the engine's function to float reordering; int8 (NNCF's FakeQuantize IR): logits within 0.1 and the
    same top-1, the codec's images within a few steps; gradients reach the input either way (STE)."""
    if kind == "classifier":
        graph, x = classifier_graph(classifier()), cifar()[0]
    else:
        x = torch.nn.functional.interpolate(cifar()[0][:8], size=(64, 64), mode="bilinear").clamp(0, 1)
        graph = codec_graphs(load_codec(CODEC, "pretrained"))[0]["reconstruct"]
    runner = runner_for(engine, graph, cache, exporter="torchscript", calibration=[{"x": x.numpy()}])
    runner.activate()
    rep = OvReplica(runner.path)
    assert rep.path.suffix == (".xml" if ENGINES.get(engine).precision == "int8" else ".onnx")
    xg = x.clone().requires_grad_(True)
    got = rep(xg)
    want = torch.as_tensor(next(iter(runner.infer({"x": x}).values())))
    err = (got.detach() - want).abs()
    if ENGINES.get(engine).precision == "fp32":
        assert err.max() < 1e-4
    elif kind == "classifier":
        assert err.max() < 0.1 and (got.argmax(1) == want.argmax(1)).float().mean() >= 0.99
    else:  # measured: max 0.06, mean 0.008 on [0, 1] images (a rounded latent flips now and then)
        assert err.mean() < 0.02 and err.max() < 0.25
    got.float().sum().backward()
    assert xg.grad is not None and xg.grad.abs().mean() > 0


def test_an_op_the_replica_lacks_is_named(tmp_path) -> None:
    path = tmp_path / "erf.onnx"
    g = helper.make_graph([helper.make_node("Erf", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(InputError, match="Erf"):
        OvReplica(path)
