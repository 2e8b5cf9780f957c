"""The differentiable replica of deployed ONNX graphs against the real engines, and attacks through it."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from liccs.attack.base import create_attack
from liccs.attack.ensemble import Ensemble
from liccs.core.errors import InputError
from liccs.data import load_batch, open_source
from liccs.engines import ENGINES, runner_for
from liccs.engines.replica import OnnxReplica, output_step
from liccs.export.cache import ArtifactCache
from liccs.export.graphs import classifier_graph, codec_graphs
from liccs.export.onnx import OnnxFromTorch
from liccs.export.quantize import Fp16OnnxFromOnnx
from liccs.pipeline import LICCS
from liccs.zoo import load_classifier, load_codec

#: Engines whose deployment is an ONNX file run by ONNX Runtime on this CPU (the replicable ones here).
CPU_REPLICABLE = [e for e in ENGINES.names()
                  if ENGINES.get(e).backend == "onnxruntime" and ENGINES.get(e).device == "cpu"]


CODEC = "mini-bmshj2018-hyperprior@q4"


@functools.cache
def cifar(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    batch = load_batch(open_source("cifar10-test"), [round(i * 9999 / (n - 1)) for i in range(n)])
    return batch.images, torch.tensor(batch.labels)


@functools.cache
def classifier() -> torch.nn.Module:
    return load_classifier("mini-cifar-resnet", "pretrained")


def _graph(kind: str):
    if kind == "classifier":
        return classifier_graph(classifier()), cifar()[0]
    codec = load_codec(CODEC, "pretrained")  # trained: a random or tiny codec rounds every latent to 0
    x = torch.nn.functional.interpolate(cifar()[0][:8], size=(64, 64), mode="bilinear", align_corners=False)
    return codec_graphs(codec)[0][kind], x.clamp(0, 1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> ArtifactCache:
    """One artifact cache for the module: each int8 graph is quantized once."""
    return ArtifactCache(tmp_path_factory.mktemp("replica") / "artifacts")


def _runner(engine: str, kind: str, cache: ArtifactCache):
    graph, x = _graph(kind)
    # TorchScript export: the dynamo export's graphs are replayed by the engine-aware run of tests/test_run.py
    r = runner_for(engine, graph, cache, exporter="torchscript", calibration=[{"x": x[:8].numpy()}])
    r.activate()
    return r, x


@pytest.mark.parametrize("engine", CPU_REPLICABLE)
@pytest.mark.parametrize("kind", ["classifier", "g_a", "reconstruct"])
def test_replica_matches_the_engine_within_one_quantization_step(engine, kind, shared_data, cache) -> None:
    """Every output within one quantization step of the engine's (fp32 engines: 1e-5), up to the codec's rounding
    of its latents: there a one-step difference before the rounding flips a latent, so the whole codec is checked
    on its mean error and the share of pixels within one step."""
    runner, x = _runner(engine, kind, cache)
    rep = OnnxReplica(runner.path)
    got = rep(x).detach().numpy()
    want = next(iter(runner.infer({"x": x}).values()))
    want = want.numpy() if isinstance(want, torch.Tensor) else want
    step = output_step(runner.path)
    # fp32: the same function up to float reordering (1e-5 relative to the output's scale)
    err = np.abs(got - want) / (step or 1e-5 * max(1.0, float(np.abs(want).max())))
    if kind != "reconstruct" or step is None:
        assert err.max() <= 1.0001, (engine, kind, err.max(), step)
    else:  # measured: 1-6% of pixels off by more than a step, a quarter step on average
        assert err.mean() <= 0.5 and (err <= 1.0001).mean() >= 0.9, (engine, kind, err.mean(), err.max())
    if ENGINES.get(engine).precision == "int8":
        assert step is not None and any(n.op_type == "QuantizeLinear" for n in onnx.load(str(runner.path)).graph.node)
    if kind == "classifier":
        assert (got.argmax(1) == want.argmax(1)).mean() >= 0.99


def test_fp16_replica_follows_the_fp16_graph(shared_data, cache) -> None:
    """The fp16 file ``ort-cuda-fp16`` runs, replicated with half-precision torch ops, against ONNX Runtime's CPU
    execution of the same file (the CUDA engine itself is measured where a GPU runs it)."""
    x = cifar()[0]
    path = Fp16OnnxFromOnnx(OnnxFromTorch(classifier_graph(classifier()), cache, "torchscript"), cache)().path
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    got = OnnxReplica(path)(x).float().detach().numpy()
    assert np.abs(got - want).max() < 0.02 and (got.argmax(1) == want.argmax(1)).mean() >= 0.99


@pytest.mark.parametrize("kind", ["classifier", "reconstruct"])
def test_gradients_through_the_int8_replica_are_nonzero(kind, shared_data, cache) -> None:
    runner, x = _runner("ort-cpu-int8", kind, cache)
    xr = x[:4].clone().requires_grad_(True)
    OnnxReplica(runner.path)(xr).square().sum().backward()
    assert torch.isfinite(xr.grad).all() and xr.grad.abs().sum() > 0


def test_unsupported_op_is_named_with_the_file(tmp_path) -> None:
    node = helper.make_node("Einsum", ["a", "a"], ["b"], equation="ij,ij->ij")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 2])])
    path = tmp_path / "einsum.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(InputError, match=r"einsum\.onnx.*Einsum"):
        OnnxReplica(path)


def _asr_on_engine(runner, x_adv: torch.Tensor, y: torch.Tensor) -> float:
    adv = np.asarray(next(iter(runner.infer({"x": x_adv.mul(255).round().div(255)}).values()))).argmax(1)
    return float((adv != y.numpy()).mean())


def test_engine_aware_attack_does_at_least_as_well_on_the_engine(shared_data, cache) -> None:
    """PGD through the replica of ort-cpu-int8 against PGD on the PyTorch classifier, both measured on the real
    int8 engine, at a radius where neither fools every image (the test can fail: the aware attack's ASR is compared,
    not assumed)."""
    runner, x = _runner("ort-cpu-int8", "classifier", cache)
    engine_pred = torch.as_tensor(np.asarray(next(iter(runner.infer({"x": x}).values()))).argmax(1))
    y = cifar()[1]
    keep = engine_pred == y
    x, y = x[keep], y[keep]
    kw = {"eps": 1 / 255, "steps": 10, "alpha": 0.25 / 255, "seed": 0}
    pt = create_attack("pgd", Ensemble([classifier()]), **kw)(x, y)
    aware = create_attack("pgd", Ensemble([OnnxReplica(runner.path)]), **kw)(x, y)
    asr_pt, asr_aware = _asr_on_engine(runner, pt, y), _asr_on_engine(runner, aware, y)
    assert 0 < asr_pt < 1, asr_pt  # a radius that discriminates
    assert asr_aware >= asr_pt, (asr_aware, asr_pt)


class _Deployed(torch.nn.Module):
    """The int8 route of a 64×64 codec in front of the 32×32 classifier, as replicas (what the run builds)."""

    def __init__(self, codec: OnnxReplica, clf: OnnxReplica) -> None:
        super().__init__()
        self.codec, self.clf = codec, clf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_hat = self.codec(x).clamp(0, 1)
        return self.clf(torch.nn.functional.interpolate(x_hat, size=(32, 32), mode="bilinear", antialias=True))


def test_differential_objective_raises_disagreement(shared_data, cache) -> None:
    """DIVA's objective over [PyTorch LICCS, its int8 replica]: the share of images the deployment gets wrong
    while PyTorch gets them right grows with the steps (measured on the replica and on the real engine)."""
    rec, x = _runner("ort-cpu-int8", "reconstruct", cache)
    clf_runner, _ = _runner("ort-cpu-int8", "classifier", cache)
    y = cifar()[1][:8]
    deployed = _Deployed(OnnxReplica(rec.path), OnnxReplica(clf_runner.path))
    float_model = LICCS(load_codec(CODEC, "pretrained"), classifier(), rounding="ste")

    def deployed_only(images: torch.Tensor) -> float:
        with torch.no_grad():
            f, d = float_model(images).argmax(1), deployed(images).argmax(1)
        return float(((d != y) & (f == y)).float().mean())

    rates = [deployed_only(x)]
    for steps in (1, 10):
        adv = create_attack("pgd", Ensemble([float_model, deployed]), eps=4 / 255, steps=steps, alpha=1 / 255,
                            random_start=False, objective="differential", seed=0)(x, y)
        rates.append(deployed_only(adv))
    assert rates[0] <= rates[1] < rates[2], rates


def test_differential_objective_needs_float_and_deployed_members() -> None:
    with pytest.raises(InputError, match="two classifying members"):
        create_attack("pgd", Ensemble([classifier()]), eps=1 / 255, steps=1, objective="differential")
    with pytest.raises(InputError, match="untargeted|targeted"):
        create_attack("pgd", Ensemble([classifier(), classifier()]), eps=1 / 255, steps=1,
                      objective="differential", targeted=True)
