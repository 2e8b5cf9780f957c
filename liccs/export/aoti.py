"""torch → AOTInductor package: :class:`AotiFromTorch` (``torch.export`` → ``aoti_compile_and_package``).

The package is a ``.pt2`` file of C++ compiled for this machine's CPU (or GPU) by the local compiler; the
key therefore holds the torch version, the CPU and the compiler next to the source hash.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.export import Dim

from liccs.export.cache import Artifact, ArtifactCache
from liccs.export.errors import ExportError
from liccs.export.graphs import GraphSpec
from liccs.export.onnx import dynamic_axes


def compiler_id() -> str:
    """The C++ compiler AOTInductor would use (``$CXX`` or ``c++``/``g++``), with its version line."""
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if not cxx:
        return "none"
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return cxx
    return f"{cxx}: {out.splitlines()[0] if out else '?'}"


class AotiFromTorch:
    """Build step: a :class:`GraphSpec` → an AOTInductor ``.pt2`` package (dynamic batch/height/width)."""

    def __init__(self, graph: GraphSpec, cache: ArtifactCache | None = None, device: str = "cpu") -> None:
        self.graph, self.cache, self.device = graph, cache or ArtifactCache(), device

    def key(self) -> dict[str, Any]:
        """The cache key: graph and source hash, dynamic axes, torch version, device, CPU and C++ compiler."""
        return {"kind": "aoti", "graph": self.graph.label, "source": self.graph.source_hash,
                "dynamic": dynamic_axes(self.graph), "torch": torch.__version__, "device": self.device,
                "cpu": platform.processor() or platform.machine(), "compiler": compiler_id()}

    def __call__(self) -> Artifact:
        """The ``.pt2`` package from the cache, compiled when missing."""
        return self.cache.get_or_build("aoti", self.graph.label, self.key(), ".pt2", self._build)

    def _build(self, path: Path) -> dict[str, Any]:
        if compiler_id() == "none" and self.device == "cpu":
            raise ExportError(f"{self.graph.label}: AOTInductor needs a C++ compiler (g++ or clang++); none found")
        example = {k: v.to(self.device) for k, v in self.graph.example().items()}
        axes = dynamic_axes(self.graph)[self.graph.inputs[0].name]
        t = time.perf_counter()
        module = self.graph.module.to(self.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ep = torch.export.export(module, tuple(example.values()),
                                     dynamic_shapes={"x": {a: Dim.DYNAMIC for a in axes}}, strict=False)
            torch._inductor.aoti_compile_and_package(ep, package_path=str(path))
        return {"compile_s": round(time.perf_counter() - t, 2), "device": self.device}
