"""A stage split across engines: runners applied in turn, each one's output the next one's input.

``DeployedCodec.on_engine(codec, {"g_s": "ov-cpu>ort-cpu"})`` runs ``g_s``'s layers on OpenVINO but its output
layer on ONNX Runtime (:func:`liccs.export.graphs.split_tail`; why: ``benchmarks/layer_budget.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from liccs.core.errors import InputError
from liccs.engines.address import SPLIT
from liccs.engines.base import Array, Runner, TensorMeta


class ChainRunner(Runner):
    """``runners[0]`` on the feed, then each next runner on its predecessor's single output."""

    def __init__(self, runners: Sequence[Runner], name: str | None = None) -> None:
        if len(runners) < 2:
            raise InputError(f"a chain needs at least two runners, got {len(runners)}")
        super().__init__(name or SPLIT.join(r.name for r in runners))
        self.runners = list(runners)

    def activate_impl(self) -> None:
        """Activate every runner of the chain (none stays active if one fails)."""
        try:
            for r in self.runners:
                r.activate()
        except BaseException:
            self.deactivate_impl()
            raise

    def get_input_metadata_impl(self) -> Mapping[str, TensorMeta]:
        """The first runner's inputs."""
        return self.runners[0].input_metadata()

    def infer_impl(self, feed: dict[str, Array]) -> dict[str, Array]:
        """The first runner on the feed, then each next one on its predecessor's single output (feeds unchecked)."""
        out = self.runners[0].infer(feed, check=False)
        for r in self.runners[1:]:
            if len(out) != 1:
                raise InputError(f"{self.name}: {r.name} follows a runner with {len(out)} outputs; a chain passes one")
            (name,) = r.input_metadata()
            out = r.infer({name: next(iter(out.values()))}, check=False)
        return out

    def deactivate_impl(self) -> None:
        """Deactivate every runner of the chain."""
        for r in self.runners:
            r.deactivate()
