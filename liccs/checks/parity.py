"""Parity: the same real images through PyTorch and through each engine, compared with explicit tolerances.

For every model × stage × engine one :class:`ParityRecord`: max / mean absolute error, relative (L2) error,
PSNR of images (x̂) against PyTorch's, top-1 agreement of logits, the :class:`Tolerance` used and whether it
passed. Graphs are compared with PyTorch on the *original* model (not the exported inference form); the
deployed codec (stage ``codec``: stage runners + entropy coder) is compared with CompressAI's own
``compress``/``decompress``. Inputs: crops of real images (Kodak by default) at two sizes whose sides are
not multiples of 64, through one dynamic-shape artifact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from liccs.core.errors import EngineUnavailable, ImageReadError, InputError, LiccsError
from liccs.core.progress import tqdm
from liccs.data import ImageSource, kodak, prepare, to_float
from liccs.engines import ENGINES
from liccs.engines.autoregressive import single_thread
from liccs.engines.bitstream import Container, unframe
from liccs.engines.codec import DeployedCodec
from liccs.engines.factory import runner_for
from liccs.export.graphs import stage_feeds
from liccs.export.report import export_codec
from liccs.pipeline import codec_roundtrip, psnr

#: Crop sizes (H, W) of the two parity feeds: sides that are not multiples of 64; (batch 2, batch 1).
CROPS = ((75, 117), (130, 66))


@dataclass(frozen=True)
class Tolerance:
    """Pass/fail thresholds (None: not checked). PSNR applies to images, top-1 agreement to logits."""

    max_abs_err: float = 1e-3
    max_rel_err: float | None = None
    min_psnr_db: float | None = None
    min_top1_agreement: float = 0.99


@dataclass
class ParityRecord:
    """One model × stage × engine (× output). ``status``: ok | unavailable | error."""

    model: str
    stage: str
    engine: str
    output: str = ""
    status: str = "ok"
    passed: bool | None = None
    max_abs_err: float | None = None
    mean_abs_err: float | None = None
    rel_err: float | None = None
    psnr_db: float | None = None
    top1_agreement: float | None = None
    shapes: list[list[int]] = field(default_factory=list)
    tolerance: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict for JSON: an infinite PSNR becomes None with ``extra.identical``, other non-finite
        errors None listed in ``extra.non_finite``."""
        d = asdict(self)
        if d["psnr_db"] is not None and math.isinf(d["psnr_db"]) and d["psnr_db"] > 0:
            d["psnr_db"] = None  # identical outputs; JSON has no inf
            d["extra"]["identical"] = True
        for k in ("max_abs_err", "mean_abs_err", "rel_err", "psnr_db", "top1_agreement"):
            if d[k] is not None and not math.isfinite(d[k]):  # NaN/inf outputs (the record has failed)
                d["extra"].setdefault("non_finite", []).append(k)
                d[k] = None
        return d


def compare(outs: Sequence[Tensor], refs: Sequence[Tensor], kind: str) -> dict[str, float | None]:
    """Metrics of engine outputs against references (one pair per feed). ``kind``: image | logits | tensor."""
    outs = [torch.as_tensor(o).detach().float().cpu() for o in outs]
    refs = [r.detach().float().cpu() for r in refs]
    for o, r in zip(outs, refs):
        if o.shape != r.shape:
            raise InputError(f"engine output shape {tuple(o.shape)} differs from PyTorch's {tuple(r.shape)}")
    diff = [(o - r) for o, r in zip(outs, refs)]
    n = sum(d.numel() for d in diff)
    m: dict[str, float | None] = {
        "max_abs_err": max(d.abs().max().item() for d in diff),
        "mean_abs_err": sum(d.abs().sum().item() for d in diff) / n,
        "rel_err": math.sqrt(sum(d.pow(2).sum().item() for d in diff)
                             / max(sum(r.pow(2).sum().item() for r in refs), 1e-30)),
        "psnr_db": None, "top1_agreement": None,
    }
    if kind == "image":
        m["psnr_db"] = min(psnr(o.clamp(0, 1), r.clamp(0, 1)).min().item() for o, r in zip(outs, refs))
    if kind == "logits":
        agree = torch.cat([(o.argmax(1) == r.argmax(1)).float() for o, r in zip(outs, refs)])
        m["top1_agreement"] = agree.mean().item()
    return m


def judge(m: Mapping[str, float | None], tol: Tolerance) -> list[str]:
    """Reasons a result fails ``tol`` (empty: passed)."""
    bad = []
    if m["max_abs_err"] is not None and not m["max_abs_err"] <= tol.max_abs_err:
        bad.append(f"max abs err {m['max_abs_err']:.3g} > {tol.max_abs_err:g}")
    if tol.max_rel_err is not None and m["rel_err"] is not None and not m["rel_err"] <= tol.max_rel_err:
        bad.append(f"rel err {m['rel_err']:.3g} > {tol.max_rel_err:g}")
    if tol.min_psnr_db is not None and m["psnr_db"] is not None and not m["psnr_db"] >= tol.min_psnr_db:
        bad.append(f"PSNR {m['psnr_db']:.2f} dB < {tol.min_psnr_db:g} dB")
    if m["top1_agreement"] is not None and not m["top1_agreement"] >= tol.min_top1_agreement:
        bad.append(f"top-1 agreement {m['top1_agreement']:.3f} < {tol.min_top1_agreement:g}")
    return bad


def _kind(output: str) -> str:
    return "image" if output == "x_hat" else "logits" if output == "logits" else "tensor"


def center_crop(x: Tensor, hw: tuple[int, int]) -> Tensor:
    """The centre ``hw`` of ``x`` (``[..., H, W]``); a side shorter than the crop is padded by repeating its edge
    pixels, so that images of any size (down to 1×1) give the same shape and stack into one batch."""
    h, w = min(hw[0], x.shape[-2]), min(hw[1], x.shape[-1])
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    x = x[..., top:top + h, left:left + w]
    dh, dw = hw[0] - h, hw[1] - w
    if not dh and not dw:
        return x
    flat = x.reshape(-1, *x.shape[-3:]) if x.dim() > 3 else x  # replicate padding takes [C, H, W] or [N, C, H, W]
    padded = torch.nn.functional.pad(flat, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="replicate")
    return padded.reshape(*x.shape[:-2], *hw)


def readable(source: ImageSource, n: int, skipped: list[str] | None = None) -> tuple[list[Tensor], list[str]]:
    """The first ``n`` images of ``source`` that can be read (float), with their names; an unreadable one is
    skipped and named in ``skipped`` (name: why). None readable is an :class:`InputError` naming the source."""
    imgs, names, bad = [], [], []
    for i in range(len(source)):
        if len(imgs) == n:
            break
        try:
            imgs.append(to_float(source.read(i)))
            names.append(source.describe(i)[0])
        except ImageReadError as e:
            bad.append(f"{source.describe(i)[0]}: {e}")
    if skipped is not None:
        skipped += bad
    if not imgs:
        why = f": {'; '.join(bad)}" if bad else ""
        raise InputError(f"no readable image in {getattr(source, 'root', source)} ({len(source)} file(s) tried){why}")
    return imgs, names


def parity_images(source: ImageSource | None = None, crops: Sequence[tuple[int, int]] = CROPS,
                  skipped: list[str] | None = None) -> list[Tensor]:
    """Real image batches from the first three readable images: centre crops of the first two at ``crops[0]``
    (a batch of 2; of 1 with one readable image), the third (else the first again) at ``crops[1]``. Unreadable
    images are skipped and named in ``skipped``."""
    imgs, _ = readable(source if source is not None else kodak(), 3, skipped)
    return parity_batches(imgs, crops)


def parity_batches(imgs: Sequence[Tensor], crops: Sequence[tuple[int, int]] = CROPS) -> list[Tensor]:
    """:func:`parity_images`' batches from images already read (float ``[3, H, W]``, at least one)."""
    third = imgs[2] if len(imgs) > 2 else imgs[0]
    return [torch.stack([center_crop(im, crops[0]) for im in imgs[:2]]).contiguous(),
            center_crop(third, crops[1])[None].contiguous()]


def classifier_images(batches: Sequence[Tensor], crop: int, resize: int | None = None) -> list[Tensor]:
    """The parity batches resized and centre-cropped to a classifier's input (host-side preprocessing)."""
    return [torch.stack([prepare(x, resize or crop, crop) for x in b]) for b in batches]


def unavailable(model: str, stage: str, engine: str, why: str, tol: Tolerance) -> ParityRecord:
    """The record of an engine that cannot run here: status ``unavailable``, with why."""
    return ParityRecord(model, stage, engine, status="unavailable", reason=why, tolerance=asdict(tol))


def check_graph(graph: Any, engines: Iterable[str], feeds: Sequence[Mapping[str, Tensor]], *,
                tolerance: Tolerance = Tolerance(), per_engine: Mapping[str, Tolerance] | None = None,
                cache: Any = None, exporter: str = "auto",
                calibration: Sequence[Mapping[str, np.ndarray]] | None = None) -> list[ParityRecord]:
    """Run ``graph`` on each engine over ``feeds`` and compare with PyTorch on the original model."""
    ref_module = graph.reference if graph.reference is not None else graph.module
    with torch.no_grad():
        refs = [ref_module(*f.values()) for f in feeds]
    records = []
    for engine in engines:
        tol = (per_engine or {}).get(engine, tolerance)
        try:
            runner = runner_for(engine, graph, cache, exporter=exporter, calibration=calibration)
            with runner:
                outs = [runner.infer(dict(f))[graph.outputs[0]] for f in feeds]
        except EngineUnavailable as e:
            records.append(unavailable(graph.model, graph.name, engine, str(e), tol))
            continue
        except LiccsError as e:
            records.append(ParityRecord(graph.model, graph.name, engine, graph.outputs[0], "error", False,
                                        tolerance=asdict(tol), reason=str(e)))
            continue
        m = compare(outs, refs, _kind(graph.outputs[0]))
        fails = judge(m, tol)
        art = getattr(runner, "artifact", None)
        extra = {"artifact": str(art.path), **{k: art.meta[k] for k in ("exporter", "fallback_reason") if k in art.meta}
                 } if art is not None else {}
        records.append(ParityRecord(graph.model, graph.name, engine, graph.outputs[0], "ok", not fails, **m,
                                    shapes=[list(next(iter(f.values())).shape) for f in feeds],
                                    tolerance=asdict(tol), failures=fails, extra=extra))
    return records


def check_deployed(codec: nn.Module, engines: Iterable[str], batches: Sequence[Tensor], *,
                   tolerance: Tolerance = Tolerance(), per_engine: Mapping[str, Tolerance] | None = None,
                   cache: Any = None, exporter: str = "auto", calibration_images: Tensor | None = None
                   ) -> list[ParityRecord]:
    """Stage ``codec``: real bitstreams (stage runners + entropy coder) against CompressAI's compress/decompress."""

    model = getattr(codec, "liccs_name", type(codec).__name__)

    with single_thread():  # CompressAI's own loop of autoregressive models is made of tiny ops too
        refs, ref_bytes = zip(*[codec_roundtrip(codec, b) for b in batches])
    records = []
    for engine in engines:
        tol = (per_engine or {}).get(engine, tolerance)
        try:
            outs, payload, total = [], [], []
            with DeployedCodec.on_engine(codec, engine, cache, exporter=exporter,
                                         calibration_images=calibration_images) as d:
                for b in batches:
                    blobs = d.encode(b)
                    outs.append(torch.cat([d.decode(blob)["x_hat"] for blob in blobs]))
                    payload += [sum(len(unframe(s)[0]) for s in Container.from_bytes(blob).strings) for blob in blobs]
                    total += [len(blob) for blob in blobs]
        except EngineUnavailable as e:
            records.append(unavailable(model, "codec", engine, str(e), tol))
            continue
        except LiccsError as e:
            records.append(ParityRecord(model, "codec", engine, "x_hat", "error", False, tolerance=asdict(tol),
                                        reason=str(e)))
            continue
        m = compare(outs, list(refs), "image")
        fails = judge(m, tol)
        ref_flat = [n for lst in ref_bytes for n in lst]
        sizes = [tuple(b.shape[-2:]) for b in batches for _ in range(b.shape[0])]
        extra = {"payload_bytes": payload, "compressai_bytes": ref_flat, "container_bytes": total,
                 "bpp": [8.0 * n / (s[0] * s[1]) for n, s in zip(total, sizes)],
                 "bpp_compressai": [8.0 * n / (s[0] * s[1]) for n, s in zip(ref_flat, sizes)]}
        records.append(ParityRecord(model, "codec", engine, "x_hat", "ok", not fails, **m,
                                    shapes=[list(b.shape) for b in batches], tolerance=asdict(tol), failures=fails,
                                    extra=extra))
    return records


def check_codec(codec: nn.Module, engines: Sequence[str], batches: Sequence[Tensor], *,
                classifier: nn.Module | None = None, stages: Iterable[str] | None = None, deployed: bool = True,
                tolerance: Tolerance = Tolerance(), per_engine: Mapping[str, Tolerance] | None = None,
                cache: Any = None, exporter: str = "auto", calibration_images: Tensor | None = None,
                report: Any = None, progress: bool = True) -> tuple[list[ParityRecord], Any]:
    """Export ``codec``'s graphs (and ``liccs``/classifier), then parity of each graph and of the deployed codec.

    Returns (records, export report). ``stages`` limits the graphs (names as in :mod:`liccs.export.graphs`).
    """

    graphs, _, report = export_codec(codec, cache, exporter, classifier, stages, report)
    failed = {r.graph: r.reason for r in report.records if r.status == "failed" and r.model in
              {g.model for g in graphs.values()}}
    feeds = [stage_feeds(codec, b) for b in batches]
    calib = stage_feeds(codec, calibration_images) if calibration_images is not None else None
    clf_feeds = None
    if classifier is not None:
        cfg = classifier.preprocess.cfg
        clf_feeds = [{"x": b} for b in classifier_images(batches, cfg.crop, cfg.resize)]
        if calib is not None:
            calib["liccs"] = calib["classifier"] = {
                "x": classifier_images([calibration_images], cfg.crop, cfg.resize)[0]}
    records: list[ParityRecord] = []
    for name, g in tqdm(graphs.items(), desc=f"parity {getattr(codec, 'liccs_name', '')}", leave=False,
                        disable=not progress):
        fs = clf_feeds if name in ("liccs", "classifier") else [f[name] for f in feeds]
        cal = [{k: v.numpy() for k, v in (calib[name] if calib and name in calib else fs[0]).items()}]
        runnable = [e for e in engines if name not in failed or (e in ENGINES and ENGINES.get(e).backend == "torch")]
        for e in set(engines) - set(runnable):
            records.append(ParityRecord(g.model, name, e, status="error", passed=False, tolerance=asdict(tolerance),
                                        reason=f"export failed: {failed[name]}"))
        records += check_graph(g, runnable, fs, tolerance=tolerance, per_engine=per_engine, cache=cache,
                               exporter=exporter, calibration=cal)
    if deployed and (stages is None or "codec" in set(stages)):
        records += check_deployed(codec, engines, batches, tolerance=tolerance, per_engine=per_engine, cache=cache,
                                  exporter=exporter, calibration_images=calibration_images)
    return records, report
