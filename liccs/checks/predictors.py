"""Predict functions of every transfer target on one engine: images → logits through deployed graphs.

A target's predict function on an engine is, by what the target is:

- a non-autoregressive codec whose images are at the classifier's crop: the ``liccs`` graph
  (codec → classifier, one artifact);
- a non-autoregressive codec at another size (the mini zoo's 64×64 CIFAR codecs in front of a 32×32
  classifier): the ``reconstruct`` graph, the classifier's resize on the host, the ``classifier`` graph;
- an autoregressive codec (no one-graph decoder): the deployed codec's real bitstreams, then the classifier
  graph;
- the classifier alone: the ``classifier`` graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from liccs.engines import Runner, runner_for
from liccs.engines.codec import DeployedCodec
from liccs.export.graphs import classifier_graph, codec_graphs, liccs_graph
from liccs.stage import Context, Exports
from liccs.zoo.classifiers import host_geometry


def _out(runner: Runner, x: Tensor) -> Tensor:
    return torch.as_tensor(next(iter(runner.infer({"x": x.contiguous()}).values()))).float()


def predictors(ctx: Context, engine: str,
               exports: Exports) -> tuple[dict[str, Callable[[Tensor], Any]], dict[str, str]]:
    """(target → images-to-logits on ``engine``, target → how it runs there)."""
    pre = ctx.classifier.preprocess.cfg
    calib = ctx.calibration()

    def host(x: Tensor) -> Tensor:
        return host_geometry(x, pre)

    cache = exports.cache
    clf = runner_for(engine, classifier_graph(ctx.classifier), cache, calibration=[{"x": host(calib).numpy()}])
    fns: dict[str, Callable[[Tensor], Any]] = {}
    how: dict[str, str] = {}
    at_crop = tuple(ctx.images.shape[-2:]) == (pre.crop, pre.crop)
    for t in ctx.names.targets:
        if t == ctx.cfg.models.classifier:
            fns[t], how[t] = (lambda x: _out(clf, host(x))), "classifier graph"
            continue
        codec = ctx.codecs[t]
        graph = liccs_graph(codec, ctx.classifier)
        if isinstance(graph, str):  # the deployed codec of the export stage; built here in a task's worker
            d = exports.deployed.get(engine, {}).get(t) or DeployedCodec.on_engine(codec, engine, cache,
                                                                                 calibration_images=calib)
            fns[t] = lambda x, d=d: _out(clf, host(d.decompress(**d.compress(x))["x_hat"]))
            how[t] = "deployed codec (real bitstreams) + classifier graph"
        elif at_crop:
            r = runner_for(engine, graph, cache, calibration=[{"x": calib.numpy()}])
            fns[t], how[t] = (lambda x, r=r: _out(r, x)), "liccs graph"
        else:
            rec = runner_for(engine, codec_graphs(codec)[0]["reconstruct"], cache, calibration=[{"x": calib.numpy()}])
            fns[t] = lambda x, rec=rec: _out(clf, host(_out(rec, x).clamp(0, 1)))
            how[t] = "reconstruct graph + host resize + classifier graph"
    return fns, how
