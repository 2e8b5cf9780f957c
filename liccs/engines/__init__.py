"""Engines: one Runner interface over PyTorch, ONNX Runtime, OpenVINO and TensorRT (see :mod:`liccs.engines.base`).

Importing this package registers every engine name and never imports an optional library (tensorrt,
onnxruntime-gpu, cuda-python, openvino, nncf): asking for an engine this machine cannot run raises
:class:`EngineUnavailable` saying why and what to install (the CPU bf16 engines: that this CPU lacks AVX-512 BF16
and AMX-BF16, :mod:`liccs.core.isa`).

- :mod:`.torch_engine` — ``torch``, ``torch-fp16``, ``torch-bf16``, ``torch-cpu-bf16``, ``torch-compile``
- :mod:`.aoti` — ``aoti`` (AOTInductor)
- :mod:`.ort` — ``ort-cpu``, ``ort-cpu-int8``, ``ort-cuda``, ``ort-cuda-fp16``, ``ort-trt-fp16``
- :mod:`.openvino` — ``ov-cpu``, ``ov-cpu-bf16``, ``ov-cpu-int8`` (NNCF-quantized)
- :mod:`.tensorrt` — ``trt-fp32``, ``trt-fp16``, ``trt-bf16``, ``trt-int8`` (on Polygraphy)
- :func:`runner_for` — a runner of an exported graph on any engine; :mod:`.codec` — the deployed codec.
"""

from liccs.engines import aoti, openvino, ort, tensorrt, torch_engine  # noqa: F401  (registration)
from liccs.engines.base import ENGINES, EngineSpec, EngineUnavailable, Runner, TensorMeta, available_engines, get_engine
from liccs.engines.factory import runner_for

__all__ = ["ENGINES", "EngineSpec", "EngineUnavailable", "Runner", "TensorMeta", "available_engines", "get_engine",
           "runner_for"]
