"""torch → ONNX: :class:`OnnxFromTorch`, a lazy, cached build step per :class:`~liccs.export.graphs.GraphSpec`.

The dynamo exporter (``torch.onnx.export(..., dynamo=True)``) is tried first; when it fails, or when it
freezes an axis that was asked to be dynamic, the TorchScript exporter runs instead. Which exporter made
a file, and why the first one was passed over, is kept in the artifact's ``meta`` (``exporter``,
``fallback_reason``) and reaches the export report.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import io
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch
from google.protobuf.message import DecodeError
from torch.export import Dim

from liccs.export.cache import Artifact, ArtifactCache
from liccs.export.errors import ArtifactError, ExportError
from liccs.export.graphs import GraphSpec

log = logging.getLogger(__name__)

EXPORTERS = ("auto", "dynamo", "torchscript")
DEFAULT_OPSET = 18
#: Axes of every image-like input that stay dynamic: batch, height, width (fixed spatial sizes excepted).
AXES = {0: "batch", 2: "height", 3: "width"}


def _version(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


def dynamic_axes(graph: GraphSpec) -> dict[str, dict[int, str]]:
    """Input name → {axis: symbolic name} for the axes that must stay dynamic."""
    return {t.name: {0: "batch"} if t.fixed_hw else dict(AXES) for t in graph.inputs}


def load_onnx(path: str | Path, check: bool = True) -> Any:
    """Read (and check) an ONNX file; a missing, truncated or corrupt file raises :class:`ArtifactError`."""

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"ONNX file {path} does not exist")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        raise ArtifactError(f"ONNX file {path} is truncated or corrupt and cannot be parsed: {e}") from None
    if check:
        try:
            onnx.checker.check_model(str(path))
        except (onnx.checker.ValidationError, ValueError, RuntimeError, OSError) as e:
            raise ArtifactError(f"ONNX file {path} is not a valid model: {str(e).splitlines()[0]}") from None
    if not model.graph.node:
        raise ArtifactError(f"ONNX file {path} holds no graph (empty or truncated file)")
    return model


def onnx_inputs(model: Any) -> dict[str, tuple[int | str | None, ...]]:
    """Input name → shape (int, symbolic name, or None) of an ONNX model, initializers excluded."""
    inits = {i.name for i in model.graph.initializer}
    out = {}
    for i in model.graph.input:
        if i.name in inits:
            continue
        dims = i.type.tensor_type.shape.dim
        out[i.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims)
    return out


def _frozen_axes(model: Any, graph: GraphSpec) -> list[str]:
    """Axes asked to be dynamic that the exported file has fixed (``input[axis]=value``)."""
    shapes = onnx_inputs(model)
    bad = []
    for name, axes in dynamic_axes(graph).items():
        shape = shapes.get(name)
        if shape is None:
            bad.append(f"input {name!r} missing (inputs: {sorted(shapes)})")
            continue
        bad += [f"{name}[{a}]={shape[a]}" for a in axes if isinstance(shape[a], int) and shape[a] > 0]
    return bad


def _export_dynamo(graph: GraphSpec, path: Path, opset: int) -> None:
    if len(graph.inputs) != 1:
        raise ExportError(f"{graph.label}: the dynamo path here handles one input (forward(x)), "
                          f"got {len(graph.inputs)}")
    example = graph.example()
    dyn = {"x": {a: Dim.DYNAMIC for a in dynamic_axes(graph)[graph.inputs[0].name]}}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph.module, tuple(example.values()), str(path), dynamo=True, external_data=False,
                          input_names=[t.name for t in graph.inputs], output_names=list(graph.outputs),
                          dynamic_shapes=dyn, opset_version=opset, verbose=False)


def _export_torchscript(graph: GraphSpec, path: Path, opset: int) -> None:
    example = graph.example()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph.module, tuple(example.values()), str(path), dynamo=False,
                          input_names=[t.name for t in graph.inputs], output_names=list(graph.outputs),
                          dynamic_axes=dynamic_axes(graph), opset_version=opset, do_constant_folding=True)


class OnnxFromTorch:
    """Build step: a :class:`GraphSpec` → an ONNX file in the cache (``step()`` returns the :class:`Artifact`).

    Args:
        graph: what to export.
        cache: where artifacts live (default: ``$LICCS_CACHE/artifacts``).
        exporter: ``auto`` (dynamo, then TorchScript), ``dynamo`` or ``torchscript``.
        opset: ONNX opset of the file.
    """

    def __init__(self, graph: GraphSpec, cache: ArtifactCache | None = None, exporter: str = "auto",
                 opset: int = DEFAULT_OPSET) -> None:
        if exporter not in EXPORTERS:
            raise ExportError(f"exporter {exporter!r} is not one of {EXPORTERS}")
        self.graph, self.cache, self.exporter, self.opset = graph, cache or ArtifactCache(), exporter, opset

    def key(self) -> dict[str, Any]:
        """The cache key: graph and source hash, exporter, opset, dynamic axes and the versions of torch and onnx."""
        return {"kind": "onnx", "graph": self.graph.label, "source": self.graph.source_hash,
                "exporter": self.exporter, "opset": self.opset, "dynamic": dynamic_axes(self.graph),
                "torch": torch.__version__, "onnx": _version("onnx"), "onnxscript": _version("onnxscript"),
                "device": "cpu"}

    def __call__(self) -> Artifact:
        """The ONNX file from the cache, exported when missing."""
        return self.cache.get_or_build("onnx", self.graph.label, self.key(), ".onnx", self._build)

    def _build(self, path: Path) -> dict[str, Any]:
        order = {"auto": ("dynamo", "torchscript"), "dynamo": ("dynamo",), "torchscript": ("torchscript",)}
        failures: dict[str, str] = {}
        for exporter in order[self.exporter]:
            t = time.perf_counter()
            try:
                (_export_dynamo if exporter == "dynamo" else _export_torchscript)(self.graph, path, self.opset)
                model = load_onnx(path)
                frozen = _frozen_axes(model, self.graph)
                if frozen:
                    raise ExportError(f"axes asked to be dynamic came out fixed: {', '.join(frozen)}")
            # Any exporter failure is recorded in the report and the next exporter is tried; if all fail,
            # ExportError below carries every reason, so nothing is hidden.
            except Exception as e:  # noqa: BLE001
                failures[exporter] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
                log.info("%s exporter failed on %s: %s", exporter, self.graph.label, failures[exporter])
                continue
            return {"exporter": exporter, "fallback_reason": "; ".join(f"{k}: {v}" for k, v in failures.items()),
                    "export_s": round(time.perf_counter() - t, 3), "opset": self.opset,
                    "inputs": {k: list(v) for k, v in onnx_inputs(model).items()}, "outputs": list(self.graph.outputs),
                    "notes": self.graph.notes}
        raise ExportError(f"{self.graph.label}: no exporter could export it: "
                          + "; ".join(f"{k}: {v}" for k, v in failures.items()))
