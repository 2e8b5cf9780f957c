"""Craft an attack in PyTorch and measure whether it transfers to a deployed engine (``ort-cpu``).

1. PGD (L∞, 2/255, 10 steps) through LICCS (codec → classifier) in PyTorch, the quantizer crossed by the
   straight-through surrogate (``rounding="ste"``).
2. The same clean and adversarial images, as floats and rounded to 8 bits (what a deployed system receives), through
   the target as deployed: the codec's ``reconstruct`` graph on ONNX Runtime, the classifier's resize on the host,
   the classifier graph on ONNX Runtime; and through the PyTorch target with the deployed (hard) rounding.
3. Per engine and variant: clean and adversarial accuracy, ASR over the images the target got right, agreement with
   PyTorch; then the transfer gap ASR(PyTorch) − ASR(engine).

    python examples/attack_transfer.py [--out DIR] [--images N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
import torch

import liccs.data
import liccs.zoo
from liccs.attack import PGD, build_ensemble, save_adversarial
from liccs.checks.predictors import Route
from liccs.checks.transfer import transfer_gap, transfer_matrix
from liccs.engines import runner_for
from liccs.export.cache import ArtifactCache
from liccs.export.graphs import classifier_graph, codec_graphs
from liccs.pipeline import LICCS

CODEC = "mini-bmshj2018-hyperprior@q4"
CLASSIFIER = "mini-cifar-resnet"
ENGINE = "ort-cpu"
EXPORTER = "torchscript"  # "auto" (the default) tries torch.onnx.export(dynamo=True) first: slower to export


def spread(n: int) -> range:
    """``n`` indices spread over CIFAR-10's test set (it is sorted by class)."""
    return range(0, 10_000, 10_000 // n)


def main(out: str | Path | None = None, images: int = 16, eps: float = 2 / 255, steps: int = 10) -> dict:
    out = Path(out or tempfile.mkdtemp(prefix="liccs-transfer-"))
    codec = liccs.zoo.load_codec(CODEC)
    classifier = liccs.zoo.load_classifier(CLASSIFIER)
    resize, crop, interpolation = liccs.zoo.image_geometry({CODEC: codec}, classifier)
    batch = liccs.data.load_batch(liccs.data.cifar10("test"), spread(images), resize=resize, crop=crop,
                                  interpolation=interpolation)
    clean, labels = batch.images, batch.label_tensor

    # 1. the attack, in PyTorch (liccs.attack never touches an engine)
    model = build_ensemble(CODEC, classifier, weights="pretrained", rounding="ste")
    attack = PGD(model, eps=eps, steps=steps, seed=0)
    adversarial = attack(clean, labels)
    save_adversarial(out / "adversarial", adversarial, batch.names, {"attack": attack.describe()})

    # 2. the targets: PyTorch with the deployed rounding, and the same codec + classifier deployed on ONNX Runtime
    torch_target = LICCS(codec, classifier, rounding="hard").eval()
    cache = ArtifactCache(out / "artifacts")

    def on_torch(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch_target(x)

    sets = {CODEC: adversarial}
    ref_table, ref_preds = transfer_matrix(sets, clean, labels, {CODEC: on_torch}, engine="torch", progress=False)
    with (runner_for(ENGINE, codec_graphs(codec)[0]["reconstruct"], cache, exporter=EXPORTER) as reconstruct,
          runner_for(ENGINE, classifier_graph(classifier), cache, exporter=EXPORTER) as clf_runner):
        route = Route("reconstruct", clf_runner, classifier.preprocess.cfg, graph=reconstruct)
        print(f"{CODEC} on {ENGINE}: {route.how}")
        eng_table, _ = transfer_matrix(sets, clean, labels, {CODEC: route.predict}, engine=ENGINE,
                                       reference=ref_preds, progress=False)
    table = pd.concat([ref_table, eng_table], ignore_index=True)

    # 3. what transferred
    columns = [c for c in ("engine", "variant", "clean_acc", "adv_acc", "asr", "agree_clean", "agree_adv")
               if c in table.columns]
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    gaps = transfer_gap(table, reference_engine="torch")
    for _, g in gaps.iterrows():
        print(f"transfer gap ({g['variant']}): ASR {g['asr_reference']:.3f} on PyTorch, {g['asr']:.3f} on "
              f"{g['engine']}: gap {g['gap']:+.3f}")
    return {"table": table, "gaps": gaps, "out": str(out)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="folder for the adversarial PNGs and the artifacts")
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args()
    main(args.out, args.images)
