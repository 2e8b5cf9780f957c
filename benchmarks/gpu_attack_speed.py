"""PGD speed on a GPU: liccs eager, liccs on a ``torch.compile``d target (default and ``reduce-overhead``,
i.e. CUDA-graph replay), and torchattacks' PGD on the same module.

The target is LICCS = bmshj2018-hyperprior@q3 (STE rounding) → resnet18, random weights (speed does not depend
on them), batch 32 of 256×256 images, L∞ eps 4/255, 10 steps, no random start (so liccs and torchattacks
compute the same iterates: ``same_result``). A call's time is taken with ``perf_counter`` after
``torch.cuda.synchronize()`` on both sides of the call; each variant gets warm-up calls first (compilation
happens there and is reported apart as ``first_call_s``).

    python benchmarks/gpu_attack_speed.py --out DIR      # DIR/gpu_attack_speed.{json,md,manifest.json}
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's liccs, not another install

from liccs.attack import PGD
from liccs.attack.evaluate import format_table
from liccs.core.manifest import git_commit, manifest, write_json
from liccs.pipeline import LICCS
from liccs.zoo import load_classifier, load_codec

OUT = Path(__file__).resolve().parent / "results" / "gpu"


def sync_time(fn: Any, *args: Any) -> tuple[float, torch.Tensor]:
    """Seconds of one call, the device synchronized before and after."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn(*args)
    torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--side", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--variants", default="eager,torchattacks,compile,reduce-overhead")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA GPU visible: this benchmark needs one", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    codec = load_codec("bmshj2018-hyperprior@q3", "random", seed=0)
    clf = load_classifier("resnet18", "random", seed=0)
    model = LICCS(codec, clf, rounding="ste").to(dev).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(a.batch, 3, a.side, a.side, generator=g).to(dev)
    y = torch.randint(0, 1000, (a.batch,), generator=g).to(dev)
    eps, alpha = 4 / 255, 1 / 255

    def attack_for(variant: str) -> Any:
        if variant == "torchattacks":
            import torchattacks

            return torchattacks.PGD(model, eps=eps, alpha=alpha, steps=a.steps, random_start=False)
        target = model if variant == "eager" else torch.compile(
            model, mode=None if variant == "compile" else "reduce-overhead")
        return PGD(target, eps=eps, alpha=alpha, steps=a.steps, random_start=False)

    rows: list[dict[str, Any]] = []
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}
    cfg.update(model="LICCS(bmshj2018-hyperprior@q3, ste) -> resnet18, random weights", eps="4/255",
               alpha="1/255", random_start=False)
    reference = None
    for variant in a.variants.split(","):
        row: dict[str, Any] = {"variant": variant, "batch": a.batch, "side": a.side, "steps": a.steps}
        try:
            atk = attack_for(variant)
            row["first_call_s"], out = sync_time(atk, x, y)  # compilation, autotuning, cuDNN plans
            sync_time(atk, x, y)
            times = [sync_time(atk, x, y)[0] for _ in range(a.repeats)]
            med = statistics.median(times)
            reference = out if reference is None else reference
            row.update(median_s=med, min_s=min(times), steps_per_s=a.steps / med,
                       images_steps_per_s=a.steps * a.batch / med,
                       max_abs_diff_vs_first=float((out - reference).abs().max()), times_s=times)
        except Exception as e:  # one variant failing (a compiler error, say) must not lose the others
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        rows.append(row)
        print(format_table([row], [c for c in ("variant", "first_call_s", "median_s", "steps_per_s", "error")
                                   if c in row]), flush=True)
        write(a, rows, cfg, argv)  # after every variant: a time limit that stops a later one keeps these
    return 0


def write(a: argparse.Namespace, rows: list[dict[str, Any]], cfg: dict[str, Any], argv: list[str] | None) -> None:
    """The JSON, manifest and Markdown of the rows so far."""
    commit = git_commit()  # before this writes its (tracked) results
    eager = next((r for r in rows if r["variant"] == "eager" and "median_s" in r), None)
    for r in rows:
        if eager and "median_s" in r:
            r["speedup_vs_eager"] = eager["median_s"] / r["median_s"]
    a.out.mkdir(parents=True, exist_ok=True)
    write_json(a.out / "gpu_attack_speed.json", {"rows": rows})
    write_json(a.out / "gpu_attack_speed.manifest.json",
               manifest(cfg, started_at=commit, benchmark="gpu_attack_speed",
                        command="python benchmarks/gpu_attack_speed.py"
                        + "".join(f" {x}" for x in (argv if argv is not None else sys.argv[1:]))))
    cols = ["variant", "first_call_s", "median_s", "min_s", "steps_per_s", "images_steps_per_s", "speedup_vs_eager",
            "max_abs_diff_vs_first", "error"]
    (a.out / "gpu_attack_speed.md").write_text(
        f"# PGD speed on {torch.cuda.get_device_name(0)}\n\n{cfg['model']}; batch {a.batch} × {a.side}², "
        f"{a.steps} steps, median of {a.repeats} synchronized calls after warm-up; first_call_s includes "
        "compilation.\n\n" + format_table(rows, [c for c in cols if any(c in r for r in rows)]) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
