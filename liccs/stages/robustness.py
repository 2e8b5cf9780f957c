"""Checks of the attack evaluation itself, on one target in PyTorch (``[robustness]``):

- ``standard``: the standard evaluation (:class:`~liccs.attack.standard.StandardEvaluation`: per image the worst case
  over APGD-CE, APGD-T and Square; Croce & Hein 2020) beside the run's attack on the same images, paired over the
  images (McNemar), with the attack that found each success. A run's attack that leaves clearly more images
  unfooled than the standard evaluation makes every robustness number of the run an upper bound; the report says so.
- ``sanity``: the run's attack over growing eps and steps and at an unbounded eps
  (:func:`~liccs.attack.sanity.sanity_table`; Carlini et al., "On evaluating adversarial robustness", 2019). Each
  failed row is named at the top of the report.

The attacked model is the target's white-box PyTorch model (LICCS with ``attack.surrogate``, or the classifier
alone); success is judged by it. Both tables are cached under ``<run.out>/robustness/`` by a key of the attack and
robustness config, the weights, the images and the seed.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from liccs.attack.base import Attack
from liccs.attack.sanity import sanity_table
from liccs.attack.spec import AttackSpec
from liccs.attack.standard import SUITE, StandardEvaluation
from liccs.config import ConfigError, RunConfig
from liccs.core.fileio import json_digest, load_keyed, save_keyed
from liccs.core.stats import paired
from liccs.stage import Context, Names, Results, StageBase, StageResult, TableSpec, device_key, register
from liccs.stages.attack import source_model, source_objective


def robustness_target(cfg: RunConfig) -> str:
    """The target of ``[robustness]``: ``robustness.target``, or the first codec."""
    return cfg.robustness.target or cfg.models.codecs[0]


def _key(ctx: Context, target: str, n: int) -> str:
    cfg = ctx.cfg
    sections = cfg.to_dict()
    return json_digest({"attack": sections["attack"], "robustness": sections["robustness"],
                        "seed": cfg.run.seed, "target": target,
                        "weights": ctx.weights.get(target, {}).get("sha256"),
                        "classifier": ctx.weights.get(cfg.models.classifier, {}).get("sha256"),
                        "images": hashlib.sha256(ctx.images[:n].numpy().tobytes()).hexdigest(),
                        "labels": ctx.labels[:n].tolist(), **device_key(cfg)})


def run_attack(ctx: Context, model: Any, target: str, eps: float, steps: int) -> Attack:
    """The run's attack (``attack.name`` with ``[attack.params]``) on ``model`` at ``eps`` and ``steps``, its step
    size scaled by ``eps / attack.eps`` (the same schedule over a larger ball)."""
    a = ctx.cfg.attack
    return AttackSpec.from_run(a.name, steps=steps, step_size=a.step_size * eps / a.eps, random_start=a.random_start,
                               eps=eps, params=a.params, norm=a.norm, targeted=False,
                               objective=source_objective(ctx, target), seed=ctx.cfg.run.seed).build(model)


def unbounded_eps(norm: str, x: Tensor) -> float:
    """A radius that holds the whole image box: 1 for L∞, the box's diagonal for L2."""
    return 1.0 if norm == "linf" else math.sqrt(x[0].numel())


def standard_rows(ctx: Context, model: Any, target: str, x: Tensor, y: Tensor,
                  run_adv: Tensor) -> list[dict[str, Any]]:
    """The run's attack and the standard evaluation on the same images: clean and robust accuracy, the attack
    that found each success, and the paired difference in images fooled (standard − run's, McNemar)."""
    r, a = ctx.cfg.robustness, ctx.cfg.attack
    std = StandardEvaluation(model, eps=a.eps, norm=a.norm, steps=a.steps, restarts=r.restarts,
                             target_classes=r.target_classes, queries=r.queries, seed=ctx.cfg.run.seed,
                             progress=False)
    adv = std(x, y)
    with torch.no_grad():
        clean_ok = (model(x).argmax(1) == y).numpy()
        run_fooled = (model(run_adv).argmax(1) != y).numpy() & clean_ok
        std_fooled = (model(adv).argmax(1) != y).numpy() & clean_ok
    c = paired(std_fooled.astype(float), run_fooled.astype(float), kind="binary", what="standard vs run's attack")
    found = std.summary()
    base = {"target": target, "images": len(y), "clean_acc": float(clean_ok.mean()), "eps": a.eps, "norm": a.norm,
            "steps": a.steps}
    rows = [{**base, "evaluation": a.name, "robust_acc": float((clean_ok & ~run_fooled).mean()),
             "fooled": int(run_fooled.sum())},
            {**base, "evaluation": "standard", "robust_acc": float((clean_ok & ~std_fooled).mean()),
             "fooled": int(std_fooled.sum()), **{f"by_{k.replace('-', '_')}": found[k] for k in SUITE},
             "difference": c.effect, "ci_low": c.ci_low, "ci_high": c.ci_high, "p": c.p, "test": c.test}]
    return rows


def sanity_rows(ctx: Context, model: Any, target: str, x: Tensor, y: Tensor) -> list[dict[str, Any]]:
    """:func:`~liccs.attack.sanity.sanity_table` of the run's attack on ``target``; success may fall by one image
    as the budget grows (a random start's noise) before a row fails."""
    r, a = ctx.cfg.robustness, ctx.cfg.attack
    rows = sanity_table(lambda e, s: run_attack(ctx, model, target, e, s), x, y,
                        eps=[m * a.eps for m in r.sanity_eps], steps=list(r.sanity_steps), focus_eps=a.eps,
                        unbounded_eps=unbounded_eps(a.norm, x), tol=1.0 / len(y) + 1e-9)
    return [{"target": target, "images": len(y), **row} for row in rows]


def sanity_notes(sanity: pd.DataFrame, standard: pd.DataFrame) -> list[str]:
    """Header lines for every failed sanity row, and for a run's attack clearly weaker than the standard one."""
    notes = [f"Sanity check failed ({row.check}, {row.attack} on {row.target}, eps {row.eps:.4g}, steps {row.steps}):"
             f" {row.why}" for row in sanity.itertuples() if not row.ok]
    if not standard.empty:
        s = standard[standard["evaluation"] == "standard"].iloc[0]
        run = standard[standard["evaluation"] != "standard"].iloc[0]
        if s["ci_low"] > 0:
            notes.append(f"The run's attack ({run['evaluation']}) is weaker than the standard evaluation on "
                         f"{s['target']}: robust accuracy {run['robust_acc']:.3f} vs {s['robust_acc']:.3f} (images "
                         f"fooled +{s['difference']:.3f}, 95% CI {s['ci_low']:+.3f} … {s['ci_high']:+.3f}): the "
                         "run's robustness numbers are upper bounds")
    return notes


class RobustnessStage(StageBase):
    """The standard evaluation and the sanity checks of the run's attack, on one target (needs the attack
    stage's images of that target where it made them)."""

    name, section, order = "robustness", "robustness", 35
    tables = (
        TableSpec("standard", "The standard evaluation (per image the worst case over APGD-CE, APGD-T and Square; "
                  "Croce & Hein 2020) against the run's attack, white-box on the target in PyTorch: robust "
                  "accuracy, the attack that first fooled each image, and the paired difference in images fooled "
                  "(standard − run's; McNemar).",
                  ("target", "evaluation", "images", "clean_acc", "robust_acc", "fooled", "by_apgd_ce", "by_apgd_t",
                   "by_square", "difference", "ci_low", "ci_high", "p", "eps", "norm", "steps"), order=15),
        TableSpec("sanity", "Sanity checks of the run's attack (Carlini et al. 2019): success must not fall as eps "
                  "or steps grow (by more than one image), and an unbounded eps must fool ≥ 99% of the images.",
                  ("target", "check", "attack", "eps", "steps", "images", "success", "ok", "why"), order=16),
    )

    def enabled(self, cfg: RunConfig) -> bool:
        return cfg.robustness.enabled and cfg.attack.enabled

    def check(self, cfg: RunConfig, names: Names) -> None:
        target = robustness_target(cfg)
        valid = [*names.codecs, *([cfg.models.classifier] if cfg.models.classifier_alone else [])]
        if target not in valid:
            raise ConfigError(f"robustness.target: {target!r} is not a model of the run; valid: {', '.join(valid)}")
        if cfg.attack.objective != "classification" or cfg.attack.targeted:
            raise ConfigError("[robustness] checks an untargeted classification attack; attack.objective is "
                              f"{cfg.attack.objective!r}, attack.targeted {cfg.attack.targeted}: set "
                              "robustness.enabled = false")

    def run(self, ctx: Context, results: Results) -> StageResult:
        r = ctx.cfg.robustness
        target = robustness_target(ctx.cfg)
        n = min(r.images, len(ctx.images))
        x, y = ctx.images[:n], ctx.labels[:n]
        key = _key(ctx, target, n)
        path = ctx.out / "robustness" / f"robustness-{key[:16]}.pt"
        hit = load_keyed(path, key)
        if hit is None:
            model = source_model(ctx, target)
            run_adv = results.adversarial.get(target)
            run_adv = run_adv[:n] if run_adv is not None else run_attack(ctx, model, target, ctx.cfg.attack.eps,
                                                                         ctx.cfg.attack.steps)(x, y)
            standard = standard_rows(ctx, model, target, x, y, run_adv) if r.standard else []
            sanity = sanity_rows(ctx, model, target, x, y) if r.sanity else []
            hit = {"key": key, "standard": standard, "sanity": sanity}
            save_keyed(path, hit)
        standard, sanity = pd.DataFrame(hit["standard"]), pd.DataFrame(hit["sanity"])
        tables = {k: v for k, v in (("standard", standard), ("sanity", sanity)) if not v.empty}
        return StageResult(tables, notes=sanity_notes(sanity, standard))


register(RobustnessStage())
