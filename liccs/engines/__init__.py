"""Engines: one Runner interface over PyTorch, ONNX Runtime and TensorRT (see :mod:`liccs.engines.base`).

Importing this package never imports an optional library (tensorrt, onnxruntime-gpu, cuda-python).
"""

from liccs.engines.base import ENGINES, EngineSpec, EngineUnavailable, Runner, TensorMeta, available_engines, get_engine

__all__ = ["ENGINES", "EngineSpec", "EngineUnavailable", "Runner", "TensorMeta", "available_engines", "get_engine"]
