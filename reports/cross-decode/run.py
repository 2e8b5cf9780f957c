"""Cross-engine decodability: encode with engine A, decode with engine B and with CompressAI's own
PyTorch ``decompress``; per image whether the entropy tables matched and the PSNR against A's own decode.

``python reports/cross-decode/run.py`` writes cross_decode.json, parity.json (stage ``codec``) and summary.md
here. Weights: the "stress" checkpoint the tests make (random weights scaled so that the latents spread over
many entropy tables; plain random weights use one table and would hide any drift). Images: the parity
crops of Kodak (75×117 ×2, 130×66).
"""

from __future__ import annotations

import argparse
import json
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
from tests.engines.helpers import stress_checkpoint  # noqa: E402


def summary(records: list[dict]) -> str:
    by = defaultdict(list)
    for r in records:
        by[(r["model"], r["encoder"], r["decoder"])].append(r)
    lines = ["# Cross-engine decode (stress weights, Kodak crops)\n",
             "| model | encoder | decoder | images | tables match | identical | min PSNR vs same-engine decode (dB) |",
             "|---|---|---|---|---|---|---|"]
    for (m, e, d), rs in by.items():
        match = "n/a (no checksums)" if rs[0]["tables_match"] is None else f"{sum(bool(r['tables_match']) for r in rs)}/{len(rs)}"
        ps = [r["psnr_vs_same_db"] for r in rs if r["psnr_vs_same_db"] is not None]
        worst = "inf" if not ps else f"{min(ps):.2f}"
        nonfinite = sum(not r.get("finite", True) for r in rs)
        lines.append(f"| {m} | {e} | {d} | {len(rs)} | {match} | {sum(r['identical'] for r in rs)}/{len(rs)} | "
                     f"{worst}{f' ({nonfinite} decodes with NaN/inf)' if nonfinite else ''} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", default="bmshj2018-hyperprior@q3,mbt2018-mean@q3,mbt2018@q1")
    p.add_argument("--engine", default="torch,ort-cpu,ort-cpu-int8")
    args = p.parse_args()
    commit = git_commit()  # before this script writes its (tracked) results
    t0, crosses, parity = time.time(), [], []
    with tempfile.TemporaryDirectory() as d:
        for m in args.models.split(","):
            ckpt = stress_checkpoint(m, Path(d) / f"{m}.pt")
            out = Path(d) / m
            liccs(["export", "--codec", m, "--weights", str(ckpt), "--engine", args.engine, "--stages", "codec",
                   "--out", str(out)])
            crosses += json.loads((out / "cross_decode.json").read_text())["records"]
            parity.append(json.loads((out / "parity.json").read_text()))
    write_json(HERE / "cross_decode.json", {"config": vars(args), "records": crosses})
    write_json(HERE / "parity.json", {"runs": parity})
    write_json(HERE / "manifest.json", manifest({**vars(args), "seconds": round(time.time() - t0, 1)},
                                                started_at=commit, code=code_record()))
    (HERE / "summary.md").write_text(summary(crosses))
    print((HERE / "summary.md").read_text())


if __name__ == "__main__":
    main()
