"""OpenVINO engines: ``ov-cpu`` against PyTorch on real images, dynamic shapes, bad files, ``ov-cpu-int8``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from liccs.core.errors import InputError
from liccs.core.paths import PROJECT_ROOT
from liccs.engines import ENGINES, runner_for
from liccs.engines.codec import DeployedCodec
from liccs.engines.int8_fit import rd_cost
from liccs.engines.openvino import OV_COMPUTE_OPS, ov_compute_ops
from liccs.engines.ort import onnx_source
from liccs.export.cache import ArtifactCache
from liccs.export.errors import ArtifactError, ExportError
from liccs.export.graphs import classifier_graph, codec_graphs
from liccs.export.quantize import resolve_onnx
from liccs.zoo import load_codec

SKIP = "needs OpenVINO (pip install 'liccs[openvino]'); not installed here"


@pytest.fixture(scope="module")
def ov():
    return pytest.importorskip("openvino", reason=SKIP)


@pytest.fixture(scope="module")
def real(ov, tmp_path_factory):
    """The mini CIFAR ResNet's graph, a tiny codec's g_a, 32 real CIFAR-10 test images, an artifact cache."""
    from liccs.data import load_batch, open_source
    from liccs.zoo import load_classifier, load_codec

    images = load_batch(open_source("cifar10-test"), range(32)).images
    clf = classifier_graph(load_classifier("mini-cifar-resnet", "pretrained"))
    g_a = codec_graphs(load_codec("mini-tiny-bmshj2018-hyperprior@q1", "random"), with_reconstruct=False)[0]["g_a"]
    return clf, g_a, images, ArtifactCache(tmp_path_factory.mktemp("ov") / "a")


def test_registered_and_unavailable_without_openvino():
    """Registration needs no openvino: where it is missing, both engines say what to install."""
    code = ("import sys; sys.modules['openvino'] = sys.modules['nncf'] = None; import liccs.engines as e; "
            "print(e.ENGINES.get('ov-cpu').unavailable_reason()); print(e.ENGINES.get('ov-cpu-int8').available)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    reason, int8_available = out.stdout.strip().splitlines()[-2:]
    assert "ov-cpu" in reason and "pip install 'liccs[openvino]'" in reason and int8_available == "False"
    spec = ENGINES.get("ov-cpu")
    assert (spec.backend, spec.precision, spec.device) == ("openvino", "fp32", "cpu")
    assert spec.extra == {"artifact": "onnx", "inference_precision": "f32"}
    assert ENGINES.get("ov-cpu-int8").requires == ("openvino", "nncf")


def test_ov_cpu_matches_torch_on_the_classifier(real):
    """Real CIFAR images at two batch sizes: logits within 1e-4 of PyTorch; compiled f32, with the threads asked."""
    clf, _, images, cache = real
    with runner_for("ov-cpu", clf, cache, exporter="torchscript", threads=1) as r:
        assert r._compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"
        assert r._compiled.get_property("INFERENCE_NUM_THREADS") == 1
        assert r.input_metadata()["x"].dtype == "float32" and r.input_metadata()["x"].shape == (None, 3, 32, 32)
        for x in (images[:8], images[:3]):
            out = r.infer({"x": x})["logits"]
            assert isinstance(out, torch.Tensor) and out.shape == (len(x), 10)
            assert (out - clf.reference(x)).abs().max().item() <= 1e-4
        out_np = r.infer({"x": images[:2].numpy()})["logits"]
        assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32


def test_ov_cpu_runs_a_codec_stage_at_dynamic_sizes(real):
    """g_a of a tiny codec: two batch sizes and two spatial sizes through one dynamic ONNX file, within 1e-4."""
    _, g_a, images, cache = real
    with runner_for("ov-cpu", g_a, cache, exporter="torchscript") as r:
        assert r.input_metadata()["x"].shape == (None, 3, None, None)
        for batch, hw in ((2, (64, 64)), (5, (128, 64))):
            x = F.interpolate(images[:batch], size=hw, mode="bilinear", align_corners=False).clamp(0, 1)
            ref = g_a.reference(x)
            out = r.infer({"x": x})[g_a.outputs[0]]
            assert out.shape == ref.shape
            assert (out - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())


def test_bad_files_and_failing_inference_name_the_file(real, tmp_path):
    _, g_a, images, cache = real
    make = ENGINES.get("ov-cpu").make_runner
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(ArtifactError, match=f"ov-cpu.*{bad}"):
        make(bad).activate()
    with pytest.raises(ArtifactError, match="missing.onnx.*does not exist"):
        make(tmp_path / "missing.onnx").activate()
    with runner_for("ov-cpu", g_a, cache, exporter="torchscript") as r:
        with pytest.raises(InputError, match="dimension 1 must be 3"):  # the common check, before OpenVINO
            r.infer({"x": torch.rand(1, 4, 64, 64)})
        with pytest.raises(InputError, match=r"ov-cpu:.*g_a.*failed on .*\.onnx with inputs .*\(1, 4, 64, 64\)"):
            r.infer({"x": torch.rand(1, 4, 64, 64)}, check=False)


def test_ov_cpu_int8_agrees_with_torch_and_is_cached(real):
    """NNCF int8 calibrated on 16 real images: top-1 agreement with PyTorch >= 0.9 on 32; a second runner hits the
    cache; a changed weights file (.bin) is rebuilt."""
    clf, _, images, cache = real
    calib = [{"x": images[i:i + 8].numpy()} for i in (0, 8)]
    with runner_for("ov-cpu-int8", clf, cache, exporter="torchscript", calibration=calib) as r:
        assert r.path.suffix == ".xml" and r.path.with_suffix(".bin").is_file() and not r.artifact.cached
        pred = r.infer({"x": images})["logits"].argmax(1)
        assert (pred == clf.reference(images).argmax(1)).float().mean().item() >= 0.9
    again = runner_for("ov-cpu-int8", clf, cache, exporter="torchscript", calibration=calib)
    again.activate()
    assert again.artifact.cached and again.path == r.path
    again.deactivate()
    r.path.with_suffix(".bin").write_bytes(b"changed")
    rebuilt = runner_for("ov-cpu-int8", clf, cache, exporter="torchscript", calibration=calib)
    with rebuilt:
        assert not rebuilt.artifact.cached
        assert rebuilt.infer({"x": images[:4]})["logits"].shape == (4, 10)


def test_ov_cpu_int8_needs_calibration(real):
    clf, _, _, cache = real
    with pytest.raises(InputError, match="ov-cpu-int8.*calibration"):
        runner_for("ov-cpu-int8", clf, cache)


def _fp32_compute(path) -> list[int]:
    """Positions of the compute nodes of a quantized IR whose activation input has no FakeQuantize before it."""
    import openvino as ov

    ops = [op for op in ov.Core().read_model(str(path)).get_ordered_ops() if op.get_type_name() in OV_COMPUTE_OPS]
    return [i for i, op in enumerate(ops) if op.input_value(0).get_node().get_type_name() != "FakeQuantize"]


def test_ov_cpu_int8_keeps_the_named_compute_nodes_fp32_and_quantizes_only_compute_nodes(real, kodak_crop):
    """keep_fp32 (ONNX compute-node indices, negative from the last) maps onto OpenVINO's renamed nodes: those stay
    f32, every other convolution gets an int8 input; the GDNs' element-wise ops get no FakeQuantize."""
    import openvino as ov

    _, g_a, _, cache = real
    calib = [{"x": kodak_crop[..., :64, :64].numpy()}]
    with runner_for("ov-cpu-int8", g_a, cache, exporter="torchscript", calibration=calib, keep_fp32=(0, -1)) as r:
        assert _fp32_compute(r.path) == [0, 6]
        fq_users = {u.get_node().get_type_name() for op in ov.Core().read_model(str(r.path)).get_ordered_ops()
                    if op.get_type_name() == "FakeQuantize" for u in op.output(0).get_target_inputs()}
        assert fq_users == {"Convolution"}
    with pytest.raises(ExportError, match="keep_fp32 indices \\[9\\] out of range.*7 compute nodes"):
        runner_for("ov-cpu-int8", g_a, cache, exporter="torchscript", calibration=calib, keep_fp32=(9,)).activate()
    # an OpenVINO model whose compute nodes do not line up with the ONNX graph's: refused, not guessed
    g_s = codec_graphs(load_codec("mini-tiny-bmshj2018-hyperprior@q1", "random"), with_reconstruct=False)[0]["g_s"]
    paths = {k: resolve_onnx(onnx_source(g, cache, "torchscript"))[0] for k, g in (("g_a", g_a), ("g_s", g_s))}
    with pytest.raises(ExportError, match="do not line up with the ONNX graph"):
        ov_compute_ops(ov.Core().read_model(str(paths["g_a"])), paths["g_s"])
    assert len(ov_compute_ops(ov.Core().read_model(str(paths["g_s"])), paths["g_s"])) == 7


def test_ov_cpu_int8_codec_fit_installs_the_plan_it_measured(ov, kodak_crop, tmp_path):
    """The RD-cost fit on ov-cpu-int8: the table stages on its fp32 twin (ov-cpu), the plan's fp32 layers are the
    installed IRs' f32 convolutions, its cost is what those runners give, and its streams decode on ort-cpu."""
    model = load_codec("mini-tiny-bmshj2018-hyperprior@q6", "pretrained")
    x = torch.nn.functional.interpolate(kodak_crop, size=(64, 64), mode="bilinear").clamp(0, 1)
    cache = ArtifactCache(tmp_path / "a")
    d = DeployedCodec.on_engine(model, "ov-cpu-int8", cache, calibration_images=x, exporter="torchscript",
                                int8_tolerance=1.0)  # the loop itself is tested on ort-cpu-int8 (test_deployed_codec)
    plan = d.int8_plan
    assert plan["within"] and any(plan["fp32_layers"].values())  # the small GDN convolutions stay f32
    for s in ("g_a", "g_s"):
        d.runners[s].activate()
        assert _fp32_compute(d.runners[s].path) == plan["fp32_layers"][s]
    d.runners["h_s"].activate()
    assert d.runners["h_s"].path.suffix == ".onnx"  # ov-cpu, fp32
    assert rd_cost(d, x, d.runners, plan["lambda"])[1] == pytest.approx(plan["cost"], rel=1e-9)
    out = DeployedCodec.on_engine(model, "ort-cpu", cache, exporter="torchscript").decompress(**d.compress(x))
    assert all(out["tables_match"])
