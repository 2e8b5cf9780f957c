"""``aoti``: a graph compiled ahead of time by AOTInductor (``torch.export`` → ``.pt2`` package).

``make_runner(graph)`` builds (or loads from the cache) the package with :class:`~liccs.export.aoti.AotiFromTorch`;
a ``.pt2`` path can be given instead together with ``inputs`` (its input metadata). Compiling needs a C++
compiler on the machine (g++ or clang++) and takes tens of seconds per graph on a CPU.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from liccs.core.errors import InputError
from liccs.engines.arrays import graph_meta, like_feed, to_torch
from liccs.engines.base import ENGINES, Array, EngineSpec, Runner, TensorMeta
from liccs.export.aoti import AotiFromTorch
from liccs.export.cache import ArtifactCache
from liccs.export.errors import ArtifactError

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


class AotiRunner(Runner):
    """Runs an AOTInductor package. ``package``: a ``.pt2`` path or a step returning an Artifact."""

    def __init__(self, package: Any, inputs: Mapping[str, TensorMeta], outputs: tuple[str, ...],
                 name: str = "aoti", device: str = DEVICE) -> None:
        super().__init__(name)
        self._source, self._inputs, self.outputs, self.device = package, dict(inputs), outputs, torch.device(device)
        self._fn: Any = None
        self.path: Path | None = None

    def activate_impl(self) -> None:
        """Load the ``.pt2`` package (building it first when the source is a step); a damaged one raises
        ArtifactError."""
        src = self._source() if callable(self._source) else self._source
        self.path = Path(getattr(src, "path", src))
        if not self.path.is_file():
            raise ArtifactError(f"{self.name}: AOTInductor package {self.path} does not exist")
        try:
            self._fn = torch._inductor.aoti_load_package(str(self.path))
        except (RuntimeError, OSError, ValueError, KeyError) as e:  # zip or loader errors on a damaged package
            raise ArtifactError(f"{self.name}: cannot load AOTInductor package {self.path} (truncated or "
                                f"corrupt?): {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None

    def get_input_metadata_impl(self) -> Mapping[str, TensorMeta]:
        """The inputs given at construction (a package does not declare them)."""
        return self._inputs

    def infer_impl(self, feed: dict[str, Array]) -> dict[str, Array]:
        """Run the compiled package on the feed's tensors (in input order) on the runner's device."""
        args = [to_torch(feed[n], self.device).contiguous() for n in self._inputs]
        with torch.no_grad():
            out = self._fn(*args)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return like_feed(dict(zip(self.outputs, outs)), feed)

    def deactivate_impl(self) -> None:
        """Drop the loaded package."""
        self._fn = None


def make_runner(artifact: Any, *, cache: ArtifactCache | None = None, name: str = "aoti",
                inputs: Mapping[str, TensorMeta] | None = None, outputs: tuple[str, ...] = ("output",),
                **_: Any) -> AotiRunner:
    """A GraphSpec (compiled into the cache) or a ``.pt2`` path with ``inputs`` metadata."""
    if hasattr(artifact, "module") and hasattr(artifact, "inputs"):
        return AotiRunner(AotiFromTorch(artifact, cache, DEVICE), graph_meta(artifact), artifact.outputs, name)
    if inputs is None:
        raise InputError(f"aoti: a package path ({artifact}) needs inputs={{name: TensorMeta}}")
    return AotiRunner(artifact, inputs, outputs, name)


ENGINES.register("aoti", EngineSpec(
    "aoti", "torch", "fp32", DEVICE, make_runner,
    install_hint="AOTInductor compiles C++: install g++ (apt-get install g++) or clang++",
    extra={"artifact": "graph", "compiler": shutil.which("g++") or shutil.which("clang++")}))
