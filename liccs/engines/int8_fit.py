"""Which layers of an int8 codec's transforms stay in fp32, chosen by measured rate-distortion cost.

The accuracy-aware loop of NNCF's ``quantize_with_accuracy_control`` (rank the quantized layers by what each
costs, return the worst to fp32 one at a time until the metric is within a bound), with a codec's metric:
the RD cost ``J = bpp + λ·255²·MSE`` (CompressAI's training loss at the codec's λ) of real bitstreams of the
calibration images, encoded and decoded by the deployed codec itself (its entropy coder, its fp32 table stages).

The bound is on ``ΔJ`` as a fraction of the fp32 codec's rate: at an RD-optimal operating point a distortion
change ``λ·ΔD`` costs what a rate change ``ΔR`` does, so ``ΔJ / R`` is the int8 codec's BD-rate to first order at
that point. Sensitivity of a layer: what ``J`` rises by when that layer alone runs in int8 (the per-layer
sensitivity analysis of post-training quantization), across ``g_a`` and ``g_s`` together (an int8 ``g_a`` costs
rate, an int8 ``g_s`` distortion). Ranked from the fp32 side, not by reverting layers of the all-int8 codec: one
catastrophic layer (a GDN's 1×1 convolution on 8-bit squares) makes every other layer's reversion noise. Then
layers go to int8 in order of cost per multiply-add (where int8 pays: the big layers), each kept in int8 only if the
codec, measured again, stays within the bound (a layer whose cost alone exceeds what is left is not tried; layers
under ``min_share`` of their stage's multiply-adds stay fp32).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import Tensor

from liccs.core.errors import InputError
from liccs.engines.address import EngineAddress
from liccs.engines.base import Runner, get_engine
from liccs.engines.factory import runner_for
from liccs.export.graphs import codec_graphs
from liccs.export.onnx import OnnxFromTorch, load_onnx
from liccs.export.quantize import COMPUTE_OPS, compute_macs, value_shapes

#: The stages an int8 codec quantizes (the table stages stay on the fp32 twin).
QUANTIZED_STAGES = ("g_a", "g_s")


def rd_cost(d: Any, images: Tensor, runners: Mapping[str, Runner], lmbda: float) -> tuple[float, float]:
    """(bpp, J) of ``images`` through the deployed codec ``d``'s real bitstreams with ``runners`` swapped in.

    bpp counts every framed string (the container's payload); J = bpp + λ·255²·MSE, means over images."""
    saved, d.runners = d.runners, dict(runners)
    try:
        out = d.compress(images)
        x_hat = d.decompress(**out)["x_hat"]
    finally:
        d.runners = saved
    px = images.shape[0] * images.shape[-2] * images.shape[-1]
    bpp = 8 * sum(len(s) for lst in out["strings"] for s in lst) / px
    mse = float(torch.mean((x_hat.clamp(0, 1) - images) ** 2))
    return bpp, bpp + lmbda * 255**2 * mse


def _indexed_onnx(runner: Runner) -> Path:
    """The ONNX graph whose compute-node order ``keep_fp32`` indexes for an activated int8 runner: its QDQ graph
    (ONNX Runtime), or the fp32 ONNX its OpenVINO IR was quantized from (the IR's ``source``)."""
    path = Path(runner.path)
    return path if path.suffix == ".onnx" else Path(runner.artifact.meta["source"])


def fit_int8(d: Any, engine: str, twin: str, graphs: Mapping[str, Any], feeds: Mapping[str, Mapping[str, Tensor]],
             images: Tensor, cache: Any, *, lmbda: float, tolerance: float, min_share: float = 0.05,
             exporter: str = "auto", progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Install in ``d.runners`` the int8 transforms with the most int8 layers found within ``tolerance``.

    Args:
        d: a :class:`~liccs.engines.codec.DeployedCodec` whose table stages already run on ``twin``.
        engine: the int8 engine (its runners take ``keep_fp32``); twin: its fp32 engine; exporter: as the codec's.
        graphs, feeds: the codec's stage graphs and their calibration inputs (:func:`stage_feeds`).
        images: the calibration images the cost is measured on.
        lmbda: the codec's λ (J = bpp + λ·255²·MSE); tolerance: the bound on ΔJ / fp32 bpp.
        min_share: layers with fewer multiply-adds than this share of their stage's stay fp32 (int8 would add its
            quantize/dequantize passes over the activations and save next to nothing).

    Returns the plan (also what ``d.int8_plan`` records): the fp32 layers per stage (compute-node indices,
    :class:`~liccs.export.quantize.Int8OnnxFromOnnx`'s ``keep_fp32``), each layer's sensitivity (ΔJ alone in int8)
    as a fraction of the fp32 rate, the fp32/all-int8/final costs and how many codecs were measured.
    """
    stages = [s for s in QUANTIZED_STAGES if s in graphs]
    calib = {s: [{k: v.numpy() for k, v in feeds[s].items()}] for s in stages}
    built: dict[tuple[str, tuple[int, ...]], Runner] = {}

    def int8(stage: str, keep: Sequence[int]) -> Runner:
        key = (stage, tuple(sorted(keep)))
        if key not in built:
            built[key] = runner_for(engine, graphs[stage], cache, exporter=exporter, calibration=calib[stage],
                                    spinning=False, keep_fp32=key[1])
            built[key].activate()
        return built[key]

    for s, r in d.runners.items():  # the stages the fit does not swap: the codec's own, kept active
        if s not in stages:
            r.activate()
    try:
        plan = _fit(d, stages, int8, twin, graphs, feeds, images, cache, lmbda=lmbda, tolerance=tolerance,
                    min_share=min_share, exporter=exporter, progress=progress)
    finally:  # release every transform measured but not installed
        installed = {id(d.runners[s]) for s in stages}
        for r in built.values():
            if id(r) not in installed:
                r.deactivate()
    return plan


def _fit(d: Any, stages: Sequence[str], int8: Callable[[str, Sequence[int]], Runner], twin: str,
         graphs: Mapping[str, Any], feeds: Mapping[str, Mapping[str, Tensor]], images: Tensor, cache: Any, *,
         lmbda: float, tolerance: float, min_share: float, exporter: str,
         progress: Callable[[str], None] | None) -> dict[str, Any]:
    """:func:`fit_int8`'s search, with ``int8(stage, keep)`` building (and activating) the int8 runners."""

    measured = 0

    def cost(keep: Mapping[str, Sequence[int]]) -> float:
        nonlocal measured
        measured += 1
        return rd_cost(d, images, d.runners | {s: int8(s, keep.get(s, ())) for s in stages}, lmbda)[1]

    with ExitStack() as fp32:  # the twin's transforms, for the fp32 cost only
        twins = {s: fp32.enter_context(runner_for(twin, graphs[s], cache, exporter=exporter, spinning=False))
                 for s in stages}
        bpp32, j32 = rd_cost(d, images, d.runners | twins, lmbda)
    budget = tolerance * bpp32
    share: dict[tuple[str, int], float] = {}
    for s in stages:
        runner = int8(s, ())
        macs = compute_macs(_indexed_onnx(runner), {k: tuple(v.shape) for k, v in feeds[s].items()})
        share |= {(s, i): m / sum(macs) for i, m in enumerate(macs)}
    layers = list(share)
    everything = {s: [i for t, i in layers if t == s and share[(t, i)] >= min_share] for s in stages}
    quantized: dict[str, list[int]] = {s: [] for s in stages}

    def keep_for(q: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
        return {s: [i for t, i in layers if t == s and i not in q[s]] for s in stages}

    j_all = cost(keep_for(everything))  # every layer worth quantizing in int8
    damage: dict[tuple[str, int], float] = {}
    j = j_all
    if j_all - j32 > budget:
        for s, i in [(t, i) for t in stages for i in everything[t]]:  # each layer alone in int8, the rest fp32
            if progress:
                progress(f"sensitivity {s}[{i}]")
            damage[(s, i)] = cost(keep_for({t: [i] if t == s else [] for t in stages})) - j32
        j = j32
        for s, i in sorted(damage, key=lambda layer: damage[layer] / share[layer]):  # cheapest per multiply-add
            if damage[(s, i)] > budget - (j - j32):
                continue  # alone it already spends more than what is left
            trial = {t: quantized[t] + ([i] if t == s else []) for t in stages}
            got = cost(keep_for(trial))
            if got - j32 <= budget:
                quantized, j = trial, got
    else:
        quantized = everything
    keep = keep_for(quantized)
    for s in stages:
        d.runners[s] = int8(s, keep[s])
    return {"lambda": lmbda, "tolerance": tolerance, "fp32_bpp": bpp32, "cost_fp32": j32, "cost_all_int8": j_all,
            "cost": j, "excess": (j - j32) / bpp32, "within": j - j32 <= budget,
            "fp32_layers": {s: sorted(keep[s]) for s in stages},
            "layers": {s: sum(1 for t, _ in layers if t == s) for s in stages},
            "macs_share": {f"{s}[{i}]": v for (s, i), v in share.items()},
            "sensitivity": {f"{s}[{i}]": g / bpp32 for (s, i), g in damage.items()}, "codecs_measured": measured + 1}


def _compute_signature(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    """(op type, weight shape) of each compute node of an ONNX graph, in graph order."""
    model = onnx.shape_inference.infer_shapes(load_onnx(path, check=False))
    shapes = value_shapes(model)
    return [(n.op_type, tuple(shapes.get(n.input[1], ()))) for n in model.graph.node if n.op_type in COMPUTE_OPS]


def plan_keep_fp32(d: Any, graph: Any, cache: Any = None, exporter: str = "auto") -> tuple[int, ...]:
    """The compute nodes of ``graph`` (a graph that contains the codec's stages, such as ``reconstruct`` or
    ``liccs``) that stay fp32 when it is quantized as the int8 deployed codec ``d`` runs: every node of a stage
    ``d`` runs on an fp32 engine (the table stages on the int8 engine's twin), and the layers of ``d.int8_plan``
    keeps in fp32. The nodes after the codec's (a classifier's) are quantized.

    The graph's compute nodes are matched to each stage's in order (g_a, h_a, h_s, g_s), by op type and weight
    shape; a stage on an fp32 engine that the graph does not compute (the scale hyperprior's ``reconstruct`` needs
    no hyper path) is skipped; a quantized stage that does not line up raises InputError."""
    stages = codec_graphs(d.codec, with_reconstruct=False, transposed="native")[0]
    plan = (d.int8_plan or {}).get("fp32_layers", {})
    combined = _compute_signature(OnnxFromTorch(graph, cache, exporter)().path)
    keep: list[int] = []
    at = 0
    for s in d.family.stages:
        if s not in stages or s not in d.runners:
            continue
        sig = _compute_signature(OnnxFromTorch(stages[s], cache, exporter)().path)
        fp32 = get_engine(EngineAddress.parse(d.runners[s].name).head).precision == "fp32"
        if combined[at:at + len(sig)] != sig:
            if s in QUANTIZED_STAGES and not fp32:
                raise InputError(f"{graph.label}: its compute nodes from {at} on are not {d.name}'s {s} "
                                 f"({len(sig)} nodes, first {sig[:1]}); the int8 plan cannot be mapped onto it")
            continue  # a table stage this graph does not compute
        keep += [at + i for i in range(len(sig)) if fp32 or i in plan.get(s, ())]
        at += len(sig)
    return tuple(keep)
