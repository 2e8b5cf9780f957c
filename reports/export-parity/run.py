"""Export parity: every registered codec at its lowest and highest quality, exported with the default
exporter (dynamo, TorchScript fallback) and checked on ort-cpu (x̂ max abs error ≤ 1e-3) and ort-cpu-int8.

``python reports/export-parity/run.py`` runs ``liccs export`` (artifacts in a temporary folder) and writes
parity.json, export_report.json and summary.md here; ``--from DIR`` summarizes an existing ``--out`` folder.
Random weights (pretrained ones cannot be downloaded here); parity images: Kodak crops 75×117 (×2) and 130×66.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from liccs.cli import main as liccs  # noqa: E402
from liccs.core.manifest import git_commit, manifest, write_json  # noqa: E402
from liccs.core.provenance import code_record  # noqa: E402
from tests.engines.helpers import lowest_highest  # noqa: E402


def summary(parity: dict, report: dict) -> str:
    recs = parity["records"]
    by = defaultdict(list)
    for r in recs:
        by[(r["engine"], r["stage"])].append(r)
    lines = ["# Export and parity, every registered codec at lowest and highest quality\n",
             f"{len({r['model'] for r in recs})} models, {len(recs)} records; tolerance: max abs err "
             f"{recs[0]['tolerance']['max_abs_err']:g} (the same for every engine: int8 is shown against it).\n",
             "| engine | stage | records | passed | failed | errors | worst max abs err | worst model |",
             "|---|---|---|---|---|---|---|---|"]
    for (engine, stage), rs in sorted(by.items()):
        ok = [r for r in rs if r["status"] == "ok"]
        worst = max(ok, key=lambda r: r["max_abs_err"]) if ok else None
        lines.append(f"| {engine} | {stage} | {len(rs)} | {sum(bool(r['passed']) for r in ok)} | "
                     f"{sum(not r['passed'] for r in ok)} | {sum(r['status'] == 'error' for r in rs)} | "
                     f"{worst['max_abs_err']:.2e} | {worst['model']} |" if worst else
                     f"| {engine} | {stage} | {len(rs)} | 0 | 0 | {len(rs)} | - | - |")
    ex = defaultdict(int)
    for r in report["records"]:
        ex[(r["status"], r["exporter"])] += 1
    lines += ["", "Export report: " + ", ".join(f"{n} {s}" + (f" by {e}" if e else "") for (s, e), n in sorted(
        ex.items(), key=lambda kv: str(kv[0])))]
    fallbacks = [f"{r['model']}.{r['graph']}: {r['fallback_reason'][:160]}" for r in report["records"]
                 if r.get("fallback_reason")]
    lines += ["", f"TorchScript fallbacks ({len(fallbacks)}):"] + [f"- {f}" for f in fallbacks]
    lines += ["", "Not exportable:"] + [f"- {r['model']}.{r['graph']}: {r['reason'][:120]}" for r in report["not_exported"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--from", dest="src", default=None, help="an existing `liccs export --out` folder")
    p.add_argument("--engine", default="ort-cpu,ort-cpu-int8")
    args = p.parse_args()
    commit, t0 = git_commit(), time.time()  # before this script writes its (tracked) results
    with tempfile.TemporaryDirectory() as d:
        src = Path(args.src) if args.src else Path(d)
        if not args.src:
            liccs(["export", "--codec", ",".join(lowest_highest()), "--engine", args.engine, "--weights", "random",
                   "--out", str(src), "--no-cross-decode"])
        for name in ("parity.json", "export_report.json"):
            shutil.copy(src / name, HERE / name)
    parity = json.loads((HERE / "parity.json").read_text())
    report = json.loads((HERE / "export_report.json").read_text())
    (HERE / "summary.md").write_text(summary(parity, report))
    write_json(HERE / "manifest.json", manifest({**vars(args), "seconds": round(time.time() - t0, 1)},
                                                started_at=commit, code=code_record()))
    print((HERE / "summary.md").read_text())


if __name__ == "__main__":
    main()
