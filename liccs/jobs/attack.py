"""``liccs attack``: attack a model or an ensemble on a folder (or source) of images, write the
adversarial images (a PNG per input, same stem), ``adversarial.pt`` and ``attack.json``, and summarize.

Images are attacked at their own size (the classifier resizes inside the model); images of one size are
batched together. Labels come from the source when it has them, else from the source model's clean
prediction; ``target`` makes the attack targeted at one class. The summary evaluates every member with
the deployed rounding (``hard``) on the clean images and on the PNG-rounded adversarial images.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from liccs.attack.base import check_attack_params, load_families, parse_eps
from liccs.attack.diversity import InputDiversity
from liccs.attack.ensemble import Ensemble, build_ensemble
from liccs.attack.eot import EoT
from liccs.attack.evaluate import (
    attack_rows,
    codec_quality,
    format_table,
    hard_predictions,
    mean_rows,
    quantize_png,
)
from liccs.attack.io import plain_stem, save_adversarial
from liccs.attack.objectives import parse_objective
from liccs.attack.spec import AttackSpec
from liccs.core.errors import InputError
from liccs.core.fileio import output_dir
from liccs.core.progress import tqdm
from liccs.data import ImageSource, open_source, to_float
from liccs.zoo import load_classifier, parse_codec
from liccs.zoo.weights import random_weights_banner


@dataclass
class AttackJob:
    """One ``liccs attack`` run (``codec="none"``: the classifier alone; ``classifier="none"``: codecs alone)."""

    codec: str
    classifier: str
    images: str
    out: str
    weights: str = "pretrained"
    classifier_weights: str | None = None
    attack: str = "pgd"
    eps: str | float = "8/255"
    norm: str = "linf"
    steps: int | None = None
    alpha: str | float | None = None
    objective: str = "ce"
    rounding: str = "ste"
    reduce: str = "loss"
    target: int | None = None
    seed: int = 0
    di: float = 0.0
    eot: int = 1
    limit: int | None = None
    batch_size: int = 8
    params: dict[str, Any] = field(default_factory=dict)  #: the attack's own parameters (``decay``, ``restarts``)


def _check(job: AttackJob) -> list[str]:
    """Every name and number, before anything is loaded; returns the codec names."""
    load_families().get(job.attack)
    check_attack_params(job.attack, job.params, "--attack-param")
    parse_eps(job.eps)
    obj = parse_objective(job.objective)
    codecs = [] if job.codec == "none" else [c.strip() for c in job.codec.split(",") if c.strip()]
    for c in codecs:
        parse_codec(c)
    if not codecs and job.classifier == "none":
        raise InputError("nothing to attack: both --codec and --classifier are 'none'")
    if obj.needs_logits and job.classifier == "none":
        raise InputError(f"objective {obj.name!r} needs a classifier")
    if job.batch_size < 1 or job.eot < 1 or (job.limit is not None and job.limit < 1):
        raise InputError("batch size, EoT samples and limit must be ≥ 1")
    return codecs


def _check_names(source: ImageSource, n: int) -> None:
    """Each image's output ``NAME.png`` before any work: not empty or hidden (a leading '.'), one per image."""
    seen: dict[str, str] = {}
    for i in range(n):
        name, where, _ = source.describe(i)
        if not plain_stem(name):
            raise InputError(f"image {where} cannot be written as {name + '.png'!r}: a hidden or empty name; rename it")
        if name in seen:
            raise InputError(f"images {seen[name]} and {where} would both be written as {name}.png; rename one")
        seen[name] = where


def _load_images(spec: str, limit: int | None) -> tuple[list[Tensor], list[str], list[int | None]]:
    source = open_source(spec)
    n = len(source) if limit is None else min(limit, len(source))
    if n == 0:
        raise InputError(f"no images in {spec!r}")
    _check_names(source, n)
    samples = [source.load(i) for i in tqdm(range(n), desc="loading images", leave=False)]
    return [to_float(s.image) for s in samples], [s.name for s in samples], [s.label for s in samples]


def _batches(images: list[Tensor], size: int) -> list[list[int]]:
    """Consecutive runs of same-shaped images, at most ``size`` long."""
    out: list[list[int]] = []
    for i, img in enumerate(images):
        if out and len(out[-1]) < size and images[out[-1][0]].shape == img.shape:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def run_attack(job: AttackJob) -> dict[str, Any]:
    """Run the job; returns the sidecar content plus ``table`` (the printed summary)."""
    t0 = time.perf_counter()
    codecs = _check(job)
    output_dir(job.out)
    clf = None if job.classifier == "none" else load_classifier(job.classifier, job.classifier_weights or job.weights)
    target = build_ensemble(codecs, clf, weights=job.weights, rounding=job.rounding, reduce=job.reduce) \
        if codecs else Ensemble([clf], reduce=job.reduce)
    model = EoT(target, samples=job.eot) if job.eot > 1 else target
    atk = AttackSpec(job.attack, eps=parse_eps(job.eps), norm=job.norm, steps=job.steps,
                     alpha=None if job.alpha is None else parse_eps(job.alpha), targeted=job.target is not None,
                     objective=job.objective, seed=job.seed, progress=True,
                     diversity=InputDiversity(job.di) if job.di > 0 else None, params=dict(job.params)).build(model)
    images, names, src_labels = _load_images(job.images, job.limit)
    classify = clf is not None
    if job.target is not None:
        label_kind = "target"
    elif not classify:
        label_kind = "none"  # codec objectives need no labels
    else:
        label_kind = "source" if all(v is not None for v in src_labels) else "predicted"
    advs: list[Tensor] = [torch.empty(0)] * len(images)
    labels: list[int] = [-1] * len(images)
    preds: dict[str, tuple[list[Tensor], list[Tensor]]] = {n: ([], []) for n in target.names}
    rows: list[dict[str, Any]] = []
    linf = 0.0
    for idx in tqdm(_batches(images, job.batch_size), desc=f"{job.attack} batches", leave=False):
        x = torch.stack([images[i] for i in idx])
        y: Tensor | None = None
        if label_kind == "target":
            y = torch.full((len(idx),), int(job.target))
        elif label_kind == "source":
            y = torch.tensor([src_labels[i] for i in idx])
        elif classify:
            with torch.no_grad():
                y = target(x).argmax(1)
        adv = atk(x, y)
        for n, i in enumerate(idx):
            advs[i] = adv[n]
            labels[i] = int(y[n]) if y is not None else -1
        png = quantize_png(adv)
        linf = max(linf, float((png - x).abs().max()))
        for name, member in zip(target.names, target.members, strict=True):
            if classify:
                preds[name][0].append(hard_predictions(member, x))
                preds[name][1].append(hard_predictions(member, png))
            else:
                clean_q, adv_q = codec_quality(member.codec, x), codec_quality(member.codec, png)
                rows += [{"model": name, "bpp_clean": clean_q["bpp"][j], "bpp_adv": adv_q["bpp"][j],
                          "psnr_clean": clean_q["psnr"][j], "psnr_adv": adv_q["psnr"][j]} for j in range(len(idx))]
    if classify:
        summary = attack_rows(target.names, {n: torch.cat(p[0]) for n, p in preds.items()},
                              {n: torch.cat(p[1]) for n, p in preds.items()}, torch.tensor(labels),
                              job.target is not None)
        for r in summary:
            r["linf_png"] = linf
    else:
        summary = mean_rows(rows, ["bpp_clean", "bpp_adv", "psnr_clean", "psnr_adv"], ["model"])
    models = {n: getattr(m, "codec", m) for n, m in zip(target.names, target.members, strict=True)}
    banner = random_weights_banner(models | ({job.classifier: clf} if clf is not None else {}))
    sidecar = {"attack": atk.describe(), "job": asdict(job), "labels": label_kind, "summary": summary,
               "seconds": round(time.perf_counter() - t0, 2), "warning": banner}
    save_adversarial(job.out, advs, names, sidecar, labels=labels)
    return {**sidecar, "table": "\n".join(filter(None, [banner, format_table(summary)]))}
