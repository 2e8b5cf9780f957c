"""Conversions between the array kinds runners take (numpy arrays, torch tensors), and graph metadata.

Convention of liccs's runners: outputs come back as the kind of the feed — numpy feeds give numpy
outputs, torch feeds give torch tensors (on the runner's device for GPU engines).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from liccs.engines.base import Array, TensorMeta


def to_numpy(x: Array) -> np.ndarray:
    """A numpy array (bfloat16 becomes float32: numpy has no bfloat16)."""
    if isinstance(x, np.ndarray):
        return x
    t = x.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.cpu().numpy()


def to_torch(x: Array, device: torch.device | str | None = None) -> torch.Tensor:
    """A torch tensor (shares memory with a numpy input on the CPU)."""
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    return t.to(device) if device is not None else t


def wants_numpy(feed: Mapping[str, Array]) -> bool:
    """True when any feed value is a numpy array (the outputs are then numpy too)."""
    return any(isinstance(v, np.ndarray) for v in feed.values())


def like_feed(outputs: Mapping[str, Array], feed: Mapping[str, Array]) -> dict[str, Array]:
    """Outputs in the kind of the feed."""
    if wants_numpy(feed):
        return {k: to_numpy(v) for k, v in outputs.items()}
    return {k: to_torch(v) for k, v in outputs.items()}


def graph_meta(graph: object) -> dict[str, TensorMeta]:
    """TensorMeta of each input of a :class:`~liccs.export.graphs.GraphSpec` (value ranges included)."""
    return {t.name: TensorMeta(t.dtype, t.shape(), value_range=t.value_range) for t in graph.inputs}
