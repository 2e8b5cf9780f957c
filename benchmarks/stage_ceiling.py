"""Each stage's achieved rate against this CPU's own ceiling: FLOPs per stage, dense matmul GFLOP/s measured in
the same run, achieved / ceiling per stage and engine.

bmshj2018-hyperprior@q3 and mbt2018-mean@q3 (full CompressAI sizes, RANDOM weights, seed 0) at 512×512, batch 1,
on torch, ort-cpu and ov-cpu. FLOPs: :func:`liccs.profiling.flops.count_flops` (convolutions incl. transposed and GDN's
1×1, 2 per multiply-add; element-wise work not counted). Ceiling: the best fp32 matmul rate with torch's threads
over 3 sizes × 3 repeats (:func:`liccs.profiling.flops.robust_ceiling`), measured before and after the stages (the
CPU is shared; both are reported, the higher is used, and a move of more than 20% is flagged in the output).
Bytes moved are estimated as the stage's input + output + weights (fp32), for arithmetic intensity.
Load average recorded.

    nice python benchmarks/stage_ceiling.py     # → benchmarks/results/stage_ceiling.{json,md,manifest.json}
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
from liccs.profiling.flops import add_rates, ceiling_moved, count_flops, robust_ceiling
from liccs.profiling.profile import profile_stages
from liccs.profiling.timer import TimerConfig
from liccs.report.tables import to_markdown
from liccs.stages.profile import sweep_images
from liccs.zoo import load_codec

RESULTS = Path(__file__).resolve().parent / "results"
NETS = ("g_a", "h_a", "h_s", "g_s")


def stage_bytes(module: torch.nn.Module, inp: torch.Tensor) -> int:
    """fp32 bytes of input + output + parameters: a lower bound on the memory traffic of one call."""
    with torch.no_grad():
        out = module(inp)
    return 4 * (inp.numel() + out.numel() + sum(p.numel() for p in module.parameters()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["bmshj2018-hyperprior@q3", "mbt2018-mean@q3"])
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--engines", nargs="+", default=["torch", "ort-cpu", "ov-cpu"])
    ap.add_argument("--matmul-n", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    commit = git_commit()  # before this script writes its (tracked) results
    load0 = os.getloadavg()
    sizes = (args.matmul_n // 2, args.matmul_n, args.matmul_n * 2)
    ceil0 = robust_ceiling(sizes)
    x = sweep_images(1, (args.side, args.side))
    cfg = TimerConfig(warmup=1, min_iters=5, min_duration_s=0.5)
    frames, info = [], []
    for name in args.models:
        codec = load_codec(name, "random")
        feeds = stage_feeds(codec, x)
        flops = {s: count_flops(getattr(codec, s), *feeds[s].values()) for s in NETS}
        nbytes = {s: stage_bytes(getattr(codec, s), *feeds[s].values()) for s in NETS}
        info += [{"model": name, "stage": s, "gflop": flops[s] / 1e9, "mbytes": nbytes[s] / 1e6,
                  "flop_per_byte": flops[s] / nbytes[s]} for s in NETS]
        for engine in args.engines:
            d = DeployedCodec.on_engine(codec, engine, ArtifactCache())
            df = profile_stages({s: (d.runners[s], feeds[s]) for s in NETS}, cfg, batch_size=1,
                                image_shape=(args.side, args.side), meta={"engine": engine, "model": name}, env=False)
            d.close()
            frames.append((df, flops))
    ceil1 = robust_ceiling(sizes)
    ceiling = max(ceil0["gflops"], ceil1["gflops"])  # the better of the two: load only ever lowers it
    moved = ceiling_moved(ceil0, ceil1)
    table = pd.concat([add_rates(df, fl, ceiling) for df, fl in frames], ignore_index=True)
    table["mbytes"] = [next(i["mbytes"] for i in info if i["model"] == m and i["stage"] == s)
                       for m, s in zip(table["model"], table["stage"])]
    load1 = os.getloadavg()
    config = {"models": args.models, "side": args.side, "engines": args.engines, "weights": "random",
              "matmul_n": args.matmul_n, "threads": torch.get_num_threads()}
    write_json(args.out / "stage_ceiling.json", {"stages": table.to_dict("records"), "ceiling_before": ceil0,
                                                 "ceiling_after": ceil1, "ceiling_gflops_used": ceiling,
                                                 "ceiling_moved": moved,
                                                 "loadavg_before": load0, "loadavg_after": load1})
    write_json(args.out / "stage_ceiling.manifest.json",
               manifest(config, started_at=commit, benchmark="stage_ceiling",
                        command="nice python " + " ".join(sys.argv)))
    cols = ["model", "engine", "stage", "gflop", "mbytes", "p50_ms", "achieved_gflops", "fraction_of_ceiling"]
    md = "\n".join([
        f"# Stage FLOPs against this CPU's matmul ceiling ({args.side}×{args.side}, batch 1, random weights)", "",
        f"Dense fp32 matmul (best of n = {', '.join(map(str, sizes))}, 3 repeats each) with "
        f"{torch.get_num_threads()} torch threads: {ceil0['gflops']:.1f} GFLOP/s before the stages, "
        f"{ceil1['gflops']:.1f} after (used: the higher, {ceiling:.1f}). "
        + (f"**Flagged: {moved}.** " if moved else "")
        + f"Load average before/after {load0[0]:.1f} / {load1[0]:.1f} on {os.cpu_count()} cores (shared CPU).", "",
        to_markdown(table[cols]), "",
        "FLOPs count convolutions only (2 per multiply-add); mbytes = fp32 input + output + weights (a lower bound "
        "on traffic). Raw numbers: `stage_ceiling.json`; environment: `stage_ceiling.manifest.json`.", ""])
    (args.out / "stage_ceiling.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
