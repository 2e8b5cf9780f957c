"""The quality cost of a deployed codec with bf16 transforms, against fp32, on the 24 Kodak images.

Per bf16 CPU engine (``ov-cpu-bf16`` and ``torch-cpu-bf16`` where the CPU has AVX-512 BF16 or AMX-BF16; else
listed as skipped with the CPU's reason; ``torch-cpu-bf16-emu``, bf16 numerics emulated, on every CPU), each
quality of each trained mini-zoo ladder is deployed twice: on the engine (``g_a``/``g_s`` in bf16, the hyper path
and entropy tables on its fp32 twin) and on the fp32 twin alone. Every image is encoded by both into real
bitstreams; bpp counts the container bytes, PSNR is of the codec's own decode. The bf16 streams are also decoded
by fp32 decoders (the twin, and ``torch``): a stream counts as read where the decoder picks the encoder's entropy
tables (the stream's checksums) and decodes. Nothing here is timed: the speed of these codecs is
``deployed_codec.py``'s.

Claim (declared before the first run, liccs.core.stats rules, Holm across the ladders × engines): per ladder and
engine, the bf16 codec is non-inferior to fp32 within 1% BD-rate (the per-image BD-rate over the qualities,
PCHIP on log-rate, liccs.checks.rd; contrast −BD-rate, non-inferiority margin 1.0 percentage point).

    nice python benchmarks/precision_cost.py    # → benchmarks/results/precision_cost.{json,md,manifest.json}
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's liccs

from liccs.checks.rd import bd_rate
from liccs.core.errors import LiccsError
from liccs.core.manifest import git_commit, manifest, write_json
from liccs.core.stats import Claim, decide, fmt_claim, paired
from liccs.data import kodak, to_float
from liccs.engines import ENGINES
from liccs.engines.bitstream import BitstreamError
from liccs.engines.codec import DeployedCodec, bpp
from liccs.export.cache import ArtifactCache
from liccs.pipeline import psnr
from liccs.zoo import load_codecs
from liccs.zoo.mini import resolve_models
from liccs.zoo.weights import sha256_of

RESULTS = Path(__file__).resolve().parent / "results"
MARGIN = 1.0  # BD-rate percentage points
LADDERS = ["mini-nat-bmshj2018-hyperprior", "mini-nat-mbt2018-mean"]


def bf16_engines() -> list[str]:
    """Every registered bf16 CPU engine."""
    return [e for e in ENGINES.names() if ENGINES.get(e).precision == "bf16" and ENGINES.get(e).device == "cpu"]


def code_one(d: DeployedCodec, img: torch.Tensor) -> tuple[bytes, float, float]:
    """(stream, bpp, PSNR of the codec's own decode) of one image."""
    (blob,) = d.encode(img)
    return blob, bpp(blob, img.shape[-2:]), float(psnr(d.decode(blob)["x_hat"], img))


def read_by(decoder: DeployedCodec, blob: bytes, img: torch.Tensor) -> float | None:
    """PSNR of ``decoder``'s decode of another codec's stream; None where it refuses it (other tables)."""
    try:
        return float(psnr(decoder.decode(blob)["x_hat"], img))
    except BitstreamError:
        return None


def run_engine(engine: str, ladder: str, qualities: list[int], images: list[torch.Tensor], names: list[str],
               cache: ArtifactCache) -> list[dict[str, Any]]:
    """One row per image and quality: fp32 and bf16 bpp/PSNR, and the fp32 decoders' reads of the bf16 stream."""
    twin = ENGINES.get(engine).fp32_twin
    readers = list(dict.fromkeys([twin, "torch"]))
    rows = []
    codecs = load_codecs([f"{ladder}@q{q}" for q in qualities])
    for q, codec in zip(qualities, codecs):
        with DeployedCodec.on_engine(codec, engine, cache) as d16, DeployedCodec.on_engine(codec, twin, cache) as d32, \
                DeployedCodec.on_engine(codec, "torch", cache) as dt:
            decoders = {twin: d32, "torch": dt}
            for img, name in tqdm(list(zip(images, names)), desc=f"{engine} {ladder}@q{q}", leave=False):
                _, bpp32, psnr32 = code_one(d32, img)
                blob, bpp16, psnr16 = code_one(d16, img)
                reads = {r: read_by(decoders[r], blob, img) for r in readers}
                rows.append({"engine": engine, "ladder": ladder, "quality": q, "image": name,
                             "bpp_fp32": bpp32, "psnr_fp32": psnr32, "bpp_bf16": bpp16, "psnr_bf16": psnr16,
                             **{f"psnr_bf16_read_by_{r}": v for r, v in reads.items()},
                             "read_by_all_fp32": all(v is not None for v in reads.values())})
    return rows


def summarise(rows: list[dict[str, Any]], qualities: list[int]) -> tuple[list[dict[str, Any]], list[Any]]:
    """Per (engine, ladder): per-image BD-rates, their mean, the pooled BD-rate, the streams read; the claims."""
    out, pairs = [], []
    for key in dict.fromkeys((r["engine"], r["ladder"]) for r in rows):
        sel = [r for r in rows if (r["engine"], r["ladder"]) == key]
        by_image: dict[str, list[dict[str, Any]]] = {}
        for r in sel:
            by_image.setdefault(r["image"], []).append(r)
        bd = []
        for rs in by_image.values():
            rs = sorted(rs, key=lambda r: r["quality"])
            bd.append(bd_rate([r["bpp_fp32"] for r in rs], [r["psnr_fp32"] for r in rs],
                              [r["bpp_bf16"] for r in rs], [r["psnr_bf16"] for r in rs]))
        mean = {c: [statistics.fmean(r[c] for r in sel if r["quality"] == q) for q in qualities]
                for c in ("bpp_fp32", "psnr_fp32", "bpp_bf16", "psnr_bf16")}
        pooled = bd_rate(mean["bpp_fp32"], mean["psnr_fp32"], mean["bpp_bf16"], mean["psnr_bf16"])
        finite = [b for b in bd if math.isfinite(b)]
        claim = Claim(f"{key[0]}, {key[1]}: bf16 transforms within {MARGIN}% BD-rate of fp32",
                      "−(per-image BD-rate of the bf16 codec against fp32, %)", sesoi=MARGIN,
                      hypothesis="non-inferiority")
        pairs.append((claim, paired([-b for b in finite], [0.0] * len(finite), kind="continuous",
                                    what="−BD-rate")))
        drift = [abs(r["psnr_bf16"] - r["psnr_fp32"]) for r in sel]
        out.append({"engine": key[0], "ladder": key[1], "images": len(by_image), "streams": len(sel),
                    "bd_rate_mean_pct": statistics.fmean(finite) if finite else math.nan,
                    "bd_rate_pooled_pct": pooled, "bd_rate_undefined": len(bd) - len(finite),
                    "read_by_all_fp32": sum(r["read_by_all_fp32"] for r in sel),
                    "max_abs_psnr_change_db": max(drift)})
    return out, decide(pairs)


def markdown(summary: list[dict[str, Any]], skipped: dict[str, str], verdicts: list[dict[str, Any]],
             load: tuple[float, float], models: dict[str, dict[str, str]], isa: Any) -> str:
    lines = ["# bf16 transforms in the deployed codec: quality cost against fp32, 24 Kodak images", "",
             f"CPU ISA: {isa}. Load average before/after: {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} cores. "
             "Real bitstreams; the hyper path and entropy tables in fp32 (each engine's fp32 twin); BD-rate per image "
             "over the qualities (PCHIP), its mean, and the BD-rate of the mean curves (pooled). Emulated engines "
             "compute bf16 operands with fp32 accumulation (liccs.engines.bf16_emulation), not a native engine's "
             "kernels.", "",
             "| engine | ladder | images | BD-rate mean % | images without a BD-rate | BD-rate pooled % | bf16 streams "
             "read by every fp32 decoder | max abs PSNR change dB |", "|---|---|---|---|---|---|---|---|"]
    for s in summary:  # an image's BD-rate is undefined where its PSNR does not rise with the quality
        lines.append(f"| {s['engine']} | {s['ladder']} | {s['images']} | {s['bd_rate_mean_pct']:+.3f} | "
                     f"{s['bd_rate_undefined']} | "
                     f"{s['bd_rate_pooled_pct']:+.3f} | {s['read_by_all_fp32']}/{s['streams']} | "
                     f"{s['max_abs_psnr_change_db']:.3f} |")
    lines += ["", "Skipped:", ""] + [f"- {e}: {why}" for e, why in skipped.items()] if skipped else []
    lines += ["", f"Claims (declared in `precision_cost.py` before the first run; Holm across the {len(verdicts)}):",
              ""] + [f"- {fmt_claim(c)}" for c in verdicts]
    lines += ["", "Models (mini zoo, trained by recipe):", ""] + [
        f"- {n}: {m['origin']}, sha256 {m['sha256'][:16]}" for n, m in models.items()]
    lines += ["", "Raw numbers: `precision_cost.json`; environment: `precision_cost.manifest.json`.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ladders", nargs="+", default=LADDERS)
    ap.add_argument("--qualities", nargs="+", type=int, default=[1, 2, 3, 4])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--engines", nargs="+", default=bf16_engines(), help="bf16 engines (default: every CPU one)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    commit = git_commit()
    load0 = os.getloadavg()
    src = kodak()
    n = min(args.images, len(src))
    images = [to_float(src.read(i))[None] for i in range(n)]
    names = [Path(f).stem for f in src.files[:n]]
    cache = ArtifactCache()
    found = resolve_models([f"{lad}@q{q}" for lad in args.ladders for q in args.qualities])
    models = {k: {"origin": v.origin, "sha256": sha256_of(v.path)} for k, v in found.items()}
    rows, skipped = [], {}
    for engine in tqdm(args.engines, desc="engines"):
        why = ENGINES.get(engine).unavailable_reason()
        if why:
            skipped[engine] = why
            continue
        for ladder in args.ladders:
            try:
                rows += run_engine(engine, ladder, args.qualities, images, names, cache)
            except LiccsError as e:
                skipped[f"{engine} {ladder}"] = f"{type(e).__name__}: {e}"
    summary, verdicts = summarise(rows, args.qualities) if rows else ([], [])
    load1 = os.getloadavg()
    config = {"ladders": args.ladders, "qualities": args.qualities, "images": n, "engines": args.engines}
    m = manifest(config, started_at=commit, benchmark="precision_cost", models=models,
                 command="nice python " + " ".join(sys.argv))
    write_json(args.out / "precision_cost.json", {"summary": summary, "claims": verdicts, "skipped": skipped,
                                                  "rows": rows, "loadavg_before": load0, "loadavg_after": load1})
    write_json(args.out / "precision_cost.manifest.json", m)
    md = markdown(summary, skipped, verdicts, (load0[0], load1[0]), models, m["device"].get("isa"))
    (args.out / "precision_cost.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
