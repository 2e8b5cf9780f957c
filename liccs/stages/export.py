"""Export → parity, and the deployed codecs every later stage uses, and real-bitstream rate-distortion.

Artifacts (ONNX, int8 ONNX, ...) live in the artifact cache (``$LICCS_CACHE/artifacts``) under keys of
weights, code, precision and library versions, so a re-run rebuilds nothing. Reduced-precision engines
(int8, fp16, bf16) are judged by PSNR of images and top-1 agreement of logits, not by the fp32 engines'
max abs error (``export.max_abs_err``), which quantization exceeds by design.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import torch

from liccs.checks.parity import ParityRecord, Tolerance, check_codec, parity_images
from liccs.checks.rd import bd_rate_table
from liccs.config import ConfigError, RunConfig
from liccs.core.executor import Task
from liccs.core.progress import tqdm
from liccs.engines import ENGINES, EngineUnavailable
from liccs.engines.codec import DeployedCodec, bpp
from liccs.export.cache import ArtifactCache
from liccs.export.report import ExportReport
from liccs.pipeline import psnr
from liccs.stage import Context, Exports, Names, Results, StageBase, StageResult, TableSpec, register, task_resources
from liccs.stages.deployments import build_deployments, parse_deployments
from liccs.zoo import parse_codec

#: Reduced-precision engines' parity: images within 30 dB PSNR of PyTorch's, logits' top-1 agreement.
REDUCED_PSNR_DB = 30.0


def tolerances(ctx: Context) -> tuple[Tolerance, dict[str, Tolerance]]:
    """The config's tolerance, and the looser one of each reduced-precision engine."""
    base = Tolerance(max_abs_err=ctx.cfg.export.max_abs_err, min_top1_agreement=ctx.cfg.export.min_top1_agreement)
    reduced = Tolerance(max_abs_err=math.inf, min_psnr_db=REDUCED_PSNR_DB,
                        min_top1_agreement=ctx.cfg.export.min_top1_agreement)
    return base, {e: reduced for e in ENGINES.names() if ENGINES.get(e).precision != "fp32"}


def export_and_check(codec: torch.nn.Module, engines: list[str], batches: list[torch.Tensor],
                     classifier: torch.nn.Module, base: Tolerance, per_engine: dict[str, Tolerance],
                     cache: ArtifactCache, calib: torch.Tensor) -> tuple[list[ParityRecord], ExportReport]:
    """One codec's export (with the classifier and LICCS graphs) and parity on every engine (a task)."""
    return check_codec(codec, engines, batches, classifier=classifier, tolerance=base, per_engine=per_engine,
                       cache=cache, calibration_images=calib, progress=False)


def exported(cfg: RunConfig, codecs: list[str]) -> list[str]:
    """The codecs the export stage exports and deploys: ``export.codecs`` (in the run's order), or every one."""
    return [c for c in codecs if c in cfg.export.codecs] if cfg.export.codecs else list(codecs)


def check_exported(cfg: RunConfig) -> None:
    """``export.codecs``: each one of ``models.codecs``, no repeats; not with the stages that use every codec's
    deployed codecs (profile, attack, robustness, transfer)."""
    seen = set()
    for i, c in enumerate(cfg.export.codecs):
        if c not in cfg.models.codecs:
            raise ConfigError(f"export.codecs[{i}]: {c!r} is not one of models.codecs "
                              f"({', '.join(cfg.models.codecs)})")
        if c in seen:
            raise ConfigError(f"export.codecs[{i}]: {c!r} is listed twice")
        seen.add(c)
    on = [s for s in ("profile", "attack", "robustness", "transfer") if getattr(cfg, s).enabled]
    if cfg.export.codecs and on:
        raise ConfigError(f"export.codecs limits the export to {len(seen)} codec(s), but the {', '.join(on)} "
                          f"stage(s) use every codec's deployed codecs: set export.codecs = [] or disable them")


def run_exports(ctx: Context, progress: bool = True) -> Exports:
    """Export every codec of :func:`exported` (with the classifier and LICCS graphs), check parity on every
    available engine."""
    names = exported(ctx.cfg, ctx.names.codecs)
    engines = ctx.names.engines("export")
    base, per_engine = tolerances(ctx)
    cache = ArtifactCache()
    batches = parity_images()
    calib = ctx.calibration()
    tasks = [Task(f"export:{name}", name, export_and_check,
                  (ctx.codecs[name], engines, batches, ctx.classifier, base, per_engine, cache, calib),
                  **task_resources(ctx.cfg) | {"num_gpus": int(any(ENGINES.get(e).device == "cuda" for e in engines))})
             for name in names]
    done = ctx.executor.run(tasks, "export + parity", progress)
    records, report = [], ExportReport()
    for name in names:  # in the config's order; a codec whose task failed is named in Failed
        if f"export:{name}" in done:
            recs, rep = done[f"export:{name}"]
            records += recs
            report.records += rep.records
    parity = pd.DataFrame([{k: v for k, v in r.to_dict().items() if k not in ("tolerance", "extra", "shapes")}
                           | {"failures": "; ".join(r.failures)} for r in records])
    export = pd.DataFrame([r.__dict__ for r in report.records]) if report.records else pd.DataFrame()
    out = Exports(parity, export, cache=cache)
    for engine in tqdm(engines, desc="deployed codecs", disable=not progress):
        out.deployed[engine] = {}
        for name in names:
            try:
                out.deployed[engine][name] = DeployedCodec.on_engine(ctx.codecs[name], engine, cache,
                                                                     calibration_images=calib)
            except EngineUnavailable as e:
                out.failed[f"{engine}:{name}"] = str(e)
    mixed, out.deployments, failed = build_deployments(ctx.cfg, ctx.codecs, ctx.images, cache, calib,
                                                       progress=progress)
    out.deployed |= mixed
    out.failed |= failed
    return out


def rate_distortion(ctx: Context, exports: Exports, progress: bool = True) -> pd.DataFrame:
    """bpp from the real bytes of every deployed codec's bitstreams, and PSNR of its decode, per image mean."""
    rows: list[dict[str, Any]] = []
    x = ctx.images
    jobs = [(e, n, d) for e, ds in exports.deployed.items() for n, d in ds.items()]
    for engine, name, d in tqdm(jobs, desc="rate-distortion", disable=not progress):
        blobs = d.encode(x)
        x_hat = torch.cat([d.decode(b)["x_hat"] for b in blobs])
        spec = parse_codec(name)
        rows.append({"codec": name, "arch": spec.arch, "quality": spec.quality, "engine": engine,
                     "bpp": sum(bpp(b, x.shape[-2:]) for b in blobs) / len(blobs),
                     "psnr": psnr(x_hat, x).mean().item(), "images": len(blobs)})
    return pd.DataFrame(rows)


class ExportStage(StageBase):
    """Export + parity of every codec on every available engine, the deployed codecs, real-bitstream RD."""

    name, section, order = "export", "export", 10
    tables = (
        TableSpec("rate_distortion", "Rate-distortion from real bitstreams of the deployed codec (mean over the "
                  "run's images).", order=30),
        TableSpec("bd_rate", "BD-rate of every deployed engine against torch over the run's qualities (PCHIP "
                  "Bjøntegaard; NaN where a curve's PSNR does not rise with its rate).", order=31),
        TableSpec("parity", "Parity of every exported graph and deployed codec against PyTorch.",
                  ("model", "stage", "engine", "status", "passed", "max_abs_err", "psnr_db", "top1_agreement",
                   "failures", "reason"), order=60),
        TableSpec("export", "Export of every graph.", order=61),
        TableSpec("deployments", "The engine of every stage of each deployed codec of [export.deployments] (named "
                  "by its key in the per-engine tables); for a choice, each candidate's median ms on the run's "
                  "first image, measured once per model and machine and then read from the cache.", order=32),
    )

    def check(self, cfg: RunConfig, names: Names) -> None:
        check_exported(cfg)
        parse_deployments(cfg)

    def run(self, ctx: Context, results: Results) -> StageResult:
        ex = run_exports(ctx, ctx.progress)
        rd = rate_distortion(ctx, ex, ctx.progress)
        tables = {"parity": ex.parity, "export": ex.export, "rate_distortion": rd}
        if not ex.deployments.empty:
            tables["deployments"] = ex.deployments
        bd = bd_rate_table(rd) if not rd.empty and "torch" in set(rd["engine"]) else pd.DataFrame()
        if not bd.empty:
            tables["bd_rate"] = bd
        return StageResult(tables, skipped=ex.failed,
                           exports=ex)


register(ExportStage())
