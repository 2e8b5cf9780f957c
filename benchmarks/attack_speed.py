"""Speed of liccs's PGD against torchattacks' PGD on the same module, same steps, same step size.

    python benchmarks/attack_speed.py            # writes benchmarks/results/attack_speed.{json,md}

For each case, both attacks run interleaved ``--repeats`` times after one warm-up call each; the time of
a whole ``attack(images, labels)`` call is taken with ``perf_counter`` (CPU: synchronous). Without a random
start both compute the same iterates, which is checked (``same_result``), so the timings compare loops
doing the same work. torchattacks is the ``bench`` extra (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

import liccs.zoo  # noqa: F401  (the zoo registers the codecs)
from liccs.attack import PGD
from liccs.attack.evaluate import format_table
from liccs.manifest import git_commit, manifest, write_json
from liccs.pipeline import LICCS

OUT = Path(__file__).parent / "results"


def small_cnn() -> nn.Module:
    """A CIFAR-sized CNN (random weights: speed does not depend on them)."""
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(8), nn.Flatten(), nn.Linear(64 * 8 * 8, 10)).eval()


def load_codec(name: str) -> nn.Module:
    return liccs.zoo.load_codec(name, "random")  # random weights: speed does not depend on them


def cases() -> dict[str, tuple[nn.Module, int, int]]:
    """name → (module, batch, side)."""
    torch.manual_seed(0)
    cnn = small_cnn()
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)).eval()
    return {
        "linear-8px-b256 (loop overhead)": (linear, 256, 8),
        "cnn-32px-b64": (cnn, 64, 32),
        "liccs-bmshj2018-factorized@q1+cnn-32px-b16": (LICCS(load_codec("bmshj2018-factorized@q1"), cnn), 16, 32),
        "liccs-bmshj2018-hyperprior@q1+cnn-64px-b8": (LICCS(load_codec("bmshj2018-hyperprior@q1"), cnn), 8, 64),
    }


def timed(fn, *args) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def run(repeats: int, steps: int, only: str | None = None) -> dict:
    import torchattacks

    rows = []
    for name, (model, batch, side) in cases().items():
        if only and only not in name:
            continue
        g = torch.Generator().manual_seed(1)
        x = torch.rand(batch, 3, side, side, generator=g)
        y = torch.randint(0, 10, (batch,), generator=g)
        eps, alpha = 8 / 255, 2 / 255
        ours = PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
        theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
        same = torch.equal(ours(x, y), theirs(x, y))  # also the warm-up
        t_ours, t_theirs = [], []
        for r in range(repeats):  # alternate which goes first
            if r % 2:
                t_theirs.append(timed(theirs, x, y)[0])
                t_ours.append(timed(ours, x, y)[0])
            else:
                t_ours.append(timed(ours, x, y)[0])
                t_theirs.append(timed(theirs, x, y)[0])
        m_ours, m_theirs = statistics.median(t_ours), statistics.median(t_theirs)
        paired = sorted(a / b for a, b in zip(t_ours, t_theirs, strict=True))  # adjacent in time: load drift cancels
        rows.append({"case": name, "batch": batch, "side": side, "steps": steps, "repeats": repeats,
                     "liccs_median_s": m_ours, "torchattacks_median_s": m_theirs, "ratio": m_ours / m_theirs,
                     "liccs_min_s": min(t_ours), "torchattacks_min_s": min(t_theirs),
                     "ratio_min": min(t_ours) / min(t_theirs), "paired_ratio_median": statistics.median(paired),
                     "paired_ratio_iqr": [paired[len(paired) // 4], paired[(3 * len(paired)) // 4]],
                     "same_result": same,
                     "liccs_s": t_ours, "torchattacks_s": t_theirs})
        print(format_table([rows[-1]], ["case", "liccs_median_s", "torchattacks_median_s", "ratio", "ratio_min",
                                        "paired_ratio_median", "same_result"]))
    return {"rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: steadier on a shared CPU)")
    p.add_argument("--only", default=None, help="run only the cases whose name contains this")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args()
    commit = git_commit()  # before this script writes its (tracked) results
    torch.set_num_threads(a.threads)
    import torchattacks

    result = run(a.repeats, a.steps, a.only)
    cfg = {"repeats": a.repeats, "steps": a.steps, "threads": a.threads, "norm": "linf", "eps": "8/255",
           "alpha": "2/255", "random_start": False, "timer": "perf_counter around attack(images, labels)",
           "order": "interleaved, alternating which goes first, after one warm-up call each"}
    m = manifest(cfg, started_at=commit, torchattacks=torchattacks.__version__)
    write_json(a.out / "attack_speed.json", {**result, "manifest": m})
    cols = ["case", "batch", "side", "steps", "liccs_median_s", "torchattacks_median_s", "ratio", "liccs_min_s",
            "torchattacks_min_s", "ratio_min", "paired_ratio_median", "same_result"]
    (a.out / "attack_speed.md").write_text(
        "# PGD speed: liccs vs torchattacks\n\n"
        f"`python benchmarks/attack_speed.py` — {a.repeats} interleaved repeats, {a.steps} steps, "
        f"{a.threads} thread(s), torch {m['packages']['torch']}, torchattacks {torchattacks.__version__}, "
        f"{m['device']['cpu']} ({m['device']['cpu_count']} cores, shared), commit {m['commit']}.\n\n"
        + format_table(result["rows"], cols) + "\n\nratio = liccs / torchattacks, of the medians and of the minima; "
        "paired_ratio_median = median over repeats of the ratio of the two runs adjacent in time (load drift "
        "cancels). < 1: liccs faster. Both loops compute identical images (same_result), so any gap is loop "
        "overhead or machine noise; this CPU is shared with other jobs.\n")
    print(f"wrote {a.out}/attack_speed.json and attack_speed.md")


if __name__ == "__main__":
    main()
