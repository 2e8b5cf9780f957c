"""The mini zoo's training report: loss curves, rate-distortion points (real entropy coding), accuracy.

Every number comes from the cached models evaluated here: CIFAR-10 test for the classifier and the
CIFAR-scale ladders (through the real ``compress``/``decompress``), Kodak for the natural-image ladders
against Pillow JPEG on the same images. Models missing from the cache are listed, never trained here.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from liccs.core.manifest import manifest, write_json
from liccs.core.progress import tqdm
from liccs.core.provenance import code_record
from liccs.data import kodak, to_float
from liccs.pipeline import codec_forward, psnr
from liccs.zoo import load_classifier, load_codecs
from liccs.zoo.mini import store
from liccs.zoo.mini.recipes import MiniClassifier, MiniLadder
from liccs.zoo.mini.report_render import render
from liccs.zoo.mini.train_classifier import accuracy
from liccs.zoo.mini.train_codec import LAMBDAS, cifar_to_codec_input, evaluate_roundtrip
from liccs.zoo.mini.train_data import cifar10_tensors

JPEG_QUALITIES = (5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95)


def balanced_subset(n_total: int, n: int) -> torch.Tensor:
    """Evenly spaced indices (the CIFAR test zip is sorted by class, so this keeps classes balanced)."""
    n = min(n, n_total)
    return torch.linspace(0, n_total - 1, n).round().long()


def jpeg_curve(images: list[torch.Tensor]) -> list[dict[str, float]]:
    """Pillow JPEG (default 4:2:0) at :data:`JPEG_QUALITIES`: mean bpp and mean PSNR over ``images`` (uint8)."""
    rows = []
    for q in JPEG_QUALITIES:
        bpps, ps = [], []
        for img in images:
            buf = io.BytesIO()
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=q)
            with Image.open(io.BytesIO(buf.getvalue())) as im:
                dec = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
            bpps.append(8 * buf.tell() / (img.shape[1] * img.shape[2]))
            ps.append(psnr(to_float(dec)[None], to_float(img)[None]).item())
        rows.append({"quality": q, "bpp": float(np.mean(bpps)), "psnr": float(np.mean(ps))})
    return rows


def compare_to_jpeg(codec: list[dict[str, float]], jpeg: list[dict[str, float]]) -> dict[str, float | None]:
    """PSNR(codec) − PSNR(JPEG) at equal bpp, both curves interpolated linearly over their overlapping range."""
    cb, cp = np.array([r["bpp"] for r in codec]), np.array([r["psnr"] for r in codec])
    jb, jp = np.array([r["bpp"] for r in jpeg]), np.array([r["psnr"] for r in jpeg])
    oc, jo = np.argsort(cb), np.argsort(jb)
    lo, hi = max(cb.min(), jb.min()), min(cb.max(), jb.max())
    if lo >= hi:
        return {"overlap_lo": None, "overlap_hi": None, "min_diff_db": None, "mean_diff_db": None}
    grid = np.linspace(lo, hi, 64)
    diff = np.interp(grid, cb[oc], cp[oc]) - np.interp(grid, jb[jo], jp[jo])
    return {"overlap_lo": float(lo), "overlap_hi": float(hi), "min_diff_db": float(diff.min()),
            "mean_diff_db": float(diff.mean())}


def available(name: str, key: str) -> bool:
    """Trained: in the cache, or committed (``liccs/zoo/weights``) for this config key."""
    return store.cached(name, key) is not None or store.committed(name, key) is not None


def _curve_log(meta: dict[str, Any]) -> list[dict[str, float]]:
    return list(meta.get("log", []))


def evaluate_classifier(mc: MiniClassifier, x: torch.Tensor, y: torch.Tensor, progress: bool) -> dict[str, Any]:
    """Clean top-1 on all of ``x``; also at the CIFAR-LICCS geometry (64×64 up, the classifier's own resize down)."""
    clf = load_classifier(mc.name)
    meta = (store.read_meta(mc.name, mc.key) or {}) if clf.liccs_weights.origin == "cache" else {}
    acc = accuracy(clf, x, y, progress=progress, desc="classifier on cifar10-test")
    acc64 = accuracy(lambda t: clf(cifar_to_codec_input((t * 255).round().to(torch.uint8))), x, y)
    return {"name": mc.name, "top1": acc, "top1_at_64": acc64, "train_wall_s": meta.get("wall_s"),
            "train_cpu_s": meta.get("cpu_s"), "train_threads": meta.get("threads"),
            "weights": clf.liccs_weights.origin, "sha256": clf.liccs_weights.sha256, "config": meta.get("config"),
            "log": _curve_log(meta)}


def _evaluate_ladder(ml: MiniLadder, desc: str, progress: bool,
                     evaluate: Callable[[nn.Module, dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Every quality of ``ml``: ``evaluate(codec, training meta)`` gives its row's measures (untrained qualities
    get ``trained: False``), with the ladder's training wall and CPU time and loss curves."""
    rows, cpus, logs = [], [], {}
    walls: float | None = 0.0
    trained = [q for q in ml.config.qualities if available(ml.entry_name(q), ml.key)]
    codecs = dict(zip(trained, load_codecs([ml.entry_name(q) for q in trained])))  # the ladder from one source
    for q in tqdm(ml.config.qualities, desc=desc, disable=not progress, leave=False):
        if q not in codecs:
            rows.append({"quality": q, "trained": False})
            continue
        w = codecs[q].liccs_weights
        meta = (store.read_meta(ml.entry_name(q), ml.key) or {}) if w.origin == "cache" else {}  # shipped: no log
        walls = None if walls is None or "wall_s" not in meta else walls + meta["wall_s"]
        cpus.append(meta.get("cpu_s"))
        logs[q] = _curve_log(meta)
        rows.append({"quality": q, "trained": True, "lambda": LAMBDAS[q], **evaluate(codecs[q], meta),
                     "weights": w.origin, "sha256": w.sha256})
    cpu = sum(cpus) if cpus and None not in cpus else None
    return {"name": ml.name, "rows": rows, "train_wall_s": walls, "train_cpu_s": cpu, "logs": logs}


def evaluate_cifar_ladder(ml: MiniLadder, clf: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                          progress: bool) -> dict[str, Any]:
    """bpp, PSNR (real entropy coding, 64×64) and LICCS accuracy per quality on the images ``x``."""
    xin = cifar_to_codec_input(x)

    def measure(codec: nn.Module, meta: dict[str, Any]) -> dict[str, Any]:
        r = evaluate_roundtrip(codec, xin, 200, classify=clf)
        with torch.no_grad():
            est = torch.cat([codec_forward(codec, xin[i : i + 200], "hard").bpp() for i in range(0, len(xin), 200)])
        return {"bpp": r["bpp"], "bpp_likelihood_estimate": est.mean().item(), "psnr": r["psnr"],
                "liccs_top1": (r["pred"] == y).float().mean().item(), "train_wall_s": meta.get("wall_s")}

    return _evaluate_ladder(ml, f"evaluating {ml.name}", progress, measure)


def evaluate_natural_ladder(ml: MiniLadder, images: list[torch.Tensor], progress: bool) -> dict[str, Any]:
    """bpp and PSNR per quality on Kodak (real entropy coding), each image coded on its own."""

    def measure(codec: nn.Module, meta: dict[str, Any]) -> dict[str, Any]:
        res = [evaluate_roundtrip(codec, to_float(img)[None], 1) for img in images]
        return {"bpp": float(np.mean([r["bpp"] for r in res])), "psnr": float(np.mean([r["psnr"] for r in res])),
                "train_wall_s": meta.get("wall_s")}

    return _evaluate_ladder(ml, f"evaluating {ml.name} on Kodak", progress, measure)


def write_report(members: list[MiniClassifier | MiniLadder], out_dir: str | Path, walls: dict[str, float],
                 eval_images: int = 2000, progress: bool = True) -> dict[str, Any]:
    """Evaluate ``members`` from the cache and write report.md, results.json, rd.csv, plots and manifest.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    x, y = cifar10_tensors("test", progress=progress)
    sub = balanced_subset(len(x), eval_images)
    results: dict[str, Any] = {"classifiers": [], "cifar_ladders": [], "natural_ladders": [],
                               "eval_images_cifar": len(sub), "walls_this_run_s": walls}
    clf_mod = None
    for m in members:
        if isinstance(m, MiniClassifier) and available(m.name, m.key):
            results["classifiers"].append(evaluate_classifier(m, x, y, progress))
            if clf_mod is None or m.name == "mini-cifar-resnet":  # the LICCS classifier of the ladders
                clf_mod = load_classifier(m.name)
                results["liccs_classifier"] = m.name
                results["classifier_on_subset"] = accuracy(clf_mod, x[sub], y[sub])
    kodak_imgs = None
    for m in members:
        if isinstance(m, MiniLadder) and m.config.data.startswith("cifar10-64"):
            if clf_mod is None:
                continue
            results["cifar_ladders"].append(evaluate_cifar_ladder(m, clf_mod, x[sub], y[sub], progress))
        elif isinstance(m, MiniLadder):
            if kodak_imgs is None:
                src = kodak()
                kodak_imgs = [src.read(i) for i in range(len(src))]
                results["jpeg_kodak"] = jpeg_curve(kodak_imgs)
            lad = evaluate_natural_ladder(m, kodak_imgs, progress)
            trained = [r for r in lad["rows"] if r["trained"]]
            lad["vs_jpeg"] = compare_to_jpeg(trained, results["jpeg_kodak"]) if len(trained) >= 2 else None
            results["natural_ladders"].append(lad)
    results["eval_wall_s"] = time.perf_counter() - t0
    write_json(out / "results.json", results)  # before rendering: a rendering error keeps the evaluation
    render(results, out)
    config = {"members": [{"name": m.name, "key": m.key, "config": m.config} for m in members],
              "eval_images_cifar": len(sub), "code_version": store.CODE_VERSION}
    write_json(out / "results.json", results)
    write_json(out / "manifest.json", manifest(config, report="mini-zoo training report", code=code_record(),
                                               weights=weights_record(results)))
    return results


def weights_record(results: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The origin (``shipped`` or ``cache``) and sha256 of every model the report evaluated (``NAME`` or
    ``NAME@qN``), as loaded."""
    out = {c["name"]: {"origin": c["weights"], "sha256": c["sha256"]} for c in results["classifiers"]}
    for lad in results["cifar_ladders"] + results["natural_ladders"]:
        out.update({f"{lad['name']}@q{r['quality']}": {"origin": r["weights"], "sha256": r["sha256"]}
                    for r in lad["rows"] if r["trained"]})
    return out
