"""How every transfer target runs on one engine (:class:`Route`): images → logits through deployed graphs, and the
differentiable replica of the same graphs (:mod:`liccs.engines.replica`) for engine-aware attacks.

A target's route on an engine is, by what the target is:

- a non-autoregressive codec whose images are at the classifier's crop: the ``liccs`` graph
  (codec → classifier, one artifact);
- a non-autoregressive codec at another size (the mini zoo's 64×64 CIFAR codecs in front of a 32×32
  classifier): the ``reconstruct`` graph, the classifier's resize on the host, the ``classifier`` graph;
- an autoregressive codec (no one-graph decoder): the deployed codec's real bitstreams, then the classifier
  graph (no replica: the bitstream path is not differentiable);
- the classifier alone: the ``classifier`` graph.

On an int8 engine the ``liccs`` and ``reconstruct`` graphs are quantized as the engine's deployed codec runs the
codec (:func:`~liccs.engines.int8_fit.plan_keep_fp32`): its table stages and the layers its RD-cost fit kept stay
fp32, so the transfer measures the int8 codec users deploy, and its replica is that codec's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from liccs.core.errors import InputError
from liccs.engines import Runner, runner_for
from liccs.engines.base import ENGINES, get_engine
from liccs.engines.codec import DeployedCodec
from liccs.engines.int8_fit import plan_keep_fp32
from liccs.engines.ov_replica import OvReplica
from liccs.engines.replica import OnnxReplica
from liccs.export.graphs import classifier_graph, codec_graphs, liccs_graph
from liccs.stage import Context, Exports
from liccs.zoo.classifiers import host_geometry


def _out(runner: Runner, x: Tensor) -> Tensor:
    return torch.as_tensor(next(iter(runner.infer({"x": x.contiguous()}).values()))).float()


def _replica_of(runner: Runner) -> nn.Module:
    """The replica of the file a runner executes: the ONNX file of an ONNX Runtime engine (the int8 QDQ file of
    ``ort-cpu-int8``) or of ``ov-cpu``, the IR of ``ov-cpu-int8`` (:class:`~liccs.engines.ov_replica.OvReplica`)."""
    if getattr(runner, "path", None) is None and not runner.is_active:
        with runner:  # resolves (builds) the file the runner runs
            pass
    path = getattr(runner, "path", None)
    if path is None:
        have = ", ".join(e for e in ENGINES.names() if ENGINES.get(e).replica)
        raise InputError(f"{runner.name}: this engine runs no ONNX or OpenVINO file, so it has no replica (engines "
                         f"with one: {have})")
    return OvReplica(path, name=runner.name) if Path(path).suffix == ".xml" else OnnxReplica(path, name=runner.name)


class ReplicaPredictor(nn.Module):
    """images → logits through replicas: [codec graph → clamp] → host geometry → classifier graph."""

    def __init__(self, codec: nn.Module | None, classifier: nn.Module, preprocess: Any, host: bool) -> None:
        super().__init__()
        self.codec, self.classifier = codec, classifier
        self.pre, self.host = preprocess, host
        self.liccs_name = classifier.name if codec is None else codec.name

    def forward(self, x: Tensor) -> Tensor:
        """Logits of ``x``: the codec replica (clamped when the host resizes), the host geometry, then the classifier
        replica."""
        if self.codec is not None:
            x = self.codec(x)
            x = x.clamp(0, 1) if self.host else x
        return self.classifier(host_geometry(x, self.pre) if self.host else x).float()


@dataclass
class Route:
    """One target on one engine: the runners it goes through and how (``kind``: classifier, liccs, reconstruct,
    deployed)."""

    kind: str
    classifier: Runner
    preprocess: Any
    graph: Runner | None = None
    deployed: DeployedCodec | None = None
    fp32_nodes: int | None = None  # int8 engines: the graph's compute nodes kept fp32, as its deployed codec runs

    @property
    def how(self) -> str:
        """How the route predicts, in words (and the int8 graph's fp32 compute nodes, when set)."""
        how = {"classifier": "classifier graph", "liccs": "liccs graph",
               "reconstruct": "reconstruct graph + host resize + classifier graph",
               "deployed": "deployed codec (real bitstreams) + classifier graph"}[self.kind]
        return how + (f" (int8 as its deployed codec: {self.fp32_nodes} compute nodes fp32)"
                      if self.fp32_nodes is not None else "")

    def predict(self, x: Tensor) -> Tensor:
        """Logits of the deployed engine."""
        host = lambda v: host_geometry(v, self.preprocess)  # noqa: E731
        if self.kind == "classifier":
            return _out(self.classifier, host(x))
        if self.kind == "liccs":
            return _out(self.graph, x)
        if self.kind == "reconstruct":
            return _out(self.classifier, host(_out(self.graph, x).clamp(0, 1)))
        d = self.deployed
        return _out(self.classifier, host(d.decompress(**d.compress(x))["x_hat"]))

    def replica(self) -> ReplicaPredictor:
        """The differentiable replica of this route (raises InputError where there is none)."""
        if self.kind == "deployed":
            raise InputError("an autoregressive codec runs through real bitstreams on the deployed engines: no "
                             "differentiable replica")
        if self.kind == "liccs":
            return ReplicaPredictor(None, _replica_of(self.graph), self.preprocess, host=False)
        codec = _replica_of(self.graph) if self.kind == "reconstruct" else None
        return ReplicaPredictor(codec, _replica_of(self.classifier), self.preprocess, host=True)


class Routes(dict[str, Route]):
    """Target → :class:`Route`, owning the runners (and deployed codecs) it built: ``with routes(...) as rs:``
    releases them at the end of the block (:meth:`close`); the export stage's deployed codecs stay with it."""

    def __init__(self) -> None:
        super().__init__()
        self.owned = ExitStack()

    def own(self, thing: Any) -> Any:
        """Activate ``thing`` (a Runner or DeployedCodec) and release it when the routes close."""
        return self.owned.enter_context(thing)

    def close(self) -> None:
        """Deactivate every runner and deployed codec these routes built."""
        self.owned.close()

    def __enter__(self) -> Routes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def routes(ctx: Context, engine: str, exports: Exports, targets: list[str] | None = None) -> Routes:
    """Target → its :class:`Route` on ``engine`` (every transfer target, or ``targets``), runners active; the caller
    closes them (``with routes(...) as rs:``)."""
    out = Routes()
    try:
        _build(out, ctx, engine, exports, targets)
    except BaseException:
        out.close()
        raise
    return out


def _build(out: Routes, ctx: Context, engine: str, exports: Exports, targets: list[str] | None) -> None:
    pre = ctx.classifier.preprocess.cfg
    calib = ctx.calibration()
    cache = exports.cache
    clf = out.own(runner_for(engine, classifier_graph(ctx.classifier), cache,
                             calibration=[{"x": host_geometry(calib, pre).numpy()}]))
    at_crop = tuple(ctx.images.shape[-2:]) == (pre.crop, pre.crop)
    spec = get_engine(engine)
    twin = spec.fp32_twin if spec.precision == "int8" else ""  # the int8 plan's fp32 layers (bf16: none)
    built: dict[str, DeployedCodec] = {}

    def deployed(t: str) -> DeployedCodec:  # the export stage's, or built here (once) in a task's worker
        have = exports.deployed.get(engine, {}).get(t) or built.get(t)
        if have is None:
            have = built[t] = out.own(DeployedCodec.on_engine(ctx.codecs[t], engine, cache, calibration_images=calib))
        return have

    for t in targets if targets is not None else ctx.names.targets:
        if t == ctx.cfg.models.classifier:
            out[t] = Route("classifier", clf, pre)
            continue
        codec = ctx.codecs[t]
        graph = liccs_graph(codec, ctx.classifier)
        if isinstance(graph, str):
            out[t] = Route("deployed", clf, pre, deployed=deployed(t))
            continue
        kind, graph = ("liccs", graph) if at_crop else ("reconstruct", codec_graphs(codec)[0]["reconstruct"])
        # an int8 engine quantizes the graph as its deployed codec runs: table stages and the fit's layers in fp32
        keep = {"keep_fp32": plan_keep_fp32(deployed(t), graph, cache)} if twin else {}
        r = out.own(runner_for(engine, graph, cache, calibration=[{"x": calib.numpy()}], **keep))
        out[t] = Route(kind, clf, pre, graph=r, fp32_nodes=len(keep["keep_fp32"]) if keep else None)


@contextmanager
def predictors(ctx: Context, engine: str, exports: Exports, targets: list[str] | None = None,
               ) -> Iterator[tuple[dict[str, Callable[[Tensor], Any]], dict[str, str]]]:
    """(target → images-to-logits on ``engine``, target → how it runs there) of every transfer target (or
    ``targets``), for the ``with`` block: ``with predictors(ctx, engine, exports) as (fns, how):``; the runners are
    released after it."""
    with routes(ctx, engine, exports, targets) as rs:
        yield {t: r.predict for t, r in rs.items()}, {t: r.how for t, r in rs.items()}
