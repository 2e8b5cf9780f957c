"""The profiler's own accuracy: liccs's p50 against torch.utils.benchmark on the same callable, same run.

The callable is ``g_a`` of bmshj2018-hyperprior (random weights, seed 0) on one 256×256 image, on the CPU
with torch's thread count. The two timers alternate over many short rounds (AB, then BA) so that load
changes on a shared machine hit both alike. The verdict compares liccs's p50 over all its samples (pooled
over the rounds, computed by liccs's :class:`Stats`) with the median of all of torch.utils.benchmark's
``blocked_autorange`` block times (pooled alike). Target: within 5%. The median over rounds of each
timer's own per-round statistic is reported beside it.

    python benchmarks/profiler_accuracy.py            # writes benchmarks/results/profiler_accuracy.{json,md}
                                                      # and profiler_accuracy.manifest.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.utils.benchmark as tub
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's liccs, not another install

from liccs.core.manifest import git_commit, manifest, write_json
from liccs.profiling.timer import Stats, TimerConfig, measure
from liccs.zoo import load_codec

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 0.05


def liccs_round(fn, seconds: float, device: str = "cpu") -> tuple[dict, list[float]]:
    r = measure(fn, TimerConfig(warmup=2, min_iters=5, min_duration_s=seconds, device=device), name="g_a")
    return ({"p50_ms": r.latency.p50 * 1e3, "p90_ms": r.latency.p90 * 1e3, "iterations": r.iterations},
            r.samples["total"])


def tub_round(fn, seconds: float) -> tuple[dict, list[float]]:
    t = tub.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads(),
                  label="g_a", description="torch.utils.benchmark")
    m = t.blocked_autorange(min_run_time=seconds)
    return ({"median_ms": m.median * 1e3, "iqr_ms": m.iqr * 1e3, "blocks": len(m.times),
             "number_per_block": m.number_per_run}, list(m.times))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codec", default="bmshj2018-hyperprior@q3")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=16)
    p.add_argument("--seconds", type=float, default=2.0, help="minimum duration of each timer per round")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--device", default="cpu", help="cpu | cuda (liccs times with CUDA events there; "
                   "torch.utils.benchmark synchronizes the device around its blocks)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    commit = git_commit()  # before this script writes its (tracked) results

    torch.set_num_threads(args.threads)
    codec = load_codec(args.codec, "random", seed=0).to(args.device)
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(args.device)
    stem = "profiler_accuracy" + ("" if args.device == "cpu" else f"_{args.device.split(':')[0]}")

    @torch.inference_mode()
    def g_a():
        return codec.g_a(x)

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    rounds, pooled = [], {"liccs": [], "tub": []}
    for i in tqdm(range(args.rounds), desc="rounds"):
        order = ("liccs", "tub") if i % 2 == 0 else ("tub", "liccs")
        row = {"round": i, "order": "-".join(order)}
        for who in order:
            stats, samples = (liccs_round(g_a, args.seconds, args.device) if who == "liccs"
                              else tub_round(g_a, args.seconds))
            row.update({f"{who}_{k}": v for k, v in stats.items()})
            pooled[who] += samples
        row["ratio"] = row["liccs_p50_ms"] / row["tub_median_ms"]
        rounds.append(row)
    liccs_ms = Stats.from_samples(pooled["liccs"]).p50 * 1e3
    tub_ms = statistics.median(pooled["tub"]) * 1e3
    rel = liccs_ms / tub_ms - 1
    per_round = (statistics.median(r["liccs_p50_ms"] for r in rounds),
                 statistics.median(r["tub_median_ms"] for r in rounds))
    summary = {
        "callable": f"{args.codec} g_a, random weights (seed 0), 1×3×{args.size}×{args.size}, "
                    + (f"CPU, {torch.get_num_threads()} threads" if args.device == "cpu" else
                       f"{torch.cuda.get_device_name(args.device)}") + ", inference_mode",
        "liccs_p50_ms": liccs_ms, "torch_benchmark_median_ms": tub_ms, "relative_difference": rel,
        "liccs_samples": len(pooled["liccs"]), "torch_benchmark_blocks": len(pooled["tub"]),
        "target": TARGET, "within_target": abs(rel) <= TARGET,
        "median_of_round_liccs_p50_ms": per_round[0], "median_of_round_tub_median_ms": per_round[1],
        "median_of_rounds_relative_difference": per_round[0] / per_round[1] - 1,
        "round_ratio_min": min(r["ratio"] for r in rounds), "round_ratio_max": max(r["ratio"] for r in rounds),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{stem}.json", {"summary": summary, "rounds": rounds})
    write_json(args.out / f"{stem}.manifest.json",
               manifest(config, started_at=commit, benchmark="profiler_accuracy",
                        command="python benchmarks/profiler_accuracy.py"
                        + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))))
    lines = [
        "# Profiler accuracy: liccs p50 against torch.utils.benchmark",
        "", f"Callable: {summary['callable']}.", "",
        f"- liccs p50 over its {len(pooled['liccs'])} samples from {args.rounds} interleaved rounds: "
        f"**{liccs_ms:.3f} ms**",
        f"- torch.utils.benchmark median over its {len(pooled['tub'])} blocks from the same rounds: "
        f"**{tub_ms:.3f} ms**",
        f"- difference: **{rel:+.2%}** (target ±{TARGET:.0%}: {'met' if summary['within_target'] else 'NOT met'})",
        f"- median over rounds of each timer's own statistic: {per_round[0]:.3f} ms vs {per_round[1]:.3f} ms "
        f"({summary['median_of_rounds_relative_difference']:+.2%}); per-round ratio "
        f"{summary['round_ratio_min']:.3f}–{summary['round_ratio_max']:.3f}",
        f"- load average before/after: {load_before[0]:.2f} / {summary['load_average_after'][0]:.2f} "
        f"(shared machine); wall time {summary['wall_s']} s",
        "",
        "| round | order | liccs p50 ms | liccs p90 ms | liccs iters | tub median ms | tub IQR ms | tub blocks × n "
        "| ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['round']} | {r['order']} | {r['liccs_p50_ms']:.3f} | {r['liccs_p90_ms']:.3f} | "
              f"{r['liccs_iterations']} | {r['tub_median_ms']:.3f} | {r['tub_iqr_ms']:.3f} | "
              f"{r['tub_blocks']} × {r['tub_number_per_block']} | {r['ratio']:.3f} |" for r in rounds]
    lines += ["", "Written by `python benchmarks/profiler_accuracy.py`; environment in "
              f"`{stem}.manifest.json`.", ""]
    (args.out / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines[:9]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
