"""Export a codec and compare two engines: PyTorch (``torch``) against ONNX Runtime on the CPU (``ort-cpu``).

1. Load a codec and a classifier of the offline mini zoo (their trained weights ship inside the package).
2. Export every graph of the codec (its stages, ``reconstruct``, ``liccs`` and the classifier) to ONNX through the
   artifact cache, run each on both engines and compare with PyTorch (:func:`liccs.checks.parity.check_codec`).
3. Build the deployed codec on each engine, encode on ``ort-cpu``, decode on ``torch`` (and the other way round),
   and compare the bitstreams and the reconstructions.

    python examples/compare_engines.py [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import liccs.data
import liccs.zoo
from liccs.checks.parity import Tolerance, check_codec
from liccs.engines.codec import DeployedCodec, bpp
from liccs.export.cache import ArtifactCache

CODEC = "mini-bmshj2018-hyperprior@q4"
CLASSIFIER = "mini-cifar-resnet"
ENGINES = ["torch", "ort-cpu"]
EXPORTER = "torchscript"  # "auto" (the default) tries torch.onnx.export(dynamo=True) first: slower to export


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a - b) ** 2).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()


def spread(n: int) -> range:
    """``n`` indices spread over CIFAR-10's test set (it is sorted by class)."""
    return range(0, 10_000, 10_000 // n)


def main(out: str | Path | None = None, images: int = 4) -> dict:
    out = Path(out or tempfile.mkdtemp(prefix="liccs-compare-"))
    cache = ArtifactCache(out / "artifacts")  # default: $LICCS_CACHE/artifacts, reused by every later run

    codec = liccs.zoo.load_codec(CODEC)  # weights="pretrained": for mini-… entries, the mini zoo's own
    classifier = liccs.zoo.load_classifier(CLASSIFIER)
    resize, crop, interpolation = liccs.zoo.image_geometry({CODEC: codec}, classifier)  # 64×64, nearest
    batch = liccs.data.load_batch(liccs.data.cifar10("test"), spread(images), resize=resize, crop=crop,
                                  interpolation=interpolation).images

    # every graph on every engine, against PyTorch on the original model
    records, report = check_codec(codec, ENGINES, [batch], classifier=classifier, cache=cache,
                                  tolerance=Tolerance(max_abs_err=1e-3), exporter=EXPORTER, progress=False)
    print(f"{'stage':<16} {'engine':<8} {'output':<10} {'max abs err':>12} {'PSNR dB':>8}  passed")
    for r in records:
        psnr_db = "-" if r.psnr_db is None else f"{r.psnr_db:.1f}"
        err = "-" if r.max_abs_err is None else f"{r.max_abs_err:.2e}"
        print(f"{r.stage:<16} {r.engine:<8} {r.output:<10} {err:>12} {psnr_db:>8}  {r.passed}")

    # the deployed codec: the stages on an engine + CompressAI's entropy coder, one self-checking file per image
    deployed = {engine: DeployedCodec.on_engine(codec, engine, cache, exporter=EXPORTER) for engine in ENGINES}
    blobs = {engine: d.encode(batch) for engine, d in deployed.items()}
    same_bytes = sum(a == b for a, b in zip(blobs["torch"], blobs["ort-cpu"], strict=True))
    print(f"\nbitstreams byte-equal across engines: {same_bytes}/{len(batch)}; "
          f"mean {sum(bpp(b, batch.shape[-2:]) for b in blobs['ort-cpu']) / len(batch):.3f} bpp")
    cross = []
    for enc, dec in (("ort-cpu", "torch"), ("torch", "ort-cpu")):
        for i, blob in enumerate(blobs[enc]):
            x_hat = deployed[dec].decode(blob)["x_hat"]
            same = deployed[enc].decode(blob)["x_hat"]
            cross.append({"encoder": enc, "decoder": dec, "image": i, "psnr_vs_input": psnr(x_hat, batch[i:i + 1]),
                          "psnr_vs_same_engine": psnr(x_hat, same)})
    for d in deployed.values():
        d.close()  # the runners' sessions
    for c in cross:
        print(f"encoded on {c['encoder']:<7} decoded on {c['decoder']:<7} image {c['image']}: "
              f"{c['psnr_vs_input']:.2f} dB against the input, {c['psnr_vs_same_engine']:.1f} dB against the "
              f"encoder engine's own decode")
    return {"records": [r.to_dict() for r in records], "export_report": report.table(), "cross_decode": cross,
            "byte_equal": same_bytes, "out": str(out)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="folder for the artifacts (default: a new temporary folder)")
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args()
    main(args.out, args.images)
