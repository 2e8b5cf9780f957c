"""Per-operator profiles of the network stages on every engine (what ``trtexec --dumpProfile``,
``onnxruntime_perf_test -p`` and ``benchmark_app -pc`` show), with one Chrome trace per engine × stage.

Runs after the per-stage profile, at its smallest point only (the smallest batch size and resolution of the
sweep) and for a few runs, so that a default run grows by seconds: the stages of the first codec of each
architecture (as the profile), on every engine the run deployed (not the mixed deployments: their stages are
those engines'). Each operator table is checked against the stage's p50 from the sweep at the same point
(:func:`~liccs.profiling.op_tables.coverage`); the traces lie in ``traces/ENGINE.CODEC.STAGE.json`` of the
report folder (open them in https://ui.perfetto.dev or ``chrome://tracing``).
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import torch

from liccs.core.progress import tqdm
from liccs.engines import ENGINES, runner_for
from liccs.export.graphs import classifier_graph, stage_feeds
from liccs.profiling.op_runner import profile_runner
from liccs.profiling.op_tables import TOLERANCE, coverage, operator_table, trace_of
from liccs.profiling.operators import OperatorProfileUnavailable
from liccs.profiling.trace import write_trace
from liccs.report.tables import slug
from liccs.stage import Context, Results, StageBase, StageResult, TableSpec, register
from liccs.stages.deployments import classifier_engine
from liccs.stages.profile import sweep_images
from liccs.zoo.classifiers import host_geometry

#: the stages an engine runs (the entropy coder runs in Python on the CPU for every engine: no operators)
NETWORK_STAGES = ("g_a", "h_a", "h_s", "g_s", "classifier")


def operator_point(ctx: Context) -> tuple[int, tuple[int, int]]:
    """The batch size and resolution operators are profiled at: the sweep's smallest."""
    p = ctx.cfg.profile
    hw = min((tuple(r) for r in p.resolutions), key=lambda r: (r[0] * r[1], r))
    return min(p.batch_sizes), (int(hw[0]), int(hw[1]))


def _iterations(ctx: Context) -> tuple[int, int]:
    p = ctx.cfg.profile
    return max(1, min(2, p.warmup)), max(3, min(10, p.min_iters))


def _stage_ms(sweep: pd.DataFrame | None, engine: str, codec: str, stage: str, b: int, hw: tuple[int, int]) -> float:
    if sweep is None or sweep.empty:
        return float("nan")
    rows = sweep[(sweep["engine"] == engine) & (sweep["codec"] == codec) & (sweep["stage"] == stage)
                 & (sweep["batch_size"] == b) & (sweep["height"] == hw[0]) & (sweep["width"] == hw[1])]
    return float(rows["p50_ms"].iloc[0]) if len(rows) else float("nan")


def _ceiling(latency: pd.DataFrame | None, engine: str) -> float | None:
    if latency is None or latency.empty or "ceiling_gflops" not in latency.columns:
        return None
    values = latency.loc[latency["engine"] == engine, "ceiling_gflops"].dropna()
    return float(values.iloc[0]) if len(values) else None


def _profiled(ctx: Context) -> list[str]:
    first: dict[str, str] = {}
    for n in ctx.names.codecs:
        first.setdefault(n.split("@")[0], n)
    return list(first.values())


def run_operators(ctx: Context, results: Results) -> tuple[dict[str, pd.DataFrame], dict[str, str], float]:
    """Profile every (engine, codec, network stage); returns the tables, skipped items and the seconds it took."""
    start = time.perf_counter()
    exports, wanted = results.exports, set(ctx.cfg.profile.stages) & set(NETWORK_STAGES)
    b, hw = operator_point(ctx)
    warmup, iters = _iterations(ctx)
    sweep, latency = results.tables.get("sweep"), results.tables.get("latency")
    pre = ctx.classifier.preprocess.cfg
    x = sweep_images(b, hw)
    tables, rows, skipped = [], [], {}
    jobs = [(e, n) for e, ds in exports.deployed.items() if e in ENGINES.names() and not ENGINES.get(e).emulated
            for n in _profiled(ctx) if n in ds]
    skipped |= {f"operators:{e}": "an emulated precision: its operator times say nothing of the precision it "
                "emulates" for e in exports.deployed if e in ENGINES.names() and ENGINES.get(e).emulated}
    skipped |= {f"operators:{e}": "a deployment (stages on several engines): its operators are those of its "
                "engines, profiled where the run deploys them alone"
                for e in exports.deployed if e not in ENGINES.names()}
    for engine, name in tqdm(jobs, desc="operators", disable=not ctx.progress):
        d = exports.deployed[engine][name]
        feeds = stage_feeds(ctx.codecs[name], x)
        work: list[tuple[str, Any, dict[str, Any]]] = [(s, d.runners[s], feeds[s]) for s in NETWORK_STAGES
                                                       if s in wanted and s in d.runners and s in feeds]
        if "classifier" in wanted:
            clf = runner_for(classifier_engine(ctx.cfg, engine), classifier_graph(ctx.classifier), exports.cache,
                             calibration=[{"x": host_geometry(ctx.images, pre).numpy()}], spinning=False)
            work.append(("classifier", clf, {"x": host_geometry(x, pre)}))
        for stage, runner, feed in work:
            try:
                prof = profile_runner(runner, feed, iterations=iters, warmup=warmup, engine=engine)
            except OperatorProfileUnavailable as e:
                skipped[f"operators:{engine}:{stage}"] = str(e)
                continue
            stage_ms = _stage_ms(sweep, engine, name, stage, b, hw)
            meta = {"engine": engine, "codec": name, "stage": stage, "batch_size": b, "height": hw[0], "width": hw[1]}
            path = ctx.out / "traces" / f"{slug(engine)}.{slug(name)}.{stage}.json"
            write_trace(path, trace_of(prof, f"{engine} {name} {stage}", meta))
            tables.append(operator_table(prof, stage_ms, _ceiling(latency, engine)).assign(**meta))
            rows.append(meta | coverage(prof, stage_ms) | {"trace": str(path.relative_to(ctx.out)),
                                                           "artifact": str(getattr(runner, "path", "") or "")})
        if "classifier" in wanted:
            work[-1][1].deactivate()  # the classifier's runner is this stage's own
    seconds = time.perf_counter() - start
    out: dict[str, pd.DataFrame] = {}
    if tables:
        first = ["engine", "codec", "stage", "batch_size", "height", "width"]
        ops = pd.concat(tables, ignore_index=True)
        out["operators"] = ops[first + [c for c in ops.columns if c not in first]]
        out["operator_coverage"] = pd.DataFrame(rows)
    return out, skipped, seconds


class OperatorStage(StageBase):
    """Per-operator tables and Chrome traces of the network stages, at the profile's smallest point."""

    name, section, order = "operators", "profile", 21
    tables = (
        TableSpec("operator_coverage", "Per-operator profiles against the stage (smallest sweep point): operators "
                  f"summed per run (ops_ms, median over the runs) against the stage's timed p50 and against the "
                  f"profiled runs' own wall time; flagged when ops_over_stage is off 1 by more than {TOLERANCE:.0%}, "
                  "with what is missing; the Chrome trace of each (Perfetto, chrome://tracing).",
                  ("engine", "codec", "stage", "batch_size", "height", "width", "iterations", "calls", "ops_ms",
                   "stage_p50_ms", "profiled_wall_ms", "ops_over_stage", "ops_over_profiled_wall", "flagged", "missing",
                   "trace"), order=44),
        TableSpec("operators", "Operators per engine and stage, slowest first: calls, total over the profiled runs "
                  "and mean per call, share of the stage's p50, the precision and provider it ran in (OpenVINO's "
                  "exec_type, ONNX Runtime's kernel input type), GFLOP per call and fraction of the engine's matmul "
                  "ceiling.", ("engine", "codec", "stage", "op_type", "node", "calls", "total_ms", "mean_ms", "share",
                               "precision", "provider", "gflop", "fraction_of_ceiling"), order=45),
    )

    def run(self, ctx: Context, results: Results) -> StageResult:
        with torch.no_grad():
            tables, skipped, seconds = run_operators(ctx, results)
        cov = tables.get("operator_coverage")
        b, hw = operator_point(ctx)
        notes = [f"Per-operator profiles: {0 if cov is None else len(cov)} engine × stage profiles at batch {b}, "
                 f"{hw[0]}×{hw[1]}, {_iterations(ctx)[1]} runs each, took {seconds:.1f} s of extra run time "
                 "(Chrome traces in traces/)"]
        if cov is not None and cov["flagged"].any():
            bad = cov[cov["flagged"]]
            notes.append(f"Operator tables off their stage's time by more than {TOLERANCE:.0%}: "
                         + "; ".join(f"{r.engine} {r.stage} ({r.ops_over_stage:.0%})" for r in bad.itertuples())
                         + " (see operator_coverage: missing)")
        return StageResult(tables, notes=notes, skipped=skipped)


register(OperatorStage())
