"""The mini zoo classifier's training step in its recipe's bf16 autocast and in fp32, on this CPU.

``mini-cifar-resnet`` trains 776 steps of 512 images in bf16 autocast. Where the CPU has AVX-512 BF16 or AMX, bf16
runs natively; elsewhere it is emulated. This times ``--steps`` steps of the recipe both ways (the first step of
each training left out as warm-up), alternating the two ``--rounds`` times, and projects the whole training
(median seconds per step × 776). The recipe is not changed: its weights ship with the package, and
``liccs zoo train`` only retrains them when asked (``LICCS_MINI_WEIGHTS=cache``).

    nice python benchmarks/classifier_training.py   # → benchmarks/results/classifier_training.{json,md,manifest.json}
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's liccs

from liccs.core.isa import this_cpu  # noqa: E402
from liccs.core.manifest import manifest, write_json  # noqa: E402
from liccs.core.provenance import code_record  # noqa: E402
from liccs.report.tables import to_markdown  # noqa: E402
from liccs.zoo.mini import CLASSIFIER_CONFIGS  # noqa: E402
from liccs.zoo.mini.train_classifier import train_classifier  # noqa: E402
from liccs.zoo.mini.train_data import cifar10_tensors  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RECIPE = CLASSIFIER_CONFIGS["mini-cifar-resnet"]


def step_seconds(bf16: bool, steps: int, x, y) -> list[float]:
    """Seconds of each step after the first, training the recipe (bf16 autocast or not) from its seed."""
    _, log = train_classifier(replace(RECIPE.config, bf16=bf16), x, y, progress=False, max_steps=steps)
    t = [r["time_s"] for r in log]
    return [b - a for a, b in zip(t, t[1:])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="steps per training (the first is left out; at least 5, "
                    "the fewest the recipe's one-cycle schedule takes)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.steps < 5:
        ap.error(f"--steps {args.steps}: at least 5 (the one-cycle schedule warms up over a quarter of the steps)")
    per_class = RECIPE.config.batch_size * args.steps // 10 + 1
    x, y = cifar10_tensors("train", per_class, progress=False)
    full = (50_000 // RECIPE.config.batch_size) * RECIPE.config.epochs
    load0 = os.getloadavg()
    samples: dict[str, list[float]] = {"bf16 autocast (the recipe)": [], "fp32": []}
    for r in range(args.rounds):
        for name, bf16 in (("bf16 autocast (the recipe)", True), ("fp32", False)):
            samples[name] += step_seconds(bf16, args.steps, x, y)
            print(f"round {r + 1}/{args.rounds} {name}: {statistics.median(samples[name]):.2f} s/step", flush=True)
    load1 = os.getloadavg()
    fp32 = statistics.median(samples["fp32"])
    rows = [{"precision": k, "steps timed": len(v), "s/step (median)": round(statistics.median(v), 3),
             "whole training, projected (min)": round(statistics.median(v) * full / 60, 1),
             "over fp32": round(statistics.median(v) / fp32, 2)} for k, v in samples.items()]
    cpu = this_cpu()
    result = {"rows": rows, "samples_s": samples, "steps_whole_training": full, "cpu": cpu.line(),
              "bf16_native": cpu.native("bf16"), "loadavg_before": load0, "loadavg_after": load1}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "classifier_training.json", result)
    write_json(args.out / "classifier_training.manifest.json",
               manifest(vars(args) | {"out": str(args.out)}, code=code_record(), benchmark="classifier_training"))
    md = ["# Training the mini-zoo classifier: bf16 autocast against fp32", "",
          f"`nice python benchmarks/classifier_training.py` on {cpu.line()}; bf16 native: "
          f"{'yes' if cpu.native('bf16') else 'no, emulated'}. Load average before {load0[0]:.2f}, after "
          f"{load1[0]:.2f}. {args.steps - 1} steps of {RECIPE.config.batch_size} images timed per training, "
          f"{args.rounds} trainings each way, alternating; the whole recipe is {full} steps.", "",
          to_markdown(pd.DataFrame(rows)), ""]
    (args.out / "classifier_training.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
