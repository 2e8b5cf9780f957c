"""Where end-to-end time goes that the per-stage profile does not see: one compress + decompress of a deployed codec,
with every stage runner's calls timed inside it, against the same runners timed alone.

For each engine: the end-to-end p50; the time spent inside runner calls during end-to-end runs (per stage, per
call); the same calls timed back to back in isolation (what the profile's stage rows measure); and the rest, the
end-to-end mean minus the mean time inside runner calls (entropy coding, index building, framing, padding, copies).
A stage whose calls are slower inside the end-to-end run than alone points at the call context (thread pools that
sleep between calls, cold caches), not at the stage.

    nice python benchmarks/e2e_gap.py [--model mini-bmshj2018-hyperprior@q4 --side 512 --engines torch ort-cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's liccs

from liccs.core.manifest import git_commit, manifest, write_json
from liccs.engines.codec import DeployedCodec
from liccs.export.cache import ArtifactCache
from liccs.export.graphs import stage_feeds
from liccs.report.tables import to_markdown
from liccs.stages.profile import sweep_images
from liccs.zoo import load_codec

RESULTS = Path(__file__).resolve().parent / "results"


class Timed:
    """A runner whose ``infer`` calls are timed (the list of seconds per call)."""

    def __init__(self, runner: Any) -> None:
        self.runner, self.calls = runner, []

    def infer(self, feed: Any, check: bool = True) -> Any:
        t = time.perf_counter()
        out = self.runner.infer(feed, check)
        self.calls.append(time.perf_counter() - t)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runner, name)


def one_engine(codec: Any, engine: str, x: Any, rounds: int, cache: ArtifactCache) -> list[dict[str, Any]]:
    d = DeployedCodec.on_engine(codec, engine, cache)
    timed = {s: Timed(r) for s, r in d.runners.items()}
    d.runners = dict(timed)
    d.decompress(**d.compress(x))  # warm-up
    for t in timed.values():
        t.calls.clear()
    e2e = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        d.decompress(**d.compress(x))
        e2e.append(time.perf_counter() - t0)
    inside = {s: list(t.calls) for s, t in timed.items()}
    feeds = stage_feeds(codec, x)
    alone = {}
    for s, t in timed.items():
        if s not in feeds:
            continue
        t.calls.clear()
        for _ in range(rounds):
            t.infer(feeds[s])
        alone[s] = list(t.calls)
    med = statistics.median
    rows = [{"engine": engine, "stage": s, "calls_per_e2e": len(inside[s]) / rounds,
             "inside_ms_per_call": 1e3 * med(inside[s]), "alone_ms_per_call": 1e3 * med(alone[s]),
             "inside_over_alone": med(inside[s]) / med(alone[s])} for s in alone if inside.get(s)]
    in_runners = sum(sum(v) for v in inside.values()) / rounds
    rows.append({"engine": engine, "stage": "end-to-end", "calls_per_e2e": 1, "inside_ms_per_call": 1e3 * med(e2e),
                 "alone_ms_per_call": sum(r["alone_ms_per_call"] * r["calls_per_e2e"] for r in rows),
                 "inside_over_alone": float("nan"), "runner_ms_in_e2e": 1e3 * in_runners,
                 "e2e_mean_ms": 1e3 * statistics.mean(e2e), "rest_ms": 1e3 * (statistics.mean(e2e) - in_runners)})
    d.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mini-bmshj2018-hyperprior@q4")
    ap.add_argument("--weights", default="pretrained")
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--engines", nargs="+", default=["torch", "ort-cpu"])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    commit = git_commit()  # before this script writes its (tracked) results
    load0 = os.getloadavg()
    codec = load_codec(args.model, args.weights)
    x = sweep_images(1, (args.side, args.side))
    rows = [r for e in args.engines for r in one_engine(codec, e, x, args.rounds, ArtifactCache())]
    load1 = os.getloadavg()
    write_json(args.out / "e2e_gap.json", {"rows": rows, "loadavg_before": load0, "loadavg_after": load1})
    write_json(args.out / "e2e_gap.manifest.json", manifest(vars(args) | {"out": str(args.out)},
                                                            started_at=commit, benchmark="e2e_gap",
                                                            command="nice python " + " ".join(sys.argv)))
    md = "\n".join([f"# End to end against the stages: {args.model} ({args.weights}), {args.side}², batch 1", "",
                    f"Load average before/after {load0[0]:.1f} / {load1[0]:.1f} on {os.cpu_count()} cores.", "",
                    to_markdown(pd.DataFrame(rows)), ""])
    (args.out / "e2e_gap.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
