"""Render the mini zoo's evaluation (``results``) as plots, CSV and a Markdown report with the quality bars."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

ACC_TOLERANCE = 0.03  # LICCS at the top quality within 3 points of the classifier alone
CLASSIFIER_BAR = 0.85
JPEG_MARGIN_DB = -1.0


def _training_order(logs: dict[Any, list[dict[str, float]]]) -> list[Any]:
    """The keys of per-quality training logs in training order: the base (the longest log), the qualities
    above it ascending, then those below it descending (:meth:`liccs.zoo.mini.train_codec.LadderConfig.order`)."""
    keys = sorted(logs, key=int)
    if not keys:
        return []
    base = max(keys, key=lambda k: (len(logs[k]), int(k)))
    i = keys.index(base)
    return [base, *keys[i + 1 :], *keys[:i][::-1]]


def _plots(results: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for c in results["classifiers"]:
        axes[0].plot([r["step"] for r in c["log"]], [r["loss"] for r in c["log"]], label=c["name"], lw=0.8)
    axes[0].set(title="classifier training loss", xlabel="step", ylabel="cross-entropy (label smoothing)")
    axes[0].legend()
    for lad in results["cifar_ladders"] + results["natural_ladders"]:
        offset = 0
        for q in _training_order(lad["logs"]):
            lg = lad["logs"][q]
            if not lg:
                continue
            axes[1].plot([offset + r["step"] for r in lg], [r["loss"] for r in lg], lw=0.8,
                         label=lad["name"] if offset == 0 else None,
                         color=f"C{(results['cifar_ladders'] + results['natural_ladders']).index(lad)}")
            offset += lg[-1]["step"]
    axes[1].set(title="codec loss λ·255²·MSE + bpp (base, up, down)", xlabel="step",
                ylabel="loss", yscale="log")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "loss_curves.png", dpi=110)
    plt.close(fig)
    files.append("loss_curves.png")

    if results["cifar_ladders"]:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for lad in results["cifar_ladders"]:
            rows = [r for r in lad["rows"] if r["trained"]]
            axes[0].plot([r["bpp"] for r in rows], [r["psnr"] for r in rows], "o-", label=lad["name"])
            axes[1].plot([r["bpp"] for r in rows], [100 * r["liccs_top1"] for r in rows], "o-", label=lad["name"])
        if "classifier_on_subset" in results:
            axes[1].axhline(100 * results["classifier_on_subset"], color="k", ls="--", label="classifier alone")
        axes[0].set(title="CIFAR-10 test, 64×64, real entropy coding", xlabel="bpp", ylabel="PSNR (dB)")
        axes[1].set(title=f"LICCS top-1 (codec → {results.get('liccs_classifier')})", xlabel="bpp", ylabel="top-1 (%)")
        for a in axes:
            a.legend(fontsize=7)
            a.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "rd_cifar.png", dpi=110)
        plt.close(fig)
        files.append("rd_cifar.png")

    if results["natural_ladders"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        j = results["jpeg_kodak"]
        ax.plot([r["bpp"] for r in j], [r["psnr"] for r in j], "s--", color="gray", label="Pillow JPEG")
        for lad in results["natural_ladders"]:
            rows = [r for r in lad["rows"] if r["trained"]]
            ax.plot([r["bpp"] for r in rows], [r["psnr"] for r in rows], "o-", label=lad["name"])
        ax.set(title="Kodak (24 images), real entropy coding", xlabel="bpp", ylabel="PSNR (dB)", xlim=(0, 2.0))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "rd_kodak.png", dpi=110)
        plt.close(fig)
        files.append("rd_kodak.png")
    return files


def _strictly_rising(vals: list[float]) -> bool:
    return all(b > a for a, b in zip(vals, vals[1:]))


def _num(v: float | None) -> str:
    """Seconds, or "not recorded" (committed weights carry no training record)."""
    return "not recorded" if v is None else f"{v:.0f}"


def _ok(flag: bool | None) -> str:
    return "n/a" if flag is None else ("PASS" if flag else "FAIL")


def _cost_section(results: dict[str, Any]) -> list[str]:
    """Training cost per model, and the whole-zoo bar: measured when this call trained every model."""
    models = results["classifiers"] + results["cifar_ladders"] + results["natural_ladders"]
    md = ["## Training cost", "",
          "Wall time is what each training took on the machine in `manifest.json` (other jobs sharing it make it "
          "an overstatement); CPU time is the training process's own (all threads), where recorded.", "",
          "| model | trained qualities | wall (s) | CPU (s) |", "|---|---|---|---|"]
    for m in models:
        n = "–" if "rows" not in m else f"{sum(r['trained'] for r in m['rows'])}/{len(m['rows'])}"
        md.append(f"| {m['name']} | {n} | {_num(m['train_wall_s'])} | {_num(m.get('train_cpu_s'))} |")
    total = sum(m["train_wall_s"] or 0 for m in models)
    md += ["", f"Sum of the recorded training wall times: {total:.0f} s ({total / 60:.1f} min). "
           f"Evaluation for this report: {results['eval_wall_s']:.0f} s.", ""]
    walls = results.get("walls_this_run_s") or {}
    # the whole zoo from scratch in this call: every model trained here (its call took at least its recorded training)
    one_run = bool(models) and all(
        m["name"] in walls and m["train_wall_s"] is not None and walls[m["name"]] >= 0.99 * m["train_wall_s"]
        and all(r["trained"] for r in m.get("rows", [])) for m in models)
    if one_run:
        run = sum(walls[m["name"]] for m in models)
        md += [f"**Whole zoo from scratch, measured:** this `liccs zoo train` call trained every model above from an "
               f"empty cache, data preparation included, in {run:.0f} s ({run / 60:.1f} min) of wall time; the "
               f"90-minute bar: {_ok(run / 60 <= 90)}.", ""]
        return md
    if models and all(m["train_wall_s"] is not None for m in models):
        md += [f"**Whole zoo from scratch, summed:** every model above was trained on this machine and timed, but not "
               f"all by one call; their training wall times add up to {total:.0f} s ({total / 60:.1f} min), without "
               f"the data loading each call adds (seconds, once the data cache exists); the 90-minute bar: "
               f"{_ok(total / 60 <= 90)}.", ""]
        return md
    cpus = [m.get("train_cpu_s") for m in models]
    known = [c for c in cpus if c]
    if known:
        cpu = sum(known)
        md += [f"Sum of the recorded training CPU times: {cpu:.0f} s ({cpu / 60:.1f} CPU-min; "
               f"{len(known)} of {len(cpus)} models recorded it). The models were not all trained by one call, so the "
               f"whole zoo's wall time is not measured here: on this 2-core CPU that CPU time is about {cpu / 120:.0f} "
               f"min of wall time with both cores busy; the 90-minute bar: "
               + (_ok(cpu / 120 <= 90) + " (estimated)" if len(known) == len(cpus) else
                  "not measured (some models have no CPU time on record)") + ".", ""]
    return md


def render(results: dict[str, Any], out: Path) -> None:
    """Write ``rd.csv``, the plots and ``report.md`` (with a PASS/FAIL line per quality bar) into ``out``."""
    files = _plots(results, out)
    with open(out / "rd.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "dataset", "quality", "lambda", "bpp", "bpp_likelihood_estimate", "psnr_db",
                    "liccs_top1", "train_wall_s"])
        for lad in results["cifar_ladders"]:
            for r in lad["rows"]:
                if r["trained"]:
                    w.writerow([lad["name"], "cifar10-test@64", r["quality"], r["lambda"], f"{r['bpp']:.4f}",
                                f"{r['bpp_likelihood_estimate']:.4f}", f"{r['psnr']:.3f}", f"{r['liccs_top1']:.4f}",
                                _num(r['train_wall_s'])])
        for lad in results["natural_ladders"]:
            for r in lad["rows"]:
                if r["trained"]:
                    w.writerow([lad["name"], "kodak", r["quality"], r["lambda"], f"{r['bpp']:.4f}", "",
                                f"{r['psnr']:.3f}", "", _num(r['train_wall_s'])])
        for r in results.get("jpeg_kodak", []):
            w.writerow(["pillow-jpeg", "kodak", r["quality"], "", f"{r['bpp']:.4f}", "", f"{r['psnr']:.3f}", "", ""])

    md = ["# Mini zoo training report", "",
          "Models trained by `liccs zoo train` on the shared data (CIFAR-10 train, imagenet-samples crops); "
          "evaluated on CIFAR-10 test and Kodak through the real entropy coder (`compress`/`decompress`). "
          "Written by `liccs.zoo.mini.report`; numbers come from the run recorded in `manifest.json`.", ""]
    md += ["## Classifier", "",
           "| model | clean top-1 (10k test) | top-1 at 64×64 LICCS geometry | train wall (s) | bar ≥ 85% |",
           "|---|---|---|---|---|"]
    for c in results["classifiers"]:
        md.append(f"| {c['name']} | {100 * c['top1']:.2f}% | {100 * c['top1_at_64']:.2f}% | "
                  f"{_num(c['train_wall_s'])} | {_ok(c['top1'] >= CLASSIFIER_BAR)} |")
    md += [""]
    if results["cifar_ladders"]:
        base = results.get("classifier_on_subset")
        md += ["## CIFAR-scale codec ladders (64×64, CIFAR-10 test)", "",
               f"{results['eval_images_cifar']} class-balanced test images upsampled to 64×64; bpp over the 64×64 "
               f"codec input from the real bitstream; LICCS = codec → {results.get('liccs_classifier')}. Classifier "
               f"alone on the same images: {100 * base:.2f}%." if base is not None else "", "",
               "| model | q | λ | bpp (real) | bpp (likelihood est.) | PSNR (dB) | LICCS top-1 | train wall (s) |",
               "|---|---|---|---|---|---|---|---|"]
        bars = []
        for lad in results["cifar_ladders"]:
            rows = [r for r in lad["rows"] if r["trained"]]
            for r in lad["rows"]:
                if not r["trained"]:
                    md.append(f"| {lad['name']} | {r['quality']} | not trained | | | | | |")
                    continue
                md.append(f"| {lad['name']} | {r['quality']} | {r['lambda']} | {r['bpp']:.4f} | "
                          f"{r['bpp_likelihood_estimate']:.4f} | {r['psnr']:.2f} | {100 * r['liccs_top1']:.2f}% | "
                          f"{_num(r['train_wall_s'])} |")
            if len(rows) >= 2 and base is not None:
                rising = _strictly_rising([r["bpp"] for r in rows]) and _strictly_rising([r["psnr"] for r in rows])
                top, low = rows[-1]["liccs_top1"], rows[0]["liccs_top1"]
                bars.append(f"- {lad['name']}: bpp and PSNR strictly rise with quality: {_ok(rising)}; "
                            f"top quality LICCS {100 * top:.2f}% vs classifier {100 * base:.2f}% "
                            f"(gap {100 * (base - top):.2f} points, bar ≤ 3): {_ok(base - top <= ACC_TOLERANCE)}; "
                            f"lowest quality {100 * low:.2f}% (top minus lowest: {100 * (top - low):+.2f} points, "
                            f"bar: visibly lower): {_ok(top - low > 0.02)}")
        at64 = [c["top1_at_64"] for c in results["classifiers"] if c["name"] == results.get("liccs_classifier")]
        if at64:
            md += ["", f"For reference, the classifier alone on the 64×64 geometry without a codec (CIFAR upsampled "
                   f"2× nearest, then its own area resize back to 32×32, an exact inverse pair), all 10k test images: "
                   f"{100 * at64[0]:.2f}%."]
        md += ["", "Quality bars:", "", *bars, ""]
    if results["natural_ladders"]:
        md += ["## Natural-image ladders on Kodak (24 images) against Pillow JPEG", "",
               "| model | q | λ | bpp | PSNR (dB) | train wall (s) |", "|---|---|---|---|---|---|"]
        for lad in results["natural_ladders"]:
            for r in lad["rows"]:
                md.append(f"| {lad['name']} | {r['quality']} | not trained | | | |" if not r["trained"] else
                          f"| {lad['name']} | {r['quality']} | {r['lambda']} | {r['bpp']:.4f} | {r['psnr']:.2f} | "
                          f"{_num(r['train_wall_s'])} |")
        md += ["", "| Pillow JPEG quality | bpp | PSNR (dB) |", "|---|---|---|"]
        md += [f"| {r['quality']} | {r['bpp']:.4f} | {r['psnr']:.2f} |" for r in results["jpeg_kodak"]]
        md += ["", "PSNR(codec) − PSNR(JPEG) at equal bpp, both curves linearly interpolated over the overlapping "
               "bpp range (bar: the minimum ≥ −1 dB):", ""]
        for lad in results["natural_ladders"]:
            v = lad.get("vs_jpeg")
            if not v or v["min_diff_db"] is None:
                md.append(f"- {lad['name']}: no overlap / not enough trained qualities")
                continue
            md.append(f"- {lad['name']}: overlap {v['overlap_lo']:.3f}–{v['overlap_hi']:.3f} bpp, min "
                      f"{v['min_diff_db']:+.2f} dB, mean {v['mean_diff_db']:+.2f} dB: "
                      f"{_ok(v['min_diff_db'] >= JPEG_MARGIN_DB)}")
        md += [""]
    md += _cost_section(results)
    missing = [f"{lad['name']}@q{r['quality']}" for lad in results["cifar_ladders"] + results["natural_ladders"]
               for r in lad["rows"] if not r["trained"]]
    if missing:
        md += ["## Not trained when this report was written", "", ", ".join(missing), ""]
    md += [f"![{f}]({f})" for f in files]
    (out / "report.md").write_text("\n".join(md) + "\n")
