"""The adversarial images (float and uint8-rounded) through every deployed engine × target model (routes:
:mod:`liccs.checks.predictors`), the transfer gap against the reference engine, and the white-box diagonal; with
``transfer.square_queries`` > 0, Square (scores only) against every engine × target itself; with
``attack.compare``, the run's attack against each compared one (``attack_compare``)."""

from __future__ import annotations

import time
from contextlib import ExitStack

import pandas as pd
from torch import Tensor

from liccs.attack.square import square_attack
from liccs.checks.engine_aware import engine_aware_summary
from liccs.checks.predictors import predictors
from liccs.checks.transfer import Predictions, gap_summary, transfer_gap, transfer_matrix
from liccs.config import RunConfig
from liccs.core.executor import Task
from liccs.engines import ENGINES, EngineUnavailable
from liccs.stage import (
    Context,
    Exports,
    Results,
    RunError,
    StageBase,
    StageResult,
    TableSpec,
    register,
    task_resources,
)
from liccs.stages.attack import compare_label, target_labels


def square_rows(ctx: Context, engine: str, fns: dict) -> list[dict]:
    """Square (Andriushchenko et al. 2020) on every target of ``engine`` (or those of ``transfer.square_targets``),
    through its deployed predict function only: per target the ASR over the clean-correct images of the first
    ``transfer.square_images``, and the median and mean queries per success (untargeted, at ``attack.eps`` and
    ``attack.norm``)."""
    tc, a = ctx.cfg.transfer, ctx.cfg.attack
    n = min(tc.square_images, len(ctx.images))
    x, y = ctx.images[:n], ctx.labels[:n]
    rows = []
    for target, fn in fns.items():
        if tc.square_targets and target not in tc.square_targets:
            continue
        t0 = time.perf_counter()
        res = square_attack(fn, x, y, eps=a.eps, norm=a.norm, queries=tc.square_queries, p_init=tc.square_p_init,
                            seed=ctx.cfg.run.seed)
        ok = res.clean_correct
        hit = res.success & ok
        q = res.queries[hit].float()
        rows.append({"engine": engine, "target": target, "images": n, "clean_correct": int(ok.sum()),
                     "asr": float(hit.sum()) / max(1, int(ok.sum())),
                     "median_queries": float(q.median()) if len(q) else None,
                     "mean_queries": float(q.mean()) if len(q) else None, "budget": tc.square_queries,
                     "eps": a.eps, "norm": a.norm, "seconds": round(time.perf_counter() - t0, 2)})
    return rows


def transfer_on(ctx: Context, engine: str, adversarial: dict[str, Tensor], exports: Exports, reference: Predictions
                | None) -> tuple[pd.DataFrame, Predictions, list[dict[str, str]], list[dict]] | str:
    """One engine's transfer (a task): (table, its predictions, routes, Square rows), or why the engine cannot run
    here."""
    tc = ctx.cfg.transfer
    with ExitStack() as owned:  # the engine's runners, released when its transfer is done
        try:
            fns, how = owned.enter_context(predictors(ctx, engine, exports))
        except EngineUnavailable as e:
            return str(e)
        table, preds = transfer_matrix(adversarial, ctx.images, ctx.labels, fns, engine=engine, reference=reference,
                                       variants=tc.variants, batch_size=tc.batch_size,
                                       target_labels=target_labels(ctx) if ctx.cfg.attack.targeted else None,
                                       progress=False)
        square = square_rows(ctx, engine, fns) if tc.square_queries > 0 else []
    return table, preds, [{"engine": engine, "target": t, "route": r} for t, r in how.items()], square


def run_transfer(ctx: Context, adversarial: dict[str, Tensor], exports: Exports,
                 progress: bool = True) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """(tables: transfer (engine × source × target × variant), routes, gaps against the reference engine, their
    summary, the white-box diagonal; engines that could not run: name → reason).

    One task per engine on ``ctx.executor``: the reference engine first (its predictions feed the agreement
    columns), then every other engine side by side. On a parallel executor a task rebuilds the deployed codecs it
    needs from the artifact cache (runners do not travel)."""
    tc = ctx.cfg.transfer
    engines = ctx.names.engines("transfer")
    others = [e for e in engines if e != tc.reference_engine]
    shipped = exports if ctx.executor.in_process else Exports(cache=exports.cache)

    def tasks(names: list[str], reference: Predictions | None) -> list[Task]:
        return [Task(f"transfer:{e}", e, transfer_on, (ctx, e, adversarial, shipped, reference),
                     **task_resources(ctx.cfg) | {"num_gpus": int(ENGINES.get(e).device == "cuda")}) for e in names]

    first = ctx.executor.run(tasks([tc.reference_engine], None), "transfer (reference)", progress)
    ref = first.get(f"transfer:{tc.reference_engine}")
    if ref is None or isinstance(ref, str):
        raise RunError(f"transfer.reference_engine {tc.reference_engine!r} could not run the transfer: "
                       f"{ref or 'its task failed (see Failed)'}")
    done = {tc.reference_engine: ref}
    if others:  # a task that failed on the executor is missing here and named in the run's Failed table
        rest = ctx.executor.run(tasks(others, ref[1]), "transfer engines", progress)
        done |= {e: rest.get(f"transfer:{e}") for e in others}
    frames, routes, square, skipped = [], [], [], {}
    for engine, res in done.items():
        if isinstance(res, str):
            skipped[f"{engine}:transfer"] = res
        elif res is not None:
            frames.append(res[0])
            routes += res[2]
            square += res[3]
    table = pd.concat(frames, ignore_index=True)
    out = {"transfer": table, "transfer_routes": pd.DataFrame(routes)}
    if table["engine"].nunique() > 1:
        gaps = transfer_gap(table, reference_engine=tc.reference_engine,
                            precision={e: ENGINES.get(e).precision for e in engines})
        out["transfer_gap"] = gaps.rename(columns={"asr": "asr_engine"})  # one ASR heatmap set is enough
        out["transfer_gap_summary"] = gap_summary(gaps)
    out["whitebox"] = whitebox(table, tc.reference_engine)
    if square:
        out["square"] = pd.DataFrame(square)
    if ctx.cfg.attack.compare:
        out["attack_compare"] = attack_compare(table, ctx.cfg.attack.name, ctx.cfg.attack.compare)
    preds = {e: res[1] for e, res in done.items() if res is not None and not isinstance(res, str)}
    aware = engine_aware_summary(ctx.labels.numpy(), preds, list(adversarial), reference_engine=tc.reference_engine,
                                 variant="uint8" if "uint8" in tc.variants else tc.variants[0])
    if not aware.empty:
        out["engine_aware"] = aware
    return out, skipped


def whitebox(table: pd.DataFrame, reference_engine: str) -> pd.DataFrame:
    """The diagonal: each source attacked and evaluated on itself, per engine and variant."""
    diag = table[table["source"] == table["target"]]
    cols = ["engine", "variant", "source", "clean_acc", "adv_acc", "asr", "n_clean_correct", "fooling_rate"]
    return diag[cols].reset_index(drop=True) if not diag.empty else pd.DataFrame(columns=cols)



def attack_compare(table: pd.DataFrame, name: str, compare: list[str]) -> pd.DataFrame:
    """Per engine, variant and source: the ASR of the run's attack (``name``) and of each compared one on the
    source's own target (the white-box diagonal), and the difference (compared − run's)."""
    diag = table[table["source"] == table["target"]]
    rows = []
    for c in compare:
        other = table[table["source"] == table["target"].map(lambda t, c=c: compare_label(t, c))]
        merged = diag.merge(other[["engine", "variant", "target", "asr"]], on=["engine", "variant", "target"],
                            suffixes=("", "_compared"))
        rows += [{"engine": r.engine, "variant": r.variant, "source": r.source, "attack": name, "asr": r.asr,
                  "compared": c, "asr_compared": r.asr_compared, "difference": r.asr_compared - r.asr}
                 for r in merged.itertuples()]
    cols = ["engine", "variant", "source", "attack", "asr", "compared", "asr_compared", "difference"]
    return pd.DataFrame(rows, columns=cols)


def engine_aware_note(r: dict) -> str:
    """One line of the report per engine-aware contrast."""
    line = (f"{r['source']} on {r['engine']} ({r['measure']}): {r['mean_a']:.3f} vs {r['mean_b']:.3f}, effect "
            f"{r['effect']:+.3f} ({100 * r['ci_level']:.4g}% CI {r['ci_low']:+.3f} … {r['ci_high']:+.3f}, "
            f"{r['ci_method']}), p (Holm) {r['p_holm']:.2g}, "
            f"MDE {r['mde']:.3f} at n = {r['n_images']}: {r['verdict']}")
    if r["measure"] == "recovered":
        line += (f"; share of the gap recovered {r['share']:.2f} (95% CI {r['share_ci_low']:.2f} … "
                 f"{r['share_ci_high']:.2f})" if r["share"] == r["share"] else
                 "; no share of the gap reported: the gap itself is not established")
    return line


class TransferStage(StageBase):
    """Every attack source's images on every transfer engine × target (needs the attack stage)."""

    name, section, order = "transfer", "transfer", 40
    tables = (
        TableSpec("transfer_gap_summary", "Transfer gap ASR(reference) − ASR(engine), per engine, precision and "
                  "variant.", order=11),
        TableSpec("engine_aware", "Engine-aware attacks (crafted on the replica of a deployed engine) against the "
                  "PyTorch-crafted attack, white-box, paired over the images the target classifies correctly on "
                  "both engines: the transfer gap, the part of it recovered (share = recovered / gap, bootstrap CI), "
                  "and the differential attack's deployed-only fooling rate.",
                  ("engine", "target", "source", "measure", "n_images", "mean_a", "mean_b", "effect", "ci_low",
                   "ci_high", "ci_method", "p_holm", "mde", "verdict", "share", "share_ci_low", "share_ci_high"),
                  order=13),
        TableSpec("whitebox", "White-box: each source evaluated on itself (hard rounding), per engine.", order=12),
        TableSpec("transfer", "Transfer: engine × source × target × variant (ASR over clean-correct images).",
                  ("engine", "variant", "source", "target", "clean_acc", "adv_acc", "asr", "fooling_rate",
                   "agree_clean", "agree_adv"), order=20),
        TableSpec("transfer_gap", "Transfer gap per cell.", order=21),
        TableSpec("transfer_routes", "How each target runs on each engine.", order=22),
        TableSpec("square", "Square (score-based, black box) against every deployed engine × target through its "
                  "outputs only: ASR over the clean-correct images, median and mean queries per success.",
                  ("engine", "target", "images", "clean_correct", "asr", "median_queries", "mean_queries", "budget",
                   "eps", "norm", "seconds"), order=23),
        TableSpec("attack_compare", "The run's attack against each attack of attack.compare (crafted on the same "
                  "PyTorch source), white-box on every engine: ASR and difference (compared − run's).",
                  ("engine", "variant", "source", "attack", "asr", "compared", "asr_compared", "difference"),
                  order=24),
    )

    def enabled(self, cfg: RunConfig) -> bool:
        return cfg.transfer.enabled and cfg.attack.enabled

    def run(self, ctx: Context, results: Results) -> StageResult:
        tables, skipped = run_transfer(ctx, results.adversarial, results.exports, ctx.progress)
        gaps = tables.get("transfer_gap_summary")
        notes = [] if gaps is None or gaps.empty else [
            "Transfer gap ASR(reference) − ASR(engine), mean over cells: " + "; ".join(
                f"{r.engine} ({r.precision}, {r.variant}) {r.mean_gap:+.3f}" for r in gaps.itertuples())]
        aware = tables.get("engine_aware")
        if aware is not None:
            notes += [engine_aware_note(r) for r in aware.to_dict("records")]
        return StageResult(tables, notes=notes, skipped=skipped)


register(TransferStage())
