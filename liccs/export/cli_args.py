"""Command-line arguments of ``liccs export`` and ``liccs check`` (kept here so that ``liccs.cli`` stays thin)."""

from __future__ import annotations

import argparse


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """Codecs × engines, weights, images, output folder, exporter and parity tolerances."""
    p.add_argument("--codec", type=_csv, required=True, metavar="ARCH@qN[,...]", help="codecs at qualities")
    p.add_argument("--engine", type=_csv, default=["torch", "ort-cpu"], metavar="NAME[,...]",
                   help="engines (liccs doctor lists them; unavailable ones are reported with the reason)")
    p.add_argument("--weights", default="pretrained", help="pretrained | random | PATH (codec checkpoint)")
    p.add_argument("--images", default=None, metavar="DIR", help="image folder for parity (default: Kodak)")
    p.add_argument("--out", default="runs/export", metavar="DIR", help="artifacts/, parity.json, reports")
    p.add_argument("--classifier", default=None, help="also export the classifier and the liccs graph")
    p.add_argument("--classifier-weights", default=None, help="default: random with --weights random, else pretrained")
    p.add_argument("--exporter", default="auto", choices=("auto", "dynamo", "torchscript"),
                   help="auto: torch.onnx dynamo exporter, TorchScript where it fails")
    p.add_argument("--stages", type=_csv, default=None, metavar="NAME[,...]",
                   help="only these graphs (g_a,h_a,h_s,g_s,context_prediction,context_step,entropy_parameters,"
                        "reconstruct,liccs,classifier,codec)")
    p.add_argument("--max-abs-err", type=float, default=1e-3)
    p.add_argument("--max-rel-err", type=float, default=None)
    p.add_argument("--min-psnr-db", type=float, default=None)
    p.add_argument("--min-top1-agreement", type=float, default=0.99)
    p.add_argument("--calibration-images", type=int, default=4, help="int8 calibration images (not the parity ones)")
    p.add_argument("--no-cross-decode", action="store_true", help="skip the cross-engine decode matrix")
