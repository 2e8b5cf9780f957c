"""Which layer holds a stage back: each compute layer's time on each CPU engine against this CPU's ceiling.

The stage budget (``benchmarks/deployed_codec.py``) says g_a and g_s run at about 0.6 of the fp32 matmul ceiling;
this asks which of their layers do. bmshj2018-hyperprior@q3 and mbt2018-mean@q3 (full CompressAI sizes, RANDOM
weights, seed 0) at Kodak's 768×512, batch 1, on ort-cpu and ov-cpu, the exported ONNX graphs of the deployed codec.

Per layer: multiply-adds from the ONNX graph (:func:`liccs.export.quantize.compute_macs`), time from the engine's
own profiler (ONNX Runtime ``enable_profiling``, OpenVINO ``PERF_COUNT``; median over the rounds), matched to the
graph's compute nodes in execution order (these stages are chains; a count mismatch is an error). Element-wise
work, reorders and the rest are one ``other`` row. The stage's time without profiling is reported beside the sum of
its profiled nodes.

"Stages as deployed": each stage as the deployed codec runs it on each engine, and ``g_s`` split (its output layer on
ONNX Runtime, ``ov-cpu>ort-cpu``), timed unprofiled in interleaved rounds (one call of each per round,
:func:`liccs.profiling.timer.measure_interleaved`), median and best of the rounds. The ceiling is a best of repeats
(robust to load: load only lowers it), so ``of ceiling (best)`` compares a stage's best with the ceiling's best;
``of ceiling (median)`` is the stricter figure. (The best-of column was added
after the median stage times on this shared CPU had been seen to swing by 10-15% between runs.)

"g_s, output layer free": ``g_s`` with its 128 → 3 output layer replaced by a
pixel shuffle of its input's first channels (the same output shape, next to no work), timed in the same rounds and
divided by the real ``g_s``'s FLOPs. No rewrite of the output layer (sub-pixel, four-phase, Col2Im, padded
channels, another engine) can make ``g_s`` faster than this, so its ``of ceiling`` bounds what they can reach.

Ceiling: :func:`liccs.profiling.flops.robust_ceiling`, before and after (flagged when it moved
more than 20%; the higher is used). Load average recorded.

    nice python benchmarks/layer_budget.py     # → benchmarks/results/layer_budget.{json,md,manifest.json}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's liccs

from liccs.core.manifest import git_commit, manifest, write_json  # noqa: E402
from liccs.engines.factory import runner_for  # noqa: E402
from liccs.export.cache import ArtifactCache  # noqa: E402
from liccs.export.graphs import GraphSpec, codec_graphs, module_hash, split_tail, stage_feeds  # noqa: E402
from liccs.export.onnx import OnnxFromTorch, load_onnx  # noqa: E402
from liccs.export.quantize import COMPUTE_OPS, compute_macs  # noqa: E402
from liccs.profiling.flops import ceiling_moved, robust_ceiling  # noqa: E402
from liccs.profiling.timer import TimerConfig, measure, measure_interleaved  # noqa: E402
from liccs.report.tables import to_markdown  # noqa: E402
from liccs.zoo import load_codec  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
OV_COMPUTE = ("Convolution", "ConvolutionBackpropData", "GroupConvolution", "MatMul", "FullyConnected")
ORT_COMPUTE = ("Conv", "ConvTranspose", "FusedConv", "NchwcConv", "QLinearConv", "MatMul", "Gemm")
FREE_OUTPUT = "g_s, output layer free"


class _FreeOutput(nn.Module):
    """Stand-in for a stride-2 output layer: the first ``4 * channels`` inputs pixel-shuffled (no arithmetic)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(x[:, :4 * self.channels], 2)


def free_output(g_s: GraphSpec) -> GraphSpec:
    """``g_s`` whose last layer (a stride-2 transposed convolution) costs nothing: a bound on its rewrites."""
    head, tail = split_tail(g_s)
    last = tail.module.body[-1]
    if not (isinstance(last, nn.ConvTranspose2d) and last.stride == (2, 2)):
        raise SystemExit(f"{g_s.label}: the output layer is {type(last).__name__}, not a stride-2 transposed conv")
    module = type(head.module)(nn.Sequential(*head.module.body, _FreeOutput(last.out_channels))).eval()
    return GraphSpec(g_s.model, f"{g_s.name}.free_output", module, g_s.inputs, g_s.outputs,
                     module_hash(module, g_s.source_hash, "free_output"), notes=[*g_s.notes, FREE_OUTPUT])


def ort_layers(path: Path, feed: dict[str, np.ndarray], rounds: int) -> tuple[list[float], float, float]:
    """(median ms per compute node in execution order, median ms of everything else, median stage ms unprofiled)."""
    import onnxruntime as ort

    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    stage = _timed(lambda: plain.run(None, feed), rounds)
    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.enable_profiling, so.profile_file_prefix = True, str(Path(d) / "p")
        s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        for _ in range(2 + rounds):
            s.run(None, feed)
        events = json.loads(Path(s.end_profiling()).read_text())
    flat = [(e["args"]["op_name"], e["dur"] / 1e3) for e in events
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_run, rest = divmod(len(flat), 2 + rounds)
    if rest:
        raise SystemExit(f"{path}: {len(flat)} kernel events are not {2 + rounds} equal runs")
    rounds_ = [flat[i * per_run:(i + 1) * per_run] for i in range(2, 2 + rounds)]
    return _split(rounds_, ORT_COMPUTE) + (stage,)


def ov_layers(path: Path, feed: dict[str, np.ndarray], rounds: int) -> tuple[list[float], float, float]:
    import openvino as ov

    core = ov.Core()
    cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    plain = core.compile_model(core.read_model(str(path)), "CPU", cfg).create_infer_request()
    stage = _timed(lambda: plain.infer(feed), rounds)
    req = core.compile_model(core.read_model(str(path)), "CPU", cfg | {"PERF_COUNT": True}).create_infer_request()
    for _ in range(2):
        req.infer(feed)
    rounds_ = []
    for _ in range(rounds):
        req.infer(feed)
        rounds_.append([(p.node_type, p.real_time.total_seconds() * 1e3) for p in req.profiling_info
                        if p.status.name == "EXECUTED"])
    return _split(rounds_, OV_COMPUTE) + (stage,)


def _timed(fn: Any, rounds: int) -> float:
    """Median ms of ``rounds`` calls after 2 warm-ups (liccs's timer)."""
    return 1e3 * measure(fn, TimerConfig(warmup=2, min_iters=rounds, min_duration_s=0.0)).latency.p50


def _split(rounds: list[list[tuple[str, float]]], compute: tuple[str, ...]) -> tuple[list[float], float]:
    comp = [[ms for op, ms in r if op in compute] for r in rounds]
    other = [sum(ms for op, ms in r if op not in compute) for r in rounds]
    return [statistics.median(c[i] for c in comp) for i in range(len(comp[0]))], statistics.median(other)


def deployed_stages(name: str, graphs: dict[str, Any], feeds: dict[str, dict[str, torch.Tensor]],
                    stages: list[str], engines: list[str], cache: ArtifactCache, rounds: int) -> list[dict[str, Any]]:
    """Each stage on each engine (and g_s split, ``ov-cpu>ort-cpu``) as the deployed codec runs it: interleaved
    rounds, median and best ms."""
    runners = {}
    for stage in stages:
        for engine in engines:
            runners[(stage, engine)] = runner_for(engine, graphs[stage], cache, spinning=False)
        if stage == "g_s" and {"ov-cpu", "ort-cpu"} <= set(engines):
            runners[(stage, "ov-cpu>ort-cpu")] = runner_for("ov-cpu>ort-cpu", graphs[stage], cache, spinning=False)
    calls = {}
    for (stage, engine), r in runners.items():
        r.activate()  # activation and the first call outside the timing
        r.infer(feeds[stage])
        calls[(stage, engine)] = lambda r=r, f=feeds[stage]: r.infer(f)
    samples = measure_interleaved(calls, TimerConfig(warmup=2, min_iters=rounds, min_duration_s=0.0))
    for r in runners.values():
        r.deactivate()
    return [{"model": name, "stage": stage, "engine": engine, "median_ms": 1e3 * statistics.median(v),
             "best_ms": 1e3 * min(v), "rounds": len(v)} for (stage, engine), v in samples.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["bmshj2018-hyperprior@q3", "mbt2018-mean@q3"])
    ap.add_argument("--stages", nargs="+", default=["g_a", "g_s"])
    ap.add_argument("--engines", nargs="+", default=["ort-cpu", "ov-cpu"])
    ap.add_argument("--size", type=int, nargs=2, default=[512, 768], metavar=("H", "W"))
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    commit = git_commit()  # before this script writes its (tracked) results
    load0, c0 = os.getloadavg(), robust_ceiling()
    torch.manual_seed(0)
    x = torch.rand(1, 3, *args.size)
    cache, rows, totals, deployed = ArtifactCache(), [], [], []
    measure = {"ort-cpu": ort_layers, "ov-cpu": ov_layers}
    for name in args.models:
        codec = load_codec(name, "random")
        graphs, feeds = codec_graphs(codec, with_reconstruct=False)[0], stage_feeds(codec, x)
        bound = ["g_s"] if "g_s" in args.stages else []
        for stage in bound:  # the bound on output-layer rewrites, in the same interleaved rounds
            graphs[FREE_OUTPUT], feeds[FREE_OUTPUT] = free_output(graphs[stage]), feeds[stage]
        deployed += deployed_stages(name, graphs, feeds, args.stages + [FREE_OUTPUT] * len(bound), args.engines,
                                    cache, args.rounds)
        gflop = {}
        for stage in args.stages:
            path = OnnxFromTorch(graphs[stage], cache)().path
            feed = {k: v.numpy() for k, v in feeds[stage].items()}
            macs = compute_macs(path, {k: v.shape for k, v in feed.items()})
            gflop[stage] = 2 * sum(macs) / 1e9
            ops = [n.op_type for n in load_onnx(path, check=False).graph.node if n.op_type in COMPUTE_OPS]
            for engine in args.engines:
                ms, other, stage_ms = measure[engine](path, feed, args.rounds)
                if len(ms) != len(macs):
                    raise SystemExit(f"{name} {stage} on {engine}: {len(ms)} profiled compute kernels for "
                                     f"{len(macs)} compute nodes; cannot match them")
                for i, (m, t, op) in enumerate(zip(macs, ms, ops)):
                    rows.append({"model": name, "stage": stage, "engine": engine, "layer": i, "op": op,
                                 "gflop": 2 * m / 1e9, "ms": t})
                totals.append({"model": name, "stage": stage, "engine": engine, "stage_ms": stage_ms,
                               "profiled_sum_ms": sum(ms) + other, "compute_ms": sum(ms), "other_ms": other,
                               "gflop": 2 * sum(macs) / 1e9})
        for d in deployed:
            if d["model"] == name:
                d["gflop"] = gflop["g_s" if d["stage"] == FREE_OUTPUT else d["stage"]]
    c1 = robust_ceiling()
    ceiling = max(c0["gflops"], c1["gflops"])
    df, tot = pd.DataFrame(rows), pd.DataFrame(totals)
    df["of_ceiling"] = df["gflop"] / (df["ms"] / 1e3) / ceiling
    df["ms_at_0.8"] = df["gflop"] / (0.8 * ceiling) * 1e3
    tot["of_ceiling"] = tot["gflop"] / (tot["stage_ms"] / 1e3) / ceiling
    dep = pd.DataFrame(deployed)
    for k in ("median", "best"):
        dep[f"of_ceiling_{k}"] = dep["gflop"] / (dep[f"{k}_ms"] / 1e3) / ceiling
    load1, moved = os.getloadavg(), ceiling_moved(c0, c1)
    config = vars(args) | {"out": str(args.out), "weights": "random", "seed": 0}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "layer_budget.json", {"layers": df.to_dict("records"), "stages": tot.to_dict("records"),
                                                "deployed_stages": dep.to_dict("records"),
                                                "ceiling_before": c0, "ceiling_after": c1, "ceiling_used": ceiling,
                                                "loadavg_before": load0, "loadavg_after": load1})
    write_json(args.out / "layer_budget.manifest.json",
               manifest(config, started_at=commit, report="layer_budget", command="nice python " + " ".join(sys.argv)))
    md = [f"# Per-layer time against the ceiling ({args.size[1]}×{args.size[0]}, batch 1, random weights)", "",
          f"Ceiling (fp32 matmul, best of sizes × repeats): {c0['gflops']:.1f} GFLOP/s before, {c1['gflops']:.1f} "
          f"after, used {ceiling:.1f}" + (f"; **flagged: {moved}**" if moved else "") + f". Load average before/after "
          f"{load0[0]:.1f} / {load1[0]:.1f} on {os.cpu_count()} cores. Times: the engine's profiler, median of "
          f"{args.rounds} rounds; `stage ms`: the same graph unprofiled.", "", "## Stages as deployed", "",
          "Unprofiled, interleaved rounds (one call of each per round); `ov-cpu>ort-cpu`: g_s on OpenVINO, its output "
          "layer on ONNX Runtime. `of_ceiling_best` compares the best round with the ceiling (itself a best of "
          "repeats); `of_ceiling_median` is the stricter figure. `g_s, output layer free`: g_s with its output layer "
          "replaced by a pixel shuffle (no arithmetic), against the real g_s's FLOPs: no rewrite of that layer makes "
          "g_s faster than this row.", "", to_markdown(dep.round(3)), "",
          "## Stages, profiled", "",
          to_markdown(tot.round(3)), "", "## Layers", "", to_markdown(df.round(3)), ""]
    (args.out / "layer_budget.md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":
    main()
