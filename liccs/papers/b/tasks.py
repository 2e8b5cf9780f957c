"""Paper B's attacks as executor tasks ("A training-free defense framework for robust learned image compression").

On a parallel executor (``--executor ray``), every (attacked codec, attack) of the run is one task that crafts its
images and stores them under the key :func:`~liccs.papers.b.attacks.craft` reads, before the driver's loop
loads and measures them: the adaptive attacks (EoT over the defense's draws: most of the stage's time) run side by
side. The serial executor crafts on demand in the driver, in one pass. The defenses a task attacks are built as the
driver builds them (:func:`defenses`), from the run's config and seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from liccs.config import ConfigError, RunConfig
from liccs.core.errors import InputError
from liccs.core.executor import Task
from liccs.papers.b.attacks import AttackSpec, craft
from liccs.papers.b.defense import KWayDefense
from liccs.papers.b.defense_random import RandomKWayDefense, transform_family
from liccs.papers.b.eval import load_images
from liccs.stage import Context, task_resources


def defenses(cfg: RunConfig, codec: Any) -> tuple[dict[int, RandomKWayDefense], KWayDefense | None]:
    """The random K-way defense at every K of ``paper_b.k``, and the fixed K-way one (None when ``kway_k`` is 0)."""
    d = cfg.paper_b
    lmbda = None if d.lmbda == "codec" else float(d.lmbda)
    try:
        fam = transform_family(d.max_shift)
        randoms = {k: RandomKWayDefense(codec, k, family=fam, lmbda=lmbda, seed=cfg.run.seed) for k in sorted(set(d.k))}
        kway = (KWayDefense(codec, d.kway_k, transforms=d.transforms, lmbda=lmbda, seed=cfg.run.seed)
                if d.kway_k else None)
    except InputError as e:
        raise ConfigError(f"paper_b.lmbda: {e} (set a number)") from None
    return randoms, kway


def attacked_defense(spec: AttackSpec, randoms: dict[int, RandomKWayDefense], k: int) -> RandomKWayDefense | None:
    """What ``spec`` attacks besides the codec: the random defense at the claims' K for the adaptive attacks."""
    return randoms[k] if spec.attack in ("eot", "select") else None


def precraft(ctx: Context, attacked: list[str], specs: list[AttackSpec], folder: Path, k: int) -> None:
    """On a parallel executor, craft and store every (attacked codec, attack) as a task; on the serial one nothing
    (the driver crafts on demand)."""
    if ctx.executor.in_process:
        return
    tasks = [Task(f"{name}|{s.label}|{s.objective}|{s.eps:.6g}|{s.steps}", f"{name} {s.label} {s.objective}",
                  _craft_task, (ctx, name, s, folder, k), **task_resources(ctx.cfg))
             for name in attacked for s in specs if s.attack != "noise"]
    ctx.executor.run(tasks, "paper B attacks (tasks)", progress=ctx.progress)


def _craft_task(ctx: Context, name: str, spec: AttackSpec, folder: Path, k: int) -> bool:
    """One task: craft (or find stored) the images of ``spec`` on codec ``name``; whether they were stored."""
    codec = ctx.codecs[name]
    randoms, _ = defenses(ctx.cfg, codec)
    _, cached = craft(codec, spec, load_images(ctx.cfg), ctx.cfg.data.batch_size, folder,
                      attacked_defense(spec, randoms, k))
    return cached
