"""Paper A's work as executor tasks ("Transferable learned image compression-resistant adversarial perturbations").

On a parallel executor (``--executor ray``) the stage runs its work in three batches of tasks, each as wide as the
data allows: (1) the sweep's source sets and the clean top-1 of every (image set, target); (2) once the focus
setting is chosen, every source set that depends on it (focus, the longer steps, lineage, classifier alone, the
replication units and every k-set of the sampling); (3) the deployed replay, one task per (engine, target)
(:mod:`liccs.papers.a.deployed`). A craft task stores its images under the key :func:`~liccs.papers.a.attacks.craft`
reads and its targets' top-1 in the run's :class:`~liccs.papers.a.memo.PredictionMemo`, where the driver's cells
then find them: the driver reads results from the stored files, so a serial run and a Ray run give the same
tables. The serial executor runs no task: the driver crafts and evaluates on demand, in one pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from liccs.checks.predictors import predictors
from liccs.checks.transfer import as_uint8_variant
from liccs.core.executor import Task
from liccs.papers.a.attacks import craft, stored_as
from liccs.papers.a.cells import Setting, predict
from liccs.papers.a.memo import memo_for
from liccs.stage import Context, Exports, task_resources

#: One source set to craft: (members, images, labels, setting, the targets its images are evaluated on).
Job = tuple[list[str], Tensor, Tensor, Setting | None, list[str]]


def run_tasks(ctx: Context, tasks: Sequence[Task], desc: str) -> dict[str, Any]:
    """{key: value} of the tasks (one per key) on a parallel executor; on the serial executor nothing runs ({})."""
    if ctx.executor.in_process or not tasks:
        return {}
    return ctx.executor.run(list({t.key: t for t in tasks}.values()), desc, ctx.progress)


def _keep_top1(ctx: Context, out: Path, images: Tensor, targets: list[str]) -> None:
    """Every target's top-1 on ``images`` into the run's memo (computed unless kept); nothing without a memo (a
    reference engine other than PyTorch: the driver evaluates)."""
    memo = memo_for(ctx, out)
    if memo is None or not targets:
        return
    bs = ctx.cfg.transfer.batch_size
    with predictors(ctx, "torch", Exports(), targets=targets) as (fns, _):
        for t in targets:
            memo(t, images, lambda t=t: predict(fns[t], images, bs))


def _craft_task(ctx: Context, out: Path, members: list[str], images: Tensor, labels: Tensor,
                setting: Setting | None, targets: list[str]) -> bool:
    """One source set: craft (or find stored) its images and keep its targets' top-1; whether it was stored."""
    adv, _, cached = craft(ctx, out, members, images, labels, setting=setting)
    _keep_top1(ctx, out, as_uint8_variant(adv), targets)
    return cached


def craft_tasks(ctx: Context, out: Path, jobs: Sequence[Job]) -> list[Task]:
    """One task per job (its key: the crafted set's)."""
    return [Task(stored_as(ctx, out, members, images, labels, setting=setting)[1], "+".join(members), _craft_task,
                 (ctx, out, list(members), images, labels, setting, list(targets)), **task_resources(ctx.cfg))
            for members, images, labels, setting, targets in jobs]


def _clean_task(ctx: Context, out: Path, images: Tensor, target: str) -> None:
    _keep_top1(ctx, out, images, [target])


def clean_tasks(ctx: Context, out: Path, image_sets: Sequence[tuple[Tensor, list[str]]]) -> list[Task]:
    """One task per (image set, target): the target's clean top-1, kept in the memo (none without a memo)."""
    if memo_for(ctx, out) is None:
        return []
    tasks = []
    for images, targets in image_sets:
        digest = hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16]
        tasks += [Task(f"clean:{digest}:{t}", f"clean {t}", _clean_task, (ctx, out, images, t),
                       **task_resources(ctx.cfg)) for t in dict.fromkeys(targets)]
    return tasks


def fresh_sets(done: dict[str, Any]) -> frozenset[str]:
    """The keys of the source sets the tasks crafted now (not found stored)."""
    return frozenset(k for k, v in done.items() if v is False)
