"""The int8 deployed codec on the 24 Kodak images: its rate-distortion cost against the fp32 codec (BD-rate,
from real bitstreams), its streams on the fp32 decoders and theirs on it, and its speed.

Models: the natural-image mini ladders ``mini-nat-bmshj2018-hyperprior`` and ``mini-nat-mbt2018-mean`` at q1–q4
(trained by liccs on imagenet-samples crops; Kodak is never trained on). Two engine pairs, each an fp32 codec (every
stage on the fp32 engine) against its int8 codec: ``ort-cpu`` / ``ort-cpu-int8`` (QDQ on the compute nodes, 7-bit
weights) and ``ov-cpu`` / ``ov-cpu-int8`` (NNCF on the compute nodes; added after the ONNX Runtime pair had run, its
contrasts declared before its first run). int8 codec: ``DeployedCodec.on_engine(codec, INT8, calibration_images=...)``:
``g_a``/``g_s`` int8, the table stages on the fp32 twin, and the layers of ``g_a``/``g_s`` whose int8 RD cost does
not fit in 2% of the fp32 rate kept in fp32, as measured on the calibration images (8 imagenet-samples images,
256×256 centre crops: not Kodak; ``liccs.engines.int8_fit``). Until commit 353ffba the
int8 codec instead kept ``g_s``'s first k layers in fp32 by PSNR (that report: BD-rate +22.0% / +9.2%). bpp: the container's real length
(framing included, the same on both sides); PSNR against the original image.

Declared before the run (contrasts over the 24 images, Holm across the family — every claim of every engine pair —,
liccs.core.stats rules):

- ``BD-rate within 5%`` (per engine pair and ladder): d = per-image BD-rate of int8 against fp32 (PCHIP over the four qualities,
  liccs.checks.rd) − 5 points; predicted d < 0; smallest effect of interest 1 point. An image whose curve is not
  monotone has no BD-rate and is dropped (the count is reported). The BD-rate of the mean curves is reported too.
- ``int8 faster`` (per engine pair and ladder): d = fp32 time / int8 time − 1 per image (encode + decode, summed over qualities);
  predicted d > 0; smallest effect of interest 0.05.
- Cross-decode (counts, no test): every int8 stream decoded on the pair's fp32 engine and ``torch`` with the
  encoder's tables, and every fp32 stream on the int8 codec. Added after a 2-image smoke run, in which one int8 stream chose
  other tables on ``torch``: the baseline, the fp32 ``ort-cpu`` codec's streams on ``torch``. The first full run
  (commit 363cda7's report) found 15-24/24 on ``torch`` for both; the decoder now repairs indexes a few scales
  across a table boundary by the stream's checksum, and the repairs are counted.

    nice python reports/int8-codec/run.py     # → result.json, result.md, manifest.json here
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from liccs.checks.rd import bd_rate  # noqa: E402
from liccs.data import imagenet_samples, kodak, prepare, to_float  # noqa: E402
from liccs.engines.codec import DeployedCodec  # noqa: E402
from liccs.export.cache import ArtifactCache  # noqa: E402
from liccs.core.manifest import git_commit, manifest, write_json  # noqa: E402
from liccs.core.provenance import code_record  # noqa: E402
from liccs.pipeline import psnr  # noqa: E402
from liccs.core.stats import Claim, decide, fmt_claim, paired  # noqa: E402
from liccs.zoo import load_codec  # noqa: E402

MARGIN = 5.0  # BD-rate points: the declared margin
PAIRS = {"ort-cpu-int8": "ort-cpu", "ov-cpu-int8": "ov-cpu"}  # int8 engine → its fp32 engine
CLAIMS = {"bd": lambda m: Claim(f"{m}: int8 BD-rate within {MARGIN:g}%",
                                f"per-image BD-rate(int8 vs fp32) − {MARGIN:g} points", sesoi=1.0, direction=-1),
          "speed": lambda m: Claim(f"{m}: int8 faster", "per-image fp32 time / int8 time − 1", sesoi=0.05)}


def timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def one_quality(name: str, images: list[tuple[str, torch.Tensor]], calib: torch.Tensor,
                cache: ArtifactCache, engine: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    codec = load_codec(name)
    fp32 = DeployedCodec.on_engine(codec, PAIRS[engine], cache)
    ref = DeployedCodec.on_engine(codec, "torch", cache)
    int8 = DeployedCodec.on_engine(codec, engine, cache, calibration_images=calib)
    rows = []
    with torch.no_grad():
        for c in (fp32, int8):  # warm-up at each image size (sessions, allocators)
            for x in {tuple(x.shape): x for _, x in images}.values():
                c.decode(c.encode(x)[0])
        for img, x in tqdm(images, desc=name, leave=False):
            px = x.shape[-2] * x.shape[-1]
            row: dict[str, Any] = {"image": img}
            for label, c in (("fp32", fp32), ("int8", int8)):
                te, (blob,) = timed(lambda c=c, x=x: c.encode(x))
                td, dec = timed(lambda c=c, blob=blob: c.decode(blob))
                row |= {f"{label}_bpp": 8 * len(blob) / px, f"{label}_psnr": psnr(dec["x_hat"], x).item(),
                        f"{label}_s": te + td}
                row[f"_{label}_blob"] = blob
            for dec_label, c in (("fp32", fp32), ("torch", ref)):
                out = c.decode(row["_int8_blob"], on_mismatch="decode")
                row[f"int8_on_{dec_label}_tables"] = bool(out["tables_match"])
                row[f"int8_on_{dec_label}_psnr"] = psnr(out["x_hat"], x).item()
            out = ref.decode(row["_fp32_blob"], on_mismatch="decode")  # the baseline: fp32 across engines
            row["fp32_on_torch_tables"] = bool(out["tables_match"])
            out = int8.decode(row.pop("_fp32_blob"), on_mismatch="decode")
            row["fp32_on_int8_tables"] = bool(out["tables_match"])
            row["fp32_on_int8_psnr"] = psnr(out["x_hat"], x).item()
            row.pop("_int8_blob")
            rows.append(row)
    repaired = {"torch": ref.repaired, PAIRS[engine]: fp32.repaired, engine: int8.repaired}
    return rows, (int8.int8_plan or {}) | {"index_repairs": repaired}


def ladder(arch: str, qualities: list[int], images: list[tuple[str, torch.Tensor]], calib: torch.Tensor,
           cache: ArtifactCache, engine: str) -> dict[str, Any]:
    per_q, plans = {}, {}
    for q in tqdm(qualities, desc=f"{arch} {engine}"):
        per_q[q], plans[q] = one_quality(f"{arch}@q{q}", images, calib, cache, engine)
    n = len(images)
    curve = lambda side, k: [float(np.mean([per_q[q][i][f"{side}_{k}"] for i in range(n)])) for q in qualities]  # noqa: E731
    per_image_bd = [bd_rate([per_q[q][i]["fp32_bpp"] for q in qualities], [per_q[q][i]["fp32_psnr"] for q in qualities],
                            [per_q[q][i]["int8_bpp"] for q in qualities], [per_q[q][i]["int8_psnr"] for q in qualities])
                    for i in range(n)]
    t32 = [sum(per_q[q][i]["fp32_s"] for q in qualities) for i in range(n)]
    t8 = [sum(per_q[q][i]["int8_s"] for q in qualities) for i in range(n)]
    cross = {k: {q: sum(r[k] for r in per_q[q]) for q in qualities}
             for k in ("int8_on_fp32_tables", "int8_on_torch_tables", "fp32_on_int8_tables", "fp32_on_torch_tables")}
    return {"arch": arch, "engine": engine, "fp32_engine": PAIRS[engine], "qualities": qualities, "images": n, "int8_plan": plans,
            "mean_curve": {s: {"bpp": curve(s, "bpp"), "psnr": curve(s, "psnr")} for s in ("fp32", "int8")},
            "bd_rate_mean_curves_pct": bd_rate(curve("fp32", "bpp"), curve("fp32", "psnr"), curve("int8", "bpp"),
                                               curve("int8", "psnr")),
            "per_image_bd_rate_pct": per_image_bd, "fp32_s": t32, "int8_s": t8, "cross": cross,
            "rows": {q: per_q[q] for q in qualities}}


def markdown(results: list[dict[str, Any]], claims: list[dict[str, Any]], load: tuple[float, float]) -> str:
    lines = ["# The int8 deployed codec on Kodak: BD-rate, cross-decode, speed", "",
             f"{results[0]['images']} Kodak images; natural-image mini ladders (trained by liccs); each int8 engine "
             "against its fp32 engine (ort-cpu-int8 / ort-cpu, ov-cpu-int8 / ov-cpu), the int8 codec with the table "
             "stages in fp32 and the layers of g_a/g_s whose int8 RD cost does not fit "
             f"in 2% of the fp32 rate kept in fp32, measured on 8 imagenet-samples crops (`liccs.engines.int8_fit`). Load average before/after {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} cores. "
             "Contrasts declared in `run.py` before the run.", "",
             "Cross-decode columns: streams whose decoder chose the encoder's entropy tables; `fp32 → torch` is the "
             "baseline (the fp32 codec's streams on the PyTorch decoder). `repairs`: decodes (of all columns, "
             "own streams included) whose scale indexes the stream's checksum repaired (a few scales across a table "
             "boundary, `liccs.engines.indexes.repair_indexes`).", "",
             "| int8 engine | ladder | q | fp32 bpp | fp32 PSNR | int8 bpp | int8 PSNR | layers kept fp32 | "
             "int8 → fp32 | int8 → torch | fp32 → int8 | fp32 → torch | repairs |", "|---" * 13 + "|"]
    for r in results:
        for j, q in enumerate(r["qualities"]):
            f, i = r["mean_curve"]["fp32"], r["mean_curve"]["int8"]
            c, n = r["cross"], r["images"]
            p = r["int8_plan"][q]
            plan = " · ".join(f"{st} {','.join(map(str, ix)) or '—'}" for st, ix in p.get("fp32_layers", {}).items())
            plan += f" (of {sum(p['layers'].values())})" if "layers" in p else ""
            lines.append(f"| {r['engine']} | {r['arch']} | {q} | {f['bpp'][j]:.3f} | {f['psnr'][j]:.2f} | "
                         f"{i['bpp'][j]:.3f} | {i['psnr'][j]:.2f} | {plan} | {c['int8_on_fp32_tables'][q]}/{n} | "
                         f"{c['int8_on_torch_tables'][q]}/{n} | {c['fp32_on_int8_tables'][q]}/{n} | "
                         f"{c['fp32_on_torch_tables'][q]}/{n} | {sum(r['int8_plan'][q]['index_repairs'].values())} |")
    lines += ["", "| int8 engine | ladder | BD-rate of the mean curves | per-image BD-rate, mean | images with a "
              "BD-rate | fp32 s / image | int8 s / image |", "|---|---|---|---|---|---|---|"]
    for r in results:
        bd = [v for v in r["per_image_bd_rate_pct"] if math.isfinite(v)]
        lines.append(f"| {r['engine']} | {r['arch']} | {r['bd_rate_mean_curves_pct']:+.2f}% | {np.mean(bd):+.2f}% | "
                     f"{len(bd)}/{r['images']} | {np.mean(r['fp32_s']):.2f} | {np.mean(r['int8_s']):.2f} |")
    lines += ["", f"Claims (paired over images, Holm across the {len(claims)}):", ""] + [f"- {fmt_claim(c)}" for c in claims]
    lines += ["", "Raw numbers: `result.json`; environment: `manifest.json`.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ladders", nargs="+", default=["mini-nat-bmshj2018-hyperprior", "mini-nat-mbt2018-mean"])
    ap.add_argument("--qualities", nargs="+", type=int, default=[1, 2, 3, 4])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--calibration", type=int, default=8)
    ap.add_argument("--engines", nargs="+", default=list(PAIRS), choices=list(PAIRS), help="int8 engines")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    load0, commit = os.getloadavg()[0], git_commit()
    src = kodak()
    images = [(src.describe(i)[0], to_float(src.read(i))[None]) for i in range(min(args.images, len(src)))]
    cal_src = imagenet_samples()
    calib = torch.stack([prepare(cal_src.read(i), 256, 256) for i in range(args.calibration)])
    cache = ArtifactCache()
    results = [ladder(a, args.qualities, images, calib, cache, e) for e in args.engines for a in args.ladders]
    pairs = []
    for r in results:
        bd = np.asarray(r["per_image_bd_rate_pct"])
        pairs.append((CLAIMS["bd"](f"{r['engine']} {r['arch']}"), paired(bd, np.full_like(bd, MARGIN), kind="continuous", what="BD-rate")))
        ratio = np.asarray(r["fp32_s"]) / np.asarray(r["int8_s"])
        pairs.append((CLAIMS["speed"](f"{r['engine']} {r['arch']}"), paired(ratio, np.ones_like(ratio), kind="continuous", what="speed")))
    claims = decide(pairs)
    load1 = os.getloadavg()[0]
    config = vars(args) | {"out": str(args.out), "margin_bd_points": MARGIN, "pairs": {e: PAIRS[e] for e in args.engines},
                           "calibration_source": "imagenet-samples[:n] 256 centre crop"}
    write_json(args.out / "result.json", {"results": results, "claims": claims, "loadavg": [load0, load1]})
    write_json(args.out / "manifest.json", manifest(config, started_at=commit, code=code_record(),
                                                    report="int8-codec", command="nice python " + " ".join(sys.argv)))
    md = markdown(results, claims, (load0, load1))
    (args.out / "result.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
