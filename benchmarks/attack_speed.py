"""liccs's attacks against torchattacks' on the same modules and images: PGD, APGD and Square.

    python benchmarks/attack_speed.py          # → benchmarks/results/attack_speed.{json,md,manifest.json}
    python benchmarks/attack_speed.py --only apgd --repeats 3 --case linear   # a quick subset, printed only

Sections (``--only``):

- ``pgd``: PGD, same steps and step size, no random start, the last iterate returned (liccs ``best_iterate=False``).
  Both compute the same iterates (``same_result``).
- ``apgd``: APGD (Croce & Hein, ICML 2020), L∞, CE loss, same steps, one run (no restarts) on both sides; time per
  step. torchattacks evaluates one more gradient (at the last iterate) and one clean forward pass; liccs evaluates
  the last iterate without a gradient.
- ``square``: Square (Andriushchenko et al., ECCV 2020), L∞, margin loss, same ``p_init`` and the same query budget
  (liccs ``queries=Q`` counts the start; torchattacks ``n_queries=Q − 1`` iterations after its start); time per
  query, a query being one image through the classifier (counted by a forward hook, the clean pass included).
- ``success``: success rates on the mini zoo's trained LICCS (``mini-bmshj2018-hyperprior@q4`` →
  ``mini-cifar-resnet``, STE rounding surrogate as the attack stage uses) on CIFAR-10 test images, over the images
  the model classifies correctly, with Wilson 95% CIs; ``within`` says each rate lies in the other's CI.

Timings: both attacks run interleaved ``--repeats`` times (alternating which goes first; the loop-overhead cases
:data:`OVERHEAD_REPEATS` times as often) after one warm-up call each; ``perf_counter`` around a whole
``attack(images, labels)`` call (CPU: synchronous). APGD and Square timings use the model's own clean predictions
as labels, so both sides attack every image (torchattacks attacks only the correctly classified ones). Timing
cases with random weights are those where speed does not depend on them.
torchattacks is the ``bench`` extra (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torchattacks
from scipy import stats
from torch import Tensor, nn

import liccs.zoo
from liccs.attack import APGD, PGD, Square
from liccs.attack.evaluate import format_table
from liccs.core.manifest import git_commit, manifest, write_json
from liccs.core.paths import data_dir
from liccs.core.stats import mcnemar_exact
from liccs.data import cifar10, load_batch
from liccs.pipeline import LICCS

OUT = Path(__file__).parent / "results"
SECTIONS = ("pgd", "apgd", "square", "success")
TRAINED_CODEC, TRAINED_CLASSIFIER = "mini-bmshj2018-hyperprior@q4", "mini-cifar-resnet"
EPS = 8 / 255
#: success: (eps, steps) of APGD; (eps, queries, p_init) of Square
SUCCESS_APGD = (2 / 255, 10)
SUCCESS_SQUARE = (8 / 255, 100, 0.8)
SQUARE_P_INIT = 0.8  # torchattacks' default (AutoAttack's); liccs's default is 0.05
#: the loop-overhead cases (milliseconds a call, where a shared CPU's noise weighs most) run this many times the repeats
OVERHEAD_REPEATS = 10


def small_cnn() -> nn.Module:
    """A CIFAR-sized CNN (random weights: speed does not depend on them)."""
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(8), nn.Flatten(), nn.Linear(64 * 8 * 8, 10)).eval()


def load_codec(name: str) -> nn.Module:
    return liccs.zoo.load_codec(name, "random")  # random weights: speed does not depend on them


def trained_liccs() -> LICCS:
    """The mini zoo's trained LICCS (shipped weights) with the STE rounding surrogate."""
    codec, clf = liccs.zoo.load_codec(TRAINED_CODEC), liccs.zoo.load_classifier(TRAINED_CLASSIFIER)
    return LICCS(codec, clf, rounding="ste").eval()


def cifar_images(n: int, model: LICCS) -> tuple[Tensor, Tensor]:
    """The first ``n`` CIFAR-10 test images at the trained codec's geometry (64 px, nearest), and their labels."""
    resize, crop, interpolation = liccs.zoo.image_geometry({TRAINED_CODEC: model.codec}, model.classifier)
    b = load_batch(cifar10("test", root=data_dir()), range(n), resize=resize, crop=crop, interpolation=interpolation)
    return b.images, b.label_tensor


def pgd_cases() -> dict[str, tuple[nn.Module, int, int]]:
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


def peer_cases() -> dict[str, tuple[nn.Module, nn.Module, int, int]]:
    """The APGD and Square timing cases: name → (module, the classifier its queries are counted at, batch, side)."""
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)).eval()
    cnn = small_cnn()
    trained = trained_liccs()
    return {
        "linear-8px-b256 (loop overhead)": (linear, linear, 256, 8),
        "cnn-32px-b64": (cnn, cnn, 64, 32),
        f"trained {TRAINED_CODEC}+{TRAINED_CLASSIFIER}-64px-b16": (trained, trained.classifier, 16, 64),
    }


class Queries:
    """Counts the images a module is run on (a forward hook): Square's queries."""

    def __init__(self, module: nn.Module) -> None:
        self.n = 0
        module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple[Any, ...], out: Tensor) -> None:
        self.n += int(out.shape[0])

    def during(self, fn: Callable[..., Any], *args: Any) -> int:
        """The images ``fn(*args)`` runs the module on."""
        before = self.n
        fn(*args)
        return self.n - before


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def interleaved(ours: Callable[..., Any], theirs: Callable[..., Any], x: Tensor, y: Tensor,
                repeats: int) -> tuple[list[float], list[float]]:
    """Seconds per call of each, alternating which goes first (after the caller's warm-up)."""
    t_ours, t_theirs = [], []
    for r in range(repeats):
        if r % 2:
            t_theirs.append(timed(theirs, x, y)[0])
            t_ours.append(timed(ours, x, y)[0])
        else:
            t_ours.append(timed(ours, x, y)[0])
            t_theirs.append(timed(theirs, x, y)[0])
    return t_ours, t_theirs


def compare(t_ours: list[float], t_theirs: list[float], per_ours: float = 1.0, per_theirs: float = 1.0,
            unit: str = "call") -> dict[str, Any]:
    """Medians, minima and paired ratios of liccs / torchattacks, in seconds per ``unit`` (``per_*`` units a call)."""
    ours = [t / per_ours for t in t_ours]
    theirs = [t / per_theirs for t in t_theirs]
    m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
    paired = sorted(a / b for a, b in zip(ours, theirs, strict=True))  # adjacent in time: load drift cancels
    return {"unit": unit, "liccs_median_s": m_ours, "torchattacks_median_s": m_theirs, "ratio": m_ours / m_theirs,
            "liccs_min_s": min(ours), "torchattacks_min_s": min(theirs), "ratio_min": min(ours) / min(theirs),
            "paired_ratio_median": statistics.median(paired),
            "paired_ratio_iqr": [paired[len(paired) // 4], paired[(3 * len(paired)) // 4]],
            "liccs_call_s": t_ours, "torchattacks_call_s": t_theirs}


def repeats_of(case: str, repeats: int) -> int:
    return repeats * OVERHEAD_REPEATS if "loop overhead" in case else repeats


def predictions(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


def run_pgd(repeats: int, steps: int, case: str | None) -> list[dict[str, Any]]:
    rows = []
    for name, (model, batch, side) in pgd_cases().items():
        if case and case not in name:
            continue
        g = torch.Generator().manual_seed(1)
        x = torch.rand(batch, 3, side, side, generator=g)
        y = torch.randint(0, 10, (batch,), generator=g)
        ours = PGD(model, eps=EPS, alpha=2 / 255, steps=steps, random_start=False, best_iterate=False)  # the last
        theirs = torchattacks.PGD(model, eps=EPS, alpha=2 / 255, steps=steps, random_start=False)
        same = torch.equal(ours(x, y), theirs(x, y))  # also the warm-up
        reps = repeats_of(name, repeats)
        rows.append({"attack": "pgd", "case": name, "batch": batch, "side": side, "steps": steps, "repeats": reps,
                     **compare(*interleaved(ours, theirs, x, y, reps)), "same_result": same})
        print(format_table([rows[-1]], ["case", "liccs_median_s", "torchattacks_median_s", "ratio", "ratio_min",
                                        "paired_ratio_median", "same_result"]), flush=True)
    return rows


def run_peers(attack: str, repeats: int, steps: int, queries: int, case: str | None) -> list[dict[str, Any]]:
    """Time per APGD step or per Square query, liccs against torchattacks, on :func:`peer_cases`."""
    rows = []
    for name, (model, clf, batch, side) in peer_cases().items():
        if case and case not in name:
            continue
        if name.startswith("trained"):
            x = cifar_images(batch, model)[0]
        else:
            x = torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(1))
        y = predictions(model, x)  # every image correctly classified: both sides attack all of them
        if attack == "apgd":
            ours = APGD(model, eps=EPS, steps=steps, restarts=1, objective="ce", seed=0)
            theirs = torchattacks.APGD(model, norm="Linf", eps=EPS, steps=steps, n_restarts=1, loss="ce", seed=0)
        else:
            ours = Square(model, eps=EPS, queries=queries, p_init=SQUARE_P_INIT, seed=0)
            theirs = torchattacks.Square(model, norm="Linf", eps=EPS, n_queries=queries - 1, n_restarts=1,
                                         p_init=SQUARE_P_INIT, loss="margin", seed=0)
        count = Queries(clf)
        with torch.random.fork_rng():  # torchattacks seeds the global generator
            q_ours, q_theirs = count.during(ours, x, y), count.during(theirs, x, y)  # also the warm-up
            t_ours, t_theirs = interleaved(ours, theirs, x, y, repeats_of(name, repeats))
        per = (steps, steps) if attack == "apgd" else (q_ours, q_theirs)
        row = {"attack": attack, "case": name, "batch": batch, "side": side, "repeats": repeats_of(name, repeats),
               **({"steps": steps} if attack == "apgd" else {"queries": queries, "p_init": SQUARE_P_INIT}),
               "liccs_images_forwarded": q_ours, "torchattacks_images_forwarded": q_theirs,
               **compare(t_ours, t_theirs, *per, unit="step" if attack == "apgd" else "query")}
        rows.append(row)
        print(format_table([row], ["attack", "case", "unit", "liccs_median_s", "torchattacks_median_s", "ratio",
                                   "ratio_min", "paired_ratio_median"]), flush=True)
    return rows


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a binomial proportion ``k / n``."""
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def success_row(attack: str, fooled_ours: Tensor, fooled_theirs: Tensor, **extra: Any) -> dict[str, Any]:
    """Rates, Wilson CIs, whether each rate lies in the other's CI and whether the CIs overlap, McNemar's p."""
    n = len(fooled_ours)
    k_ours, k_theirs = int(fooled_ours.sum()), int(fooled_theirs.sum())
    p_ours, p_theirs = k_ours / n, k_theirs / n
    ci_ours, ci_theirs = wilson(k_ours, n), wilson(k_theirs, n)
    return {"attack": attack, **extra, "images": n, "liccs_success": p_ours, "liccs_ci95": list(ci_ours),
            "torchattacks_success": p_theirs, "torchattacks_ci95": list(ci_theirs),
            "within": ci_theirs[0] <= p_ours <= ci_theirs[1] and ci_ours[0] <= p_theirs <= ci_ours[1],
            "overlap": ci_ours[0] <= ci_theirs[1] and ci_theirs[0] <= ci_ours[1],
            "mcnemar_p": mcnemar_exact(fooled_ours.numpy().astype(int), fooled_theirs.numpy().astype(int))}


def run_success(images: int, batch: int) -> list[dict[str, Any]]:
    """Success rates of both implementations on the trained LICCS, over the correctly classified images."""
    model = trained_liccs()
    x, y = cifar_images(images, model)
    ok = predictions(model, x) == y
    x, y = x[ok], y[ok]
    print(f"success: {int(ok.sum())} of {images} images correctly classified", flush=True)
    (a_eps, a_steps), (s_eps, s_queries, s_p) = SUCCESS_APGD, SUCCESS_SQUARE
    pairs = {
        "apgd": (APGD(model, eps=a_eps, steps=a_steps, restarts=1, objective="ce", seed=0),
                 torchattacks.APGD(model, norm="Linf", eps=a_eps, steps=a_steps, n_restarts=1, loss="ce", seed=0),
                 {"eps": f"{round(a_eps * 255)}/255", "steps": a_steps}),
        "square": (Square(model, eps=s_eps, queries=s_queries, p_init=s_p, seed=0),
                   torchattacks.Square(model, norm="Linf", eps=s_eps, n_queries=s_queries - 1, n_restarts=1,
                                       p_init=s_p, loss="margin", seed=0),
                   {"eps": f"{round(s_eps * 255)}/255", "queries": s_queries, "p_init": s_p}),
    }
    rows = []
    for attack, (ours, theirs, extra) in pairs.items():
        fooled = []
        for atk in (ours, theirs):
            with torch.random.fork_rng():
                t0 = time.perf_counter()
                adv = torch.cat([atk(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)])
                extra[f"{'liccs' if atk is ours else 'torchattacks'}_s"] = time.perf_counter() - t0
            fooled.append(predictions(model, adv) != y)
        rows.append(success_row(attack, *fooled, **extra))
        print(format_table([rows[-1]], ["attack", "images", "liccs_success", "liccs_ci95", "torchattacks_success",
                                        "torchattacks_ci95", "within", "mcnemar_p"]), flush=True)
    return rows


def ci_text(ci: list[float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def report(result: dict[str, list[dict[str, Any]]], a: argparse.Namespace, m: dict[str, Any]) -> str:
    """The Markdown of a run."""
    parts = [f"# liccs's attacks against torchattacks'\n\n`python benchmarks/attack_speed.py` — {a.repeats} "
             f"interleaved repeats ({OVERHEAD_REPEATS}× for the loop-overhead cases), {a.threads} thread(s), torch "
             f"{m['packages']['torch']}, torchattacks {torchattacks.__version__}, {m['device']['cpu']} "
             f"({m['device']['cpu_count']} cores, shared), commit "
             f"{m['commit']}. ratio = liccs / torchattacks, of the medians and of the minima; paired_ratio_median = "
             "median over repeats of the ratio of the two calls adjacent in time (load drift cancels). < 1: liccs "
             f"faster. Load average (1/5/15 min) before {m.get('loadavg_before')}, after {m.get('loadavg_after')}."
             "\n"]
    timing = ["case", "liccs_median_s", "torchattacks_median_s", "ratio", "ratio_min", "paired_ratio_median"]
    if result.get("pgd"):
        parts.append(f"## PGD: seconds per call\n\nL∞ eps 8/255, step 2/255, {a.steps} steps, no random start; both "
                     "loops return the last iterate and compute identical images (same_result), so a gap is loop "
                     "overhead or machine noise.\n\n"
                     + format_table(result["pgd"], ["case", "batch", "side", *timing[1:], "same_result"]))
    if result.get("apgd"):
        parts.append(f"## APGD (Croce & Hein 2020): seconds per step\n\nL∞ eps 8/255, CE, {a.steps} steps, one run "
                     "(no restarts), labels = the model's clean predictions. torchattacks runs one more gradient "
                     "(at the last iterate) and one clean forward pass per call; liccs evaluates its last iterate "
                     "without a gradient.\n\n" + format_table(result["apgd"], ["case", "batch", "side", *timing[1:]]))
    if result.get("square"):
        parts.append(f"## Square (Andriushchenko et al. 2020): seconds per query\n\nL∞ eps 8/255, margin loss, "
                     f"p_init {SQUARE_P_INIT}, budget {a.queries} queries per image (torchattacks n_queries = "
                     f"{a.queries - 1} after its start), labels = the model's clean predictions; a query is one "
                     "image through the classifier (forward hook), the clean pass included.\n\n"
                     + format_table(result["square"], ["case", "batch", "side", "liccs_images_forwarded",
                                                       "torchattacks_images_forwarded", *timing[1:]]))
    if result.get("success"):
        rows = [{**r, "liccs_ci95": ci_text(r["liccs_ci95"]), "torchattacks_ci95": ci_text(r["torchattacks_ci95"])}
                for r in result["success"]]
        parts.append(f"## Success rates on the trained LICCS\n\n{TRAINED_CODEC} → {TRAINED_CLASSIFIER} (STE "
                     f"surrogate), the first {a.images} CIFAR-10 test images at 64 px (nearest), counted over those "
                     "the model classifies correctly; success = the returned image is misclassified. Wilson 95% "
                     "CIs; within = each rate lies in the other's CI; overlap = the CIs intersect; mcnemar_p: exact "
                     "McNemar test of the paired outcomes.\n\n"
                     + format_table(rows, ["attack", "eps", "steps", "queries", "p_init", "images", "liccs_success",
                                           "liccs_ci95", "torchattacks_success", "torchattacks_ci95", "within",
                                           "overlap", "mcnemar_p", "liccs_s", "torchattacks_s"]))
    return "\n\n".join(parts) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="the sections to run")
    p.add_argument("--case", default=None, help="run only the timing cases whose name contains this")
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--steps", type=int, default=10, help="PGD and APGD steps of the timing cases")
    p.add_argument("--queries", type=int, default=50, help="Square's query budget in the timing cases")
    p.add_argument("--images", type=int, default=256, help="CIFAR-10 test images of the success section")
    p.add_argument("--batch", type=int, default=64, help="batch of the success section")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: steadier on a shared CPU)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"where the results go (default {OUT}; a run of a subset writes only with --out)")
    a = p.parse_args()
    subset = a.case is not None or set(a.only) != set(SECTIONS)
    out = a.out if a.out is not None else None if subset else OUT
    commit = git_commit()  # before this script writes its (tracked) results
    torch.set_num_threads(a.threads)
    load_before = os.getloadavg()
    result: dict[str, list[dict[str, Any]]] = {}
    if "pgd" in a.only:
        result["pgd"] = run_pgd(a.repeats, a.steps, a.case)
    for attack in ("apgd", "square"):
        if attack in a.only:
            result[attack] = run_peers(attack, a.repeats, a.steps, a.queries, a.case)
    if "success" in a.only:
        result["success"] = run_success(a.images, a.batch)
    if out is None:
        return
    cfg = {k: v for k, v in vars(a).items() if k != "out"} | {
        "norm": "linf", "eps": "8/255 (timing)", "pgd": {"alpha": "2/255", "random_start": False},
        "square_p_init": SQUARE_P_INIT, "trained": [TRAINED_CODEC, TRAINED_CLASSIFIER],
        "success": {"apgd": {"eps": SUCCESS_APGD[0], "steps": SUCCESS_APGD[1]},
                    "square": dict(zip(("eps", "queries", "p_init"), SUCCESS_SQUARE, strict=True))},
        "timer": "perf_counter around attack(images, labels)",
        "order": "interleaved, alternating which goes first, after one warm-up call each"}
    m = manifest(cfg, started_at=commit, benchmark="attack_speed", torchattacks=torchattacks.__version__,
                 loadavg_before=load_before, loadavg_after=os.getloadavg(),
                 command="python benchmarks/attack_speed.py" + "".join(f" {v}" for v in sys.argv[1:]))
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "attack_speed.json", result)
    write_json(out / "attack_speed.manifest.json", m)
    (out / "attack_speed.md").write_text(report(result, a, m))
    print(f"wrote {out}/attack_speed.json, attack_speed.manifest.json and attack_speed.md")


if __name__ == "__main__":
    main()
