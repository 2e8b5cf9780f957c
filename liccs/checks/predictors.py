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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from liccs.engines import Runner, runner_for
from liccs.engines.codec import DeployedCodec
from liccs.engines.replica import OnnxReplica
from liccs.errors import InputError
from liccs.export.graphs import classifier_graph, codec_graphs, liccs_graph
from liccs.stage import Context, Exports
from liccs.zoo.classifiers import host_geometry


def _out(runner: Runner, x: Tensor) -> Tensor:
    return torch.as_tensor(next(iter(runner.infer({"x": x.contiguous()}).values()))).float()


def _replica_of(runner: Runner) -> OnnxReplica:
    """The replica of the ONNX file an ONNX Runtime runner executes (the int8 QDQ file of ``ort-cpu-int8``)."""
    runner.activate()
    path = getattr(runner, "path", None)
    if path is None:
        raise InputError(f"{runner.name}: this engine runs no ONNX file, so it has no replica (engines with one: "
                         "the ONNX Runtime engines, ort-*)")
    return OnnxReplica(path, name=runner.name)


class ReplicaPredictor(nn.Module):
    """images → logits through replicas: [codec graph → clamp] → host geometry → classifier graph."""

    def __init__(self, codec: OnnxReplica | None, classifier: OnnxReplica, preprocess: Any, host: bool) -> None:
        super().__init__()
        self.codec, self.classifier = codec, classifier
        self.pre, self.host = preprocess, host
        self.liccs_name = classifier.name if codec is None else codec.name

    def forward(self, x: Tensor) -> Tensor:
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

    @property
    def how(self) -> str:
        return {"classifier": "classifier graph", "liccs": "liccs graph",
                "reconstruct": "reconstruct graph + host resize + classifier graph",
                "deployed": "deployed codec (real bitstreams) + classifier graph"}[self.kind]

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


def routes(ctx: Context, engine: str, exports: Exports, targets: list[str] | None = None) -> dict[str, Route]:
    """Target → its :class:`Route` on ``engine`` (every transfer target, or ``targets``)."""
    pre = ctx.classifier.preprocess.cfg
    calib = ctx.calibration()
    cache = exports.cache
    clf = runner_for(engine, classifier_graph(ctx.classifier), cache,
                     calibration=[{"x": host_geometry(calib, pre).numpy()}])
    out: dict[str, Route] = {}
    at_crop = tuple(ctx.images.shape[-2:]) == (pre.crop, pre.crop)
    for t in targets if targets is not None else ctx.names.targets:
        if t == ctx.cfg.models.classifier:
            out[t] = Route("classifier", clf, pre)
            continue
        codec = ctx.codecs[t]
        graph = liccs_graph(codec, ctx.classifier)
        if isinstance(graph, str):  # the deployed codec of the export stage; built here in a task's worker
            d = exports.deployed.get(engine, {}).get(t) or DeployedCodec.on_engine(codec, engine, cache,
                                                                                 calibration_images=calib)
            out[t] = Route("deployed", clf, pre, deployed=d)
        elif at_crop:
            r = runner_for(engine, graph, cache, calibration=[{"x": calib.numpy()}])
            out[t] = Route("liccs", clf, pre, graph=r)
        else:
            rec = runner_for(engine, codec_graphs(codec)[0]["reconstruct"], cache, calibration=[{"x": calib.numpy()}])
            out[t] = Route("reconstruct", clf, pre, graph=rec)
    return out


def predictors(ctx: Context, engine: str,
               exports: Exports) -> tuple[dict[str, Callable[[Tensor], Any]], dict[str, str]]:
    """(target → images-to-logits on ``engine``, target → how it runs there)."""
    rs = routes(ctx, engine, exports)
    return {t: r.predict for t, r in rs.items()}, {t: r.how for t, r in rs.items()}
