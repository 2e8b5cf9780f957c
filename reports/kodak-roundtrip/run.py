"""Kodak round trip: the deployed codec on ort-cpu round-trips all 24 Kodak images with bpp within 1 % of
CompressAI's own ``compress()`` and PSNR within 0.05 dB of its ``decompress()``.

Run from the project root: ``python reports/kodak-roundtrip/run.py`` (writes result.json, result.md and
manifest.json here). Pretrained weights cannot be downloaded on the machine this was written on, so it runs
(a) random weights and (b) the "stress" checkpoint the tests make (random weights with g_a's last layer and
h_s's last conv scaled so that the latents spread over many entropy tables, as a trained model's do);
neither reconstructs images well: what is compared is the deployed codec against CompressAI, not quality.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from liccs.core import crop_to, pad_to_multiple  # noqa: E402
from liccs.data import kodak  # noqa: E402
from liccs.engines.bitstream import Container, unframe  # noqa: E402
from liccs.engines.codec import DeployedCodec  # noqa: E402
from liccs.export.cache import ArtifactCache  # noqa: E402
from liccs.core.manifest import git_commit, manifest, write_json  # noqa: E402
from liccs.core.provenance import code_record  # noqa: E402
from liccs.pipeline import psnr  # noqa: E402
from liccs.zoo import load_codec  # noqa: E402
from liccs.zoo.weights import sha256_of  # noqa: E402
from tests.engines.helpers import stress_checkpoint  # noqa: E402


def one_model(name: str, weights: str, engine: str, cache: ArtifactCache, images: list, tmp: Path) -> dict:
    path = stress_checkpoint(name, tmp / f"{name}.pt") if weights == "stress" else None
    codec = load_codec(name, path or "random")
    deployed = DeployedCodec.on_engine(codec, engine, cache)
    rows = []
    for img_name, x in tqdm(images, desc=f"{name} {weights} {engine}"):
        xp, size = pad_to_multiple(x, 64)
        with torch.no_grad():
            out = codec.compress(xp)
            ref = crop_to(codec.decompress(out["strings"], out["shape"])["x_hat"], size)
        ref_bytes = sum(len(s[0]) for s in out["strings"])
        (blob,) = deployed.encode(x)
        dec = deployed.decode(blob)
        payload = sum(len(unframe(s)[0]) for s in Container.from_bytes(blob).strings)
        px = size[0] * size[1]
        rows.append({"image": img_name, "size": list(size), "bpp_compressai": 8 * ref_bytes / px,
                     "bpp_payload": 8 * payload / px, "bpp_container": 8 * len(blob) / px,
                     "psnr_compressai_db": psnr(ref, x).item(), "psnr_deployed_db": psnr(dec["x_hat"], x).item(),
                     "max_abs_vs_compressai": (dec["x_hat"] - ref).abs().max().item(),
                     "tables_match": dec["tables_match"]})
    rel_payload = [abs(r["bpp_payload"] / r["bpp_compressai"] - 1) for r in rows]
    rel_container = [abs(r["bpp_container"] / r["bpp_compressai"] - 1) for r in rows]
    dpsnr = [abs(r["psnr_deployed_db"] - r["psnr_compressai_db"]) for r in rows]
    mean = lambda k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
    return {"model": name, "weights": weights, "checkpoint_sha256": sha256_of(path) if path else None,
            "engine": engine, "images": len(rows), "mean_bpp_compressai": mean("bpp_compressai"),
            "mean_bpp_payload": mean("bpp_payload"), "mean_bpp_container": mean("bpp_container"),
            "mean_psnr_compressai_db": mean("psnr_compressai_db"), "mean_psnr_deployed_db": mean("psnr_deployed_db"),
            "max_rel_bpp_diff_payload": max(rel_payload), "max_rel_bpp_diff_container": max(rel_container),
            "max_abs_psnr_diff_db": max(dpsnr), "max_abs_err_vs_compressai": max(r["max_abs_vs_compressai"] for r in rows),
            "pass_bpp_1pct": max(rel_container) <= 0.01, "pass_psnr_0.05db": max(dpsnr) <= 0.05, "rows": rows}


def markdown(results: list[dict]) -> str:
    head = ("| model | weights | engine | images | bpp CompressAI | bpp deployed (payload / file) | max rel. bpp diff "
            "(payload / file) | PSNR CompressAI | PSNR deployed | max PSNR diff | max abs err | pass |\n" + "|---" * 12 + "|")
    lines = [head]
    for r in results:
        lines.append(f"| {r['model']} | {r['weights']} | {r['engine']} | {r['images']} | {r['mean_bpp_compressai']:.4f} | "
                     f"{r['mean_bpp_payload']:.4f} / {r['mean_bpp_container']:.4f} | "
                     f"{r['max_rel_bpp_diff_payload']:.2%} / {r['max_rel_bpp_diff_container']:.2%} | "
                     f"{r['mean_psnr_compressai_db']:.3f} | {r['mean_psnr_deployed_db']:.3f} | "
                     f"{r['max_abs_psnr_diff_db']:.2e} | {r['max_abs_err_vs_compressai']:.2e} | "
                     f"{'yes' if r['pass_bpp_1pct'] and r['pass_psnr_0.05db'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", default="bmshj2018-hyperprior@q3,mbt2018-mean@q3")
    p.add_argument("--weights", default="random,stress")
    p.add_argument("--engine", default="ort-cpu")
    p.add_argument("--limit", type=int, default=24)
    args = p.parse_args()
    commit = git_commit()  # before this script writes its (tracked) results
    src = kodak()
    images = [(src.describe(i)[0], src.load(i).image.float().div(255)[None]) for i in range(min(args.limit, len(src)))]
    t0, results = time.time(), []
    with tempfile.TemporaryDirectory() as d:
        cache = ArtifactCache(Path(d) / "artifacts")
        for name in args.models.split(","):
            for w in args.weights.split(","):
                results.append(one_model(name, w, args.engine, cache, images, Path(d)))
    config = {**vars(args), "seconds": round(time.time() - t0, 1)}
    write_json(HERE / "result.json", {"config": config, "results": results})
    write_json(HERE / "manifest.json", manifest(config, started_at=commit, code=code_record()))
    (HERE / "result.md").write_text("# Kodak round trip: deployed codec vs CompressAI\n\n" + markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
