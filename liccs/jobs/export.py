"""``liccs export`` and ``liccs check``: codecs × engines → artifacts, parity against PyTorch, the export report and
the cross-decode matrix of the deployed codecs (:mod:`liccs.checks`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from liccs.checks.crossdecode import cross_decode
from liccs.checks.parity import ParityRecord, Tolerance, center_crop, check_codec, parity_batches, readable
from liccs.core.errors import InputError
from liccs.core.fileio import output_dir
from liccs.core.manifest import manifest, write_json
from liccs.core.progress import tqdm
from liccs.data import FolderSource, kodak
from liccs.engines.codec import DeployedCodec
from liccs.export.cache import ArtifactCache
from liccs.export.report import ExportReport, write_report
from liccs.zoo import load_classifier, load_codec


def format_table(records: Sequence[ParityRecord]) -> str:
    """A fixed-width table: one line per record."""
    head = (f"{'model':<30} {'stage':<19} {'engine':<14} {'max abs':>9} {'mean abs':>9} {'rel':>9} "
            f"{'PSNR dB':>8} {'top1':>5}  result")
    lines = [head, "-" * len(head)]
    fmt = lambda v, f: "-" if v is None else ("inf" if isinstance(v, float) and math.isinf(v) else format(v, f))  # noqa: E731
    for r in records:
        result = {"ok": "PASS" if r.passed else "FAIL " + "; ".join(r.failures)}.get(r.status, r.status.upper())
        if r.status != "ok":
            result += f": {r.reason[:70]}"
        lines.append(f"{r.model[:30]:<30} {r.stage:<19} {r.engine:<14} {fmt(r.max_abs_err, '9.2e')} "
                     f"{fmt(r.mean_abs_err, '9.2e')} {fmt(r.rel_err, '9.2e')} {fmt(r.psnr_db, '8.2f')} "
                     f"{fmt(r.top1_agreement, '5.2f')}  {result}")
    return "\n".join(lines)


def write_parity(records: Sequence[ParityRecord], path: str | Path, config: Mapping[str, Any] | None = None) -> Path:
    """``parity.json``: the manifest (versions, device, config) and one record per model × stage × engine."""
    return write_json(path, {"manifest": manifest(dict(config or {})), "records": [r.to_dict() for r in records]})


@dataclass
class ExportJob:
    """What ``liccs export`` / ``liccs check`` run: codecs × engines, weights, images, where to write."""

    codecs: list[str]
    engines: list[str]
    weights: str = "random"
    images: str | None = None  # a folder; default: Kodak from the shared data
    out: str = "runs/export"
    classifier: str | None = None
    classifier_weights: str = "random"
    exporter: str = "auto"
    tolerance: Tolerance = field(default_factory=Tolerance)
    stages: list[str] | None = None
    calibration_images: int = 4
    cross_decode: bool = True

    @classmethod
    def from_args(cls, args: Any) -> ExportJob:
        """From ``liccs export``/``liccs check`` arguments (:mod:`liccs.jobs.cli_args`)."""
        clf_w = args.classifier_weights or ("random" if args.weights == "random" else "pretrained")
        tol = Tolerance(args.max_abs_err, args.max_rel_err, args.min_psnr_db, args.min_top1_agreement)
        return cls(args.codec, args.engine, args.weights, args.images, args.out, args.classifier, clf_w,
                   args.exporter, tol, args.stages, args.calibration_images, not args.no_cross_decode)


def run_export(job: ExportJob, progress: bool = True) -> dict[str, Any]:
    """Export every codec of ``job`` (artifacts under ``out/artifacts``), run parity on every engine, and
    write ``parity.json``, ``export_report.json`` and ``cross_decode.json`` under ``out``."""
    if job.calibration_images < 1:
        raise InputError(f"calibration images must be at least 1, got {job.calibration_images}")
    out = output_dir(job.out)
    source = FolderSource(job.images) if job.images else kodak()
    skipped: list[str] = []
    imgs, img_names = readable(source, 3 + job.calibration_images, skipped)
    batches = parity_batches(imgs[:3])
    calib_imgs = imgs[3:] or imgs  # calibration: the images after the parity ones, else the parity ones
    calib = torch.stack([center_crop(im, (128, 128)) for im in calib_imgs[: job.calibration_images]])
    cache = ArtifactCache(out / "artifacts")
    clf = load_classifier(job.classifier, job.classifier_weights) if job.classifier else None
    records: list[ParityRecord] = []
    report, crosses = ExportReport(), []
    for name in tqdm(job.codecs, desc="export", disable=not progress):
        codec = load_codec(name, job.weights)
        recs, report = check_codec(codec, job.engines, batches, classifier=clf, stages=job.stages, progress=progress,
                                   tolerance=job.tolerance, cache=cache, exporter=job.exporter,
                                   calibration_images=calib, report=report)
        records += recs
        ok = [e for e in job.engines if any(r.engine == e and r.stage == "codec" and r.status == "ok" for r in recs)]
        if job.cross_decode and ok:
            with ExitStack() as owned:  # the cross-decoding codecs, released once compared
                deployed = {e: owned.enter_context(DeployedCodec.on_engine(codec, e, cache, exporter=job.exporter,
                                                                           calibration_images=calib)) for e in ok}
                images = [b[i:i + 1] for b in batches for i in range(b.shape[0])]
                names = [f"{n}#{i}" for i, n in enumerate([*img_names[:2], img_names[2 if len(img_names) > 2 else 0]])]
                crosses += [c.to_dict() for c in cross_decode(codec, deployed, images, names)]
    config = {k: v for k, v in asdict(job).items()} | {"skipped_images": skipped}
    write_parity(records, out / "parity.json", config)
    write_report(report, out / "export_report.json")
    write_json(out / "cross_decode.json", {"records": crosses})
    return {"records": records, "report": report, "cross_decode": crosses, "out": str(out), "skipped": skipped}
