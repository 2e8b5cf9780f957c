"""Ray's overhead against the serial executor on the same run, and the speed-up a cluster could reach.

1. **Overhead**: ``liccs run CONFIG`` (default: quick-cpu ``--quick``) with ``--executor serial`` and with
   ``--executor ray`` (a local Ray instance on this machine's CPUs, started inside the run and counted), interleaved
   ``--rounds`` times, each run from an empty adversarial cache (a fresh ``--out``); the wall time of each, the
   ratio ray / serial per round and its median. Goal: ≤ 1.10.
2. **Cluster bound**: from a Ray run's manifest (``--manifest``, e.g. a paper A run with ``--executor ray``), the
   work (every task's seconds plus the driver's) over the critical path (each batch's longest task plus the
   driver's): the speed-up that enough workers could reach; and with N workers, work / max(critical path,
   work / N) for N = 2, 4, 8, 16, 32 (a lower bound on the time: each batch's tasks assumed to spread evenly).

    nice python benchmarks/executor_overhead.py --manifest /tmp/pa-ray/manifest.json
    # → benchmarks/results/executor_overhead.{json,md,manifest.json}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's liccs

from liccs.core.manifest import git_commit, manifest, write_json  # noqa: E402
from liccs.report.tables import to_markdown  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def timed_run(config: str, quick: bool, executor: str, out: Path) -> float:
    """Wall seconds of one ``liccs run`` in a fresh process (Ray's start included)."""
    cmd = [sys.executable, "-m", "liccs.cli", "run", config, "--no-progress", "--out", str(out), "--executor", executor]
    start = time.perf_counter()
    subprocess.run(cmd + (["--quick"] if quick else []), check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start


def cluster_bound(path: Path) -> tuple[dict, list[dict]]:
    """The work / critical-path summary of a Ray run's manifest, and the bound for N workers."""
    ex = json.loads(path.read_text())["executor"]
    work, crit = ex["work_seconds"], ex["critical_path_seconds"]
    rows = [{"workers": n, "bound_seconds": round(max(crit, work / n), 1),
             "speedup": round(work / max(crit, work / n), 2)} for n in (1, 2, 4, 8, 16, 32)]
    return {k: ex[k] for k in ("task_seconds", "work_seconds", "critical_path_seconds", "speedup_bound")} | {
        "tasks": len(ex["tasks"]), "manifest": str(path)}, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="liccs/configs/quick-cpu.toml")
    ap.add_argument("--full", action="store_true", help="the config itself, not its [quick] variant")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--manifest", type=Path, help="a Ray run's manifest.json for the cluster bound")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    commit = git_commit()  # before this script writes its (tracked) results
    load0 = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            walls = {e: timed_run(args.config, not args.full, e, Path(tmp) / f"{e}-{r}") for e in ("serial", "ray")}
            rows.append({"round": r, "serial_s": round(walls["serial"], 2), "ray_s": round(walls["ray"], 2),
                         "ratio": round(walls["ray"] / walls["serial"], 3)})
    median = statistics.median(r["ratio"] for r in rows)
    bound, workers = cluster_bound(args.manifest) if args.manifest else (None, [])
    load1 = os.getloadavg()
    result = {"config": args.config, "quick": not args.full, "overhead": rows, "median_ratio": median,
              "goal": "ray / serial <= 1.10", "met": median <= 1.10, "cluster": bound, "workers": workers,
              "loadavg_before": load0, "loadavg_after": load1}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "executor_overhead.json", result)
    write_json(args.out / "executor_overhead.manifest.json", manifest(vars(args) | {"out": str(args.out),
                                                                                    "manifest": str(args.manifest)},
                                                                                   started_at=commit))
    md = [f"# Ray executor overhead ({args.config}{' --quick' if not args.full else ''})", "",
          f"Median ray / serial wall ratio **{median:.3f}** (goal ≤ 1.10: {'met' if median <= 1.10 else 'NOT met'});"
          f" load average {load0[0]:.2f} before, {load1[0]:.2f} after (2-core CPU).", "",
          to_markdown(pd.DataFrame(rows)), ""]
    if bound:
        md += [f"## Cluster bound from {bound['manifest']}", "",
               f"{bound['tasks']} tasks, {bound['task_seconds']} s of task time; work {bound['work_seconds']} s, "
               f"critical path {bound['critical_path_seconds']} s: at most **{bound['speedup_bound']}×** with "
               "enough workers.", "", to_markdown(pd.DataFrame(workers)), ""]
    (args.out / "executor_overhead.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
