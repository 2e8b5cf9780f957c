"""One call from a graph to a runner on any engine: :func:`runner_for`.

liccs's own engines take the :class:`~liccs.export.graphs.GraphSpec` and build what they need (module,
ONNX, int8 ONNX, AOTInductor package) through the artifact cache; TensorRT engines get the exported ONNX
file and a shape profile derived from the graph (:func:`trt_profile`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from liccs.engines.address import parse_split
from liccs.engines.base import Runner, get_engine
from liccs.engines.chain import ChainRunner
from liccs.export.cache import ArtifactCache
from liccs.export.graphs import split_tail
from liccs.export.onnx import OnnxFromTorch

#: Image sides a TensorRT profile covers by default: (min, opt, max), multiples of 64.
TRT_IMAGE_SIDES = (64, 512, 1024)
TRT_BATCH = (1, 1, 8)


def trt_profile(graph: Any, batch: tuple[int, int, int] = TRT_BATCH,
                sides: tuple[int, int, int] = TRT_IMAGE_SIDES) -> dict[str, list[tuple[int, ...]]]:
    """(min, opt, max) shapes of each input of ``graph``: ``batch``, and image ``sides`` divided by the stride."""
    prof = {}
    for t in graph.inputs:
        hw = [t.fixed_hw or (max(1, s // t.stride), max(1, s // t.stride)) for s in sides]
        prof[t.name] = [(b, t.channels, *s) for b, s in zip(batch, hw)]
    return prof


def _tail_feeds(head: Any, tail: Any, calibration: Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The calibration feeds of a split's tail: its input, the head's output on each of the stage's feeds."""
    (t,) = tail.inputs
    with torch.no_grad():
        return [{t.name: head.module(*(torch.as_tensor(f[i.name]) for i in head.inputs)).numpy()}
                for f in calibration]


def runner_for(engine: str, graph: Any, cache: ArtifactCache | None = None, *, exporter: str = "auto",
               calibration: Sequence[Mapping[str, np.ndarray]] | None = None, **kw: Any) -> Runner:
    """A runner of ``graph`` on ``engine`` (raises EngineUnavailable saying why, and what to install).

    Args:
        engine: a registered engine name (``liccs.engines.ENGINES``), or ``"A>B"``: the graph's output layer on
            engine B and the rest on A (:func:`~liccs.export.graphs.split_tail`, :mod:`liccs.engines.chain`).
        graph: a :class:`~liccs.export.graphs.GraphSpec`.
        cache: the artifact cache (default ``$LICCS_CACHE/artifacts``).
        exporter: ONNX exporter preference for ONNX-based engines.
        calibration: int8 calibration feeds (real-image inputs of this graph).
    """
    name = f"{engine}:{graph.label}"
    if split := parse_split(engine):
        head, tail = split_tail(graph)
        feeds = [calibration, _tail_feeds(head, tail, calibration) if calibration is not None else None]
        return ChainRunner([runner_for(e, part, cache, exporter=exporter, calibration=f, **kw)
                            for e, part, f in zip(split, (head, tail), feeds)], name=name)
    spec = get_engine(engine)
    if spec.backend == "tensorrt":
        onnx_path = OnnxFromTorch(graph, cache, exporter)().path
        kw.pop("threads", None)  # ONNX Runtime settings; TensorRT builds take none
        kw.pop("spinning", None)
        return spec.make_runner(onnx_path, name=name, profile=kw.pop("profile", None) or trt_profile(graph),
                                cache=cache, calibration=calibration, **kw)
    return spec.make_runner(graph, name=name, cache=cache, exporter=exporter, calibration=calibration, **kw)
