"""torch → ONNX: exporter choice and fallback, dynamic axes, corrupt files, export report."""

from __future__ import annotations

import pytest
import torch

from liccs.engines.ort import OrtRunner
from liccs.export.cache import ArtifactCache
from liccs.export.errors import ArtifactError, ExportError
from liccs.export.graphs import GraphSpec, TensorSpec
from liccs.export.onnx import OnnxFromTorch, load_onnx, onnx_inputs
from liccs.export.report import export_codec
from tests.engines.helpers import SMALL, codec


class _DataDependent(torch.nn.Module):
    """Control flow on tensor values: torch.export refuses it, TorchScript tracing records one branch."""

    def forward(self, x):
        return x * 2 if x.mean() > 0 else x


class _Broken(torch.nn.Module):
    def forward(self, x):
        raise RuntimeError("cannot run")


def _graph(module, name="toy"):
    return GraphSpec("toy@q1", name, module, (TensorSpec("x", 3),), ("out",), source_hash=name)


def test_dynamo_exports_with_dynamic_axes(tmp_path):
    """The preferred exporter on a stage and on ``reconstruct`` (padding to 64 computed from the input's size)."""
    graphs, arts, report = export_codec(codec(SMALL), ArtifactCache(tmp_path), "dynamo",
                                        stages=["h_a", "reconstruct"])
    assert set(arts) == {"h_a", "reconstruct"}
    for name, art in arts.items():
        assert art.meta["exporter"] == "dynamo", name
        shape = onnx_inputs(load_onnx(art.path))[graphs[name].inputs[0].name]
        assert [isinstance(d, str) for d in shape] == [True, False, True, True], (name, shape)
    assert {r.status for r in report.records} == {"exported"}


def test_fallback_to_torchscript_is_recorded(tmp_path):
    art = OnnxFromTorch(_graph(_DataDependent()), ArtifactCache(tmp_path))()
    assert art.meta["exporter"] == "torchscript"
    assert "dynamo" in art.meta["fallback_reason"]


def test_no_exporter_works_names_the_graph(tmp_path):
    with pytest.raises(ExportError, match=r"toy@q1\.toy.*dynamo.*torchscript"):
        OnnxFromTorch(_graph(_Broken()), ArtifactCache(tmp_path))()


def test_autoregressive_reconstruct_is_reported_not_exportable(tmp_path):
    _, arts, report = export_codec(codec("mbt2018@q1"), ArtifactCache(tmp_path), "torchscript",
                                   stages=["reconstruct", "context_prediction"])
    assert set(arts) == {"context_prediction"}
    (rec,) = [r for r in report.records if r.graph == "reconstruct"]
    assert rec.status == "not-exportable" and "sequential" in rec.reason
    assert report.to_dict()["not_exported"][0]["graph"] == "reconstruct"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_onnx_gives_clear_error(tmp_path, damage):
    art = OnnxFromTorch(_graph(torch.nn.Conv2d(3, 4, 3), "conv"), ArtifactCache(tmp_path), "torchscript")()
    bad = tmp_path / f"{damage}.onnx"
    data = art.path.read_bytes()
    bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x08\xff" * 100, "empty": b""}[damage])
    with pytest.raises(ArtifactError, match=str(bad)):
        load_onnx(bad)
    with pytest.raises(ArtifactError, match=str(bad)):
        OrtRunner(bad).activate()
