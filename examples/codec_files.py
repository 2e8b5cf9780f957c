"""Encode image files to ``.liccs`` files with the deployed codec on one engine, decode them on another.

What ``liccs encode`` / ``liccs decode`` do, through the same functions (:mod:`liccs.jobs.codec_files`):

1. a few CIFAR-10 test images written as PNG files (64×64, the mini codec's training geometry);
2. each encoded on ``ort-cpu`` into one ``.liccs`` file (the deployed codec's container: weights fingerprint,
   sizes, framed strings with checksums), with its size in bytes and bpp;
3. each decoded on ``torch`` into a PNG, and compared with the original;
4. a damaged copy of one file, refused with a one-line ``BitstreamError`` naming the file.

    python examples/codec_files.py [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import liccs.data
import liccs.zoo
from liccs.attack.io import save_png
from liccs.engines.bitstream import BitstreamError
from liccs.jobs.codec_files import decode_files, encode_files

CODEC = "mini-bmshj2018-hyperprior@q4"
WEIGHTS = "pretrained"  # for mini-… entries: the mini zoo's weights (shipped in the package, or trained on demand)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a - b) ** 2).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()


def spread(n: int) -> range:
    """``n`` indices spread over CIFAR-10's test set (it is sorted by class)."""
    return range(0, 10_000, 10_000 // n)


def main(out: str | Path | None = None, images: int = 3) -> dict:
    out = Path(out or tempfile.mkdtemp(prefix="liccs-files-"))
    codec = liccs.zoo.load_codec(CODEC, WEIGHTS)
    size = liccs.zoo.CODECS.get(CODEC.split("@")[0]).extra.get("image_size", 64)
    batch = liccs.data.load_batch(liccs.data.cifar10("test"), spread(images), resize=size, crop=size,
                                  interpolation="nearest")
    (out / "images").mkdir(parents=True, exist_ok=True)
    pngs = [save_png(img, out / "images" / f"{name}.png") for img, name in zip(batch.images, batch.names, strict=True)]

    rows, banner = encode_files(CODEC, WEIGHTS, "ort-cpu", pngs, out / "bits")
    if banner:
        print(banner)
    for r in rows:
        print(f"{r['image']} -> {r['file']}: {r['bytes']} bytes, {r['bpp']:.3f} bpp ({r['height']}x{r['width']})")

    decoded = decode_files(CODEC, WEIGHTS, "torch", [r["file"] for r in rows], out / "decoded")
    for r, d, png in zip(rows, decoded, pngs, strict=True):
        original = liccs.data.to_float(liccs.data.read_image(png))
        x_hat = liccs.data.to_float(liccs.data.read_image(d["png"]))
        r["psnr_db"] = psnr(x_hat, original)
        r["tables_match"] = d["tables_match"]
        print(f"{d['file']} -> {d['png']}: {r['psnr_db']:.2f} dB, entropy tables match: {d['tables_match']}")

    damaged = out / "bits" / "damaged.liccs"
    data = bytearray(Path(rows[0]["file"]).read_bytes())
    data[-3] ^= 0xFF  # one flipped byte in the last string
    damaged.write_bytes(bytes(data))
    try:
        decode_files(CODEC, WEIGHTS, "torch", [damaged], out / "decoded")
        refused = ""
    except BitstreamError as e:
        refused = str(e)
        print(f"refused: {refused}")
    return {"rows": rows, "refused": refused, "weights": str(codec.liccs_weights), "out": str(out)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="folder for the PNGs and .liccs files")
    parser.add_argument("--images", type=int, default=3)
    args = parser.parse_args()
    main(args.out, args.images)
