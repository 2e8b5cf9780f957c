"""One call from a graph to a runner on any engine: :func:`runner_for`.

liccs's own engines take the :class:`~liccs.export.graphs.GraphSpec` and build what they need (module,
ONNX, int8 ONNX, AOTInductor package) through the artifact cache; an engine whose runner takes another artifact
says how the graph becomes it with its spec's ``prepare`` (TensorRT: the exported ONNX file and a shape profile,
:func:`liccs.engines.tensorrt.trt_profile`).
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
    options = {"cache": cache, "exporter": exporter, "calibration": calibration, **kw}
    artifact, options = spec.prepare(graph, options) if spec.prepare is not None else (graph, options)
    return spec.make_runner(artifact, name=name, **options)
