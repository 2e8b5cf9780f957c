"""How each stage's time grows with the image, 256² → 1024², on torch, ort-cpu and ov-cpu, with the power-law fit.

bmshj2018-hyperprior@q3 (full CompressAI size, RANDOM weights, seed 0: time does not depend on weight values),
batch 1, real Kodak content resized and cropped to each size. Stages g_a, h_a, h_s, g_s (on each engine) and
CompressAI's entropy encode/decode (CPU, the same for both engines). Fit: p50 ≈ a·pixels^b per engine × stage
(:func:`liccs.profiling.profile.growth_table`); b = 1 is linear in pixels. Load average recorded (shared CPU).

    nice python benchmarks/stage_growth.py     # → benchmarks/results/stage_growth.{json,md,manifest.json}
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's liccs

from liccs.core.manifest import git_commit, manifest, write_json
from liccs.engines.codec import DeployedCodec
from liccs.export.cache import ArtifactCache
from liccs.export.graphs import stage_feeds
from liccs.profiling.profile import growth_table, sweep
from liccs.profiling.timer import TimerConfig
from liccs.report.tables import to_markdown
from liccs.stages.profile import coder_stages, sweep_images
from liccs.zoo import load_codec

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bmshj2018-hyperprior@q3")
    ap.add_argument("--sides", type=int, nargs="+", default=[256, 512, 768, 1024])
    ap.add_argument("--engines", nargs="+", default=["torch", "ort-cpu", "ov-cpu"])
    ap.add_argument("--min-iters", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    commit = git_commit()  # before this script writes its (tracked) results
    load0 = os.getloadavg()
    codec = load_codec(args.model, "random")
    cfg = TimerConfig(warmup=1, min_iters=args.min_iters, min_duration_s=0.0)
    frames = []
    for engine in args.engines:
        d = DeployedCodec.on_engine(codec, engine, ArtifactCache())

        def make(b: int, hw: tuple[int, int], d: DeployedCodec = d) -> dict:
            x = sweep_images(b, hw)
            feeds = stage_feeds(codec, x)
            stages = {s: (d.runners[s], feeds[s]) for s in ("g_a", "h_a", "h_s", "g_s")}
            return {**stages, **coder_stages(codec, d, x)}

        frames.append(sweep(make, [1], [(s, s) for s in args.sides], cfg, meta={"engine": engine}, env=False))
        d.close()
    table = pd.concat(frames, ignore_index=True)
    growth = growth_table(table, by=("engine", "stage"))
    load1 = os.getloadavg()
    config = {"model": args.model, "sides": args.sides, "engines": args.engines, "weights": "random",
              "timer": {"warmup": 1, "min_iters": args.min_iters}, "threads": torch.get_num_threads()}
    write_json(args.out / "stage_growth.json", {"times": table.to_dict("records"), "growth": growth.to_dict("records"),
                                                "loadavg_before": load0, "loadavg_after": load1})
    write_json(args.out / "stage_growth.manifest.json",
               manifest(config, started_at=commit, benchmark="stage_growth",
                        command="nice python " + " ".join(sys.argv)))
    times = table.pivot_table(index=["engine", "stage"], columns="height", values="p50_ms", sort=False)
    times.columns = [f"{c}² p50 ms" for c in times.columns]
    md = "\n".join([
        f"# Stage growth, {args.sides[0]}² → {args.sides[-1]}², {args.model} (random weights), batch 1", "",
        f"torch threads {torch.get_num_threads()}; load average before/after {load0[0]:.1f} / {load1[0]:.1f} on "
        f"{os.cpu_count()} cores (shared CPU). Fit p50 ≈ a·pixels^b; b = 1: linear in pixels.", "",
        to_markdown(times.reset_index()), "", to_markdown(growth[["engine", "stage", "b", "r2", "points"]]), "",
        "Raw numbers: `stage_growth.json`; environment: `stage_growth.manifest.json`.", ""])
    (args.out / "stage_growth.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
