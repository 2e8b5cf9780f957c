"""The adversarial images (float and uint8-rounded) through every deployed engine × target model.

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

import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from liccs.engines import ENGINES, EngineUnavailable, Runner, runner_for
from liccs.export.graphs import classifier_graph, codec_graphs, liccs_graph
from liccs.profiling.transfer import gap_summary, transfer_gap, transfer_matrix
from liccs.run.exports import Exports, calibration
from liccs.run.setup import Context


def _out(runner: Runner, x: Tensor) -> Tensor:
    return torch.as_tensor(next(iter(runner.infer({"x": x.contiguous()}).values()))).float()


def predictors(ctx: Context, engine: str,
               exports: Exports) -> tuple[dict[str, Callable[[Tensor], Any]], dict[str, str]]:
    """(target → images-to-logits on ``engine``, target → how it runs there)."""
    from liccs.zoo.classifiers import to_geometry

    pre = ctx.classifier.preprocess.cfg
    calib = calibration(ctx)

    def host(x: Tensor) -> Tensor:
        return to_geometry(x, pre).contiguous()

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
        if isinstance(graph, str):
            d = exports.deployed[engine][t]
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


def run_transfer(ctx: Context, adversarial: dict[str, Tensor], exports: Exports,
                 progress: bool = True) -> dict[str, pd.DataFrame]:
    """Transfer table (engine × source × target × variant), gaps against the reference engine, and their summary."""
    tc = ctx.cfg.transfer
    engines = ctx.names.engines("transfer")
    engines = [tc.reference_engine] + [e for e in engines if e != tc.reference_engine]
    targets = None
    if ctx.cfg.attack.targeted:
        from liccs.run.attacks import target_labels

        targets = target_labels(ctx)
    frames, reference, routes = [], None, []
    for engine in tqdm(engines, desc="transfer engines", disable=not progress):
        try:
            fns, how = predictors(ctx, engine, exports)
        except EngineUnavailable as e:
            exports.failed[f"{engine}:transfer"] = str(e)
            continue
        routes += [{"engine": engine, "target": t, "route": r} for t, r in how.items()]
        table, preds = transfer_matrix(adversarial, ctx.images, ctx.labels, fns, engine=engine, reference=reference,
                                       variants=tc.variants, batch_size=tc.batch_size, target_labels=targets,
                                       progress=progress)
        if engine == tc.reference_engine:
            reference = preds
        frames.append(table)
    table = pd.concat(frames, ignore_index=True)
    out = {"transfer": table, "transfer_routes": pd.DataFrame(routes)}
    if table["engine"].nunique() > 1:
        gaps = transfer_gap(table, reference_engine=tc.reference_engine,
                            precision={e: ENGINES.get(e).precision for e in engines})
        out["transfer_gap"] = gaps.rename(columns={"asr": "asr_engine"})  # one ASR heatmap set is enough
        out["gap_summary"] = gap_summary(gaps)
    return out


def whitebox(table: pd.DataFrame, reference_engine: str) -> pd.DataFrame:
    """The diagonal: each source attacked and evaluated on itself, per engine and variant."""
    diag = table[table["source"] == table["target"]]
    cols = ["engine", "variant", "source", "clean_acc", "adv_acc", "asr", "n_clean_correct", "fooling_rate"]
    return diag[cols].reset_index(drop=True) if not diag.empty else pd.DataFrame(columns=cols)

