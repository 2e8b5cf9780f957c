"""Per-stage profiles on every engine: g_a, h_a, h_s, g_s, entropy encode/decode, classifier, end to end.

One codec per architecture is profiled (the first of each in ``models.codecs``: the qualities of one
architecture share their networks' shapes, so their timings differ only by the entropy coder's work).
Stage inputs are real images (Kodak crops at each sweep resolution); the entropy coder is CompressAI's,
on the CPU, for every engine. The classifier runs at its crop size after a host-side resize (not timed).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from liccs.config import ConfigError, RunConfig
from liccs.core import resize_center_crop
from liccs.core.progress import tqdm
from liccs.data import kodak, to_float
from liccs.engines import ENGINES, runner_for
from liccs.engines.codec import DeployedCodec
from liccs.export.graphs import classifier_graph, stage_feeds
from liccs.profiling.flops import PRECISION_DTYPES, add_rates, ceiling_skip_reason, count_flops, matmul_ceiling
from liccs.profiling.profile import dominant_stages, growth_table, in_sequence, sweep
from liccs.profiling.timer import TimerConfig
from liccs.stage import Context, Exports, Names, Results, StageBase, StageResult, TableSpec, register
from liccs.stages.deployments import classifier_engine, device_engine, emulated_engine
from liccs.stages.profile_copy import copy_compute_table
from liccs.zoo.classifiers import host_geometry, to_geometry

#: calls of each stage in one compress + decompress + classify (h_s and the index search: encoder and decoder)
RUNS = {"h_s": 2, "build_indexes": 2}
#: what ``profile.stages`` may name (a stage a codec lacks, such as a factorized codec's h_s, is left out)
PROFILE_STAGES = ("g_a", "h_a", "h_s", "g_s", "build_indexes", "entropy_encode", "entropy_decode", "classifier")


@functools.lru_cache(maxsize=8)
def sweep_images(batch: int, hw: tuple[int, int]) -> Tensor:
    """``batch`` real images at ``hw``: Kodak images resized (shorter side ≥ the larger of hw) and centre-cropped."""

    src = kodak()
    side = max(hw)
    out = []
    for i in range(batch):
        x = resize_center_crop(to_float(src.read(i % len(src)))[None], side, side)
        top, left = (side - hw[0]) // 2, (side - hw[1]) // 2
        out.append(x[..., top:top + hw[0], left:left + hw[1]])
    return torch.cat(out).clamp_(0, 1).contiguous()  # resampling rounds a hair past 1.0 at times


@torch.no_grad()
def coder_stages(codec: nn.Module, d: DeployedCodec, x: Tensor,
                 compressai: bool = False) -> dict[str, Callable[[], Any]]:
    """entropy_encode / entropy_decode (and, behind a hyperprior, build_indexes: the scales' table indexes, computed
    once by the encoder and once by the decoder) callables of ``codec``'s CPU coder on the latents of images ``x``:
    the deployed codec's, or CompressAI's own ``compress``/``decompress``/``build_indexes`` (``compressai``); the
    family's coder says which (:meth:`liccs.engines.coders.Coder.profile_calls`)."""
    return d.coder.profile_calls(codec, d, x, compressai)


def _profiled(ctx: Context) -> list[str]:
    first: dict[str, str] = {}
    for n in ctx.names.codecs:
        first.setdefault(n.split("@")[0], n)
    return list(first.values())


def run_profiles(ctx: Context, exports: Exports, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Sweep every available engine × profiled codec; returns latency, sweep, growth, dominant and rates tables."""

    p = ctx.cfg.profile
    tcfg = TimerConfig(warmup=p.warmup, min_iters=p.min_iters, min_duration_s=p.min_duration_s,
                       device=ctx.cfg.run.device)
    pre = ctx.classifier.preprocess.cfg
    wanted = set(p.stages)
    frames: list[pd.DataFrame] = []
    sequences: list[dict[str, Any]] = []
    jobs = [(e, n) for e, ds in exports.deployed.items() if not emulated_engine(ctx.cfg, e)
            for n in _profiled(ctx) if n in ds]
    for engine, name in tqdm(jobs, desc="profile", disable=not progress):
        d = exports.deployed[engine][name]
        codec = ctx.codecs[name]
        # no spinning, as in the deployed codec: in the end-to-end row torch work follows every classifier call, and
        # ONNX Runtime threads spinning after it held the cores (measured: +10% end to end on ort-cpu, 256², q1)
        clf_runner = runner_for(classifier_engine(ctx.cfg, engine), classifier_graph(ctx.classifier), exports.cache,
                                calibration=[{"x": host_geometry(ctx.images, pre).numpy()}], spinning=False)

        def make(b: int, hw: tuple[int, int], d: DeployedCodec = d, codec: nn.Module = codec,
                 clf_runner: Any = clf_runner) -> dict[str, Any]:
            x = sweep_images(b, hw)
            feeds = stage_feeds(codec, x)
            stages: dict[str, Any] = {s: (d.runners[s], feeds[s]) for s in ("g_a", "h_a", "h_s", "g_s")
                                      if s in d.runners and s in wanted}
            stages.update({k: v for k, v in coder_stages(codec, d, x).items() if k in wanted})
            if "classifier" in wanted:
                stages["classifier"] = (clf_runner, {"x": host_geometry(x, pre)})
            return stages

        def e2e(b: int, hw: tuple[int, int], d: DeployedCodec = d, clf_runner: Any = clf_runner) -> Any:
            x = sweep_images(b, hw)

            def run() -> Any:
                out = d.decompress(**{k: v for k, v in d.compress(x).items()})["x_hat"]
                return clf_runner.infer({"x": host_geometry(out, pre)})
            return run

        with clf_runner:  # this stage's own runner: released once its engine is swept
            df = sweep(make, p.batch_sizes, [tuple(r) for r in p.resolutions], tcfg, make_end_to_end=e2e,
                       meta={"engine": engine, "codec": name}, env=False, progress=False)
            frames.append(df)
            b0, hw0 = p.batch_sizes[0], tuple(p.resolutions[0])
            try:
                seq = in_sequence(make(b0, hw0), e2e(b0, hw0), rounds=max(10, 2 * p.min_iters), warmup=p.warmup,
                                  runs=RUNS)
            except torch.cuda.OutOfMemoryError:  # recorded as missing, as the sweep records its point
                torch.cuda.empty_cache()
                continue
            sequences.append({"engine": engine, "codec": name, "in_sequence_e2e_ms": seq["end_to_end_ms"],
                              "in_sequence_sum_ms": seq["stage_sum_ms"], "e2e_over_sequence": seq["e2e_over_sum"],
                              "in_sequence_rounds": seq["rounds"]})
    if not frames:
        return {}
    table = pd.concat(frames, ignore_index=True)
    b0, hw0 = p.batch_sizes[0], tuple(p.resolutions[0])
    first = table[(table["batch_size"] == b0) & (table["height"] == hw0[0]) & (table["width"] == hw0[1])]
    latency = rates(ctx, first, b0, hw0)
    out = {"latency": latency, "sweep": table,
           "growth": growth_table(table, by=("engine", "codec", "stage", "batch_size")),
           "dominant": _with_sequences(dominant_stages(first, by=("engine", "codec"), runs=RUNS), sequences)}
    cc = copy_compute_table(ctx, _profiled(ctx), sweep_images(b0, hw0), tcfg)
    if not cc.empty:
        out["copy_compute"] = cc
    return out


def _with_sequences(dominant: pd.DataFrame, sequences: list[dict[str, Any]]) -> pd.DataFrame:
    """The dominant table with each (engine, codec)'s in-sequence end to end and stage sum beside it."""
    if dominant.empty or not sequences:
        return dominant
    return dominant.merge(pd.DataFrame(sequences), on=["engine", "codec"], how="left")


def engine_ceiling(engine: str, n: int, cache: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """The dense matmul rate of the device and precision ``engine`` computes in (its spec's precision: int8 engines
    against the int8 rate), measured once per (device, precision) in this run, with a ``label`` naming it.

    Where this CPU has no such ceiling (int8 without VNNI/AMX-INT8: :func:`ceiling_skip_reason`), or a GPU's int8
    matmul fails, ``gflops`` is None and ``label`` says why: the rows' fractions stay empty rather than being
    taken against another precision's ceiling.
    """
    spec = ENGINES.get(engine)
    device = "cuda" if spec.device == "cuda" else "cpu"
    key = (device, spec.precision)
    if key not in cache:
        why = ceiling_skip_reason(spec.precision, device)
        try:
            c = None if why else matmul_ceiling(n, dtype=PRECISION_DTYPES[spec.precision], device=device,
                                                config=TimerConfig(warmup=1, min_iters=5, min_duration_s=0.3,
                                                                   device=device))
        except RuntimeError as e:  # torch._int_mm on a GPU without int8 tensor cores
            why = f"no {spec.precision} ceiling on {device}: {str(e).splitlines()[0][:200]}"
            c = None
        cache[key] = ({"gflops": None, "label": why} if c is None
                      else c | {"label": f"{c['device']} {c['dtype']} matmul n={c['n']}"})
    return cache[key]


def rates(ctx: Context, latency: pd.DataFrame, batch: int, hw: tuple[int, int]) -> pd.DataFrame:
    """FLOPs of each network stage at (batch, hw), the matmul ceiling of each engine's device and precision,
    achieved / ceiling per row."""
    x = sweep_images(batch, hw)
    out = []
    ceilings: dict[tuple[str, str], dict[str, Any]] = {}
    counted: dict[str, dict[str, int]] = {}
    for (engine, name), g in latency.groupby(["engine", "codec"], sort=False):
        if name not in counted:  # the same on every engine
            codec = ctx.codecs[name]
            feeds = stage_feeds(codec, x)
            flops = {s: count_flops(getattr(codec, s), *feeds[s].values()) for s in ("g_a", "h_a", "h_s", "g_s")
                     if s in feeds}
            flops["classifier"] = count_flops(ctx.classifier, to_geometry(x, ctx.classifier.preprocess.cfg))
            flops["end-to-end"] = sum(flops.values())
            counted[name] = flops
        flops = counted[name]
        ceiling = engine_ceiling(device_engine(ctx.cfg, str(engine)), ctx.cfg.profile.matmul_n, ceilings)
        out.append(add_rates(g, flops, ceiling["gflops"]).assign(
            ceiling_gflops=ceiling["gflops"] or float("nan"), ceiling=ceiling["label"]))
    return pd.concat(out, ignore_index=True)


class ProfileStage(StageBase):
    """Per-stage latency on every exported engine, the batch × resolution sweep, growth, FLOPs and ceilings."""

    name, section, order = "profile", "profile", 20
    tables = (
        TableSpec("dominant", "Which stage dominates, per engine and codec (first sweep point); end to end against "
                  "the stages summed as one compress + decompress + classify runs them (h_s twice): e2e_over_sum "
                  "against each stage timed back to back (hot), e2e_over_sequence against the stages called in "
                  "pipeline order, interleaved with the end-to-end calls in the same rounds (what lies outside "
                  "the stages: padding, z's quantization, index checksums, framing).", order=10),
        TableSpec("latency", "Per-stage latency at the first sweep point, with FLOPs and achieved / matmul ceiling.",
                  ("engine", "codec", "stage", "batch_size", "height", "width", "p50_ms", "p90_ms", "p99_ms",
                   "min_ms", "images_per_s", "gflop", "achieved_gflops", "ceiling", "fraction_of_ceiling", "share"),
                  order=40),
        TableSpec("sweep", "Batch × resolution sweep.", ("engine", "codec", "stage", "batch_size", "height", "width",
                                                         "p50_ms", "images_per_s", "megapixels_per_s"), order=41),
        TableSpec("copy_compute", "CUDA runs: PyTorch engines' stages as host→device copy, compute, device→host "
                  "copy, eager and as CUDA-graph replay (first sweep point).",
                  ("engine", "codec", "stage", "cuda_graph", "batch_size", "height", "width", "p50_ms", "h2d_p50_ms",
                   "compute_p50_ms", "d2h_p50_ms", "peak_device_mib", "error"), order=42),
        TableSpec("growth", "Growth of time with pixels: p50 ≈ a·pixels^b (b = 1: linear).", order=43),
    )

    def check(self, cfg: RunConfig, names: Names) -> None:
        for i, stage in enumerate(cfg.profile.stages):
            if stage not in PROFILE_STAGES:
                raise ConfigError(f"profile.stages[{i}]: unknown stage {stage!r}; valid: {', '.join(PROFILE_STAGES)}")

    def run(self, ctx: Context, results: Results) -> StageResult:
        tables = run_profiles(ctx, results.exports, ctx.progress)
        dominant = tables.get("dominant")
        notes = ["Dominant stage: " + "; ".join(dominant["summary"])] if dominant is not None and len(dominant) else []
        skipped = {f"profile:{e}": f"runs on {emu}, an emulated precision: its times say nothing of the precision "
                   "it emulates" for e in results.exports.deployed if (emu := emulated_engine(ctx.cfg, e))}
        return StageResult(tables, notes=notes, skipped=skipped)


register(ProfileStage())
