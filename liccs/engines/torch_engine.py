"""PyTorch engines: ``torch`` (eager fp32), ``torch-fp16``/``torch-bf16`` (autocast, GPU), ``torch-cpu-bf16``
(autocast on the CPU, only where it has AVX-512 BF16 or AMX-BF16: :mod:`liccs.core.isa`), ``torch-cpu-bf16-emu``
(bf16 numerics emulated at fp32 speed on any CPU, :mod:`.bf16_emulation`: for quality and transfer, never timed),
``torch-compile`` (``torch.compile``, inductor, dynamic shapes).

Each runs a :class:`~liccs.export.graphs.GraphSpec`'s module (the inference form of the model, the same
module that is exported). Runs on the GPU when one is visible, else on the CPU; outputs are float32.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import torch

from liccs.core.errors import InputError
from liccs.engines.arrays import graph_meta, like_feed, to_torch
from liccs.engines.base import ENGINES, Array, EngineSpec, Runner, TensorMeta
from liccs.engines.bf16_emulation import Bf16Emulation
from liccs.pipeline import module_device

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
_AUTOCAST = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16, "bf16-emulated": None}


class TorchRunner(Runner):
    """A GraphSpec's module in PyTorch, eager or compiled, fp32 or autocast fp16/bf16.

    Args:
        graph: a :class:`~liccs.export.graphs.GraphSpec` (module + input metadata).
        precision: ``fp32``, ``fp16`` (autocast, CUDA only), ``bf16`` (autocast, CUDA or CPU) or
            ``bf16-emulated`` (:class:`~liccs.engines.bf16_emulation.Bf16Emulation`, CPU).
        device: ``cpu`` or ``cuda``.
        compile: wrap the module in ``torch.compile(dynamic=True)``.
    """

    def __init__(self, graph: Any, precision: str = "fp32", device: str = DEVICE, compile: bool = False,
                 name: str | None = None) -> None:
        if precision not in _AUTOCAST:
            raise InputError(f"torch precision must be one of {sorted(_AUTOCAST)}, got {precision!r}")
        if precision == "fp16" and device != "cuda":
            raise InputError(f"torch autocast fp16 runs on a CUDA GPU here, not on {device}")
        if precision == "bf16-emulated" and device != "cpu":
            raise InputError(f"emulated bf16 runs on the CPU, not on {device} (a GPU has bf16: torch-bf16)")
        super().__init__(name or f"torch-{precision}")
        self.graph, self.precision, self.device, self.compile = graph, precision, torch.device(device), compile
        self._fn: Any = None

    def activate_impl(self) -> None:
        """The module in eval mode on the device (a copy if it is elsewhere), compiled when asked."""
        module = self.graph.module.eval()
        if module_device(module) != self.device:  # a copy: the module is shared (the loaded codec, the attacks)
            module = copy.deepcopy(module).to(self.device)
        self._fn = torch.compile(module, dynamic=True) if self.compile else module

    def get_input_metadata_impl(self) -> Mapping[str, TensorMeta]:
        """The GraphSpec's inputs."""
        return graph_meta(self.graph)

    def infer_impl(self, feed: dict[str, Array]) -> dict[str, Array]:
        """Run the module under autocast (fp16/bf16), emulated bf16 or in fp32, without gradients; outputs as
        float32."""
        args = [to_torch(feed[t.name], self.device) for t in self.graph.inputs]
        dtype = _AUTOCAST[self.precision]
        ctx: Any = torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext()
        if self.precision == "bf16-emulated":
            ctx = Bf16Emulation()
        with torch.no_grad(), ctx:
            out = self._fn(*args)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return like_feed({n: o.float() for n, o in zip(self.graph.outputs, outs)}, feed)

    def deactivate_impl(self) -> None:
        """Drop the module."""
        self._fn = None


def _factory(precision: str, compile: bool = False, device: str = DEVICE):
    def make_runner(artifact: Any, *, name: str | None = None, **_: Any) -> TorchRunner:
        """``artifact``: a GraphSpec. Extra keywords (cache, calibration, ...) are for other engines."""
        return TorchRunner(artifact, precision, device, compile, name or ("torch-compile" if compile else None))

    return make_runner


_CUDA_HINT = "install the CUDA build of torch on a machine with an NVIDIA GPU"
ENGINES.register("torch", EngineSpec("torch", "torch", "fp32", DEVICE, _factory("fp32"),
                                     extra={"artifact": "graph"}))
ENGINES.register("torch-fp16", EngineSpec("torch-fp16", "torch", "fp16", "cuda", _factory("fp16", device="cuda"),
                                          needs_cuda=True, install_hint=_CUDA_HINT, extra={"artifact": "graph"}))
ENGINES.register("torch-bf16", EngineSpec("torch-bf16", "torch", "bf16", "cuda", _factory("bf16", device="cuda"),
                                          needs_cuda=True, install_hint=_CUDA_HINT, extra={"artifact": "graph"}))
ENGINES.register("torch-cpu-bf16", EngineSpec("torch-cpu-bf16", "torch", "bf16", "cpu", _factory("bf16", device="cpu"),
                                              native="bf16", extra={"artifact": "graph"}, fp32_twin="torch"))
ENGINES.register("torch-cpu-bf16-emu", EngineSpec("torch-cpu-bf16-emu", "torch", "bf16", "cpu",
                                                  _factory("bf16-emulated", device="cpu"), extra={"artifact": "graph"},
                                                  fp32_twin="torch", emulated=True))
ENGINES.register("torch-compile", EngineSpec("torch-compile", "torch", "fp32", DEVICE, _factory("fp32", True),
                                             extra={"artifact": "graph", "compiler": "inductor"}))
