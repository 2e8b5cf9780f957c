"""The main job, ``liccs run CONFIG.toml``: every enabled stage of :data:`liccs.stage.STAGES` in order, then the
report.

Every name in the config is checked before any work (:mod:`.run_setup`), then every enabled stage's
``check``; an engine this machine cannot run is skipped with its reason in the report. The stages are the generic
ones (:mod:`liccs.stages`: export + parity, profile, attack, transfer) and the paper stages (:mod:`liccs.papers`);
each reads what earlier ones produced from :class:`~liccs.stage.Results`. A re-run reuses the cached artifacts and
adversarial images.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import liccs.stages  # noqa: F401  (registers the generic stages)
from liccs import papers
from liccs.config import ConfigError, RunConfig, load_config
from liccs.core.executor import RayExecutor, make_executor, summary
from liccs.core.manifest import git_commit
from liccs.core.paths import cache_dir
from liccs.jobs import run_report
from liccs.jobs.run_setup import check_names, load_context
from liccs.stage import Context, Names, Results, RunError, TableSpec, ordered

log = logging.getLogger("liccs")

__all__ = ["Context", "Names", "RunError", "check_names", "load_config", "load_context", "run", "run_config"]


#: The configs that ship inside the package (``liccs run quick-cpu``, ``liccs run paper-a``, ...).
BUILTIN_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def resolve_config(path: str | Path) -> Path:
    """``path`` when it is a file; else the built-in config of that name (``quick-cpu``, ``quick-cpu.toml``, or a
    checkout's ``configs/quick-cpu.toml``); else a :class:`ConfigError` listing the built-in names."""
    p = Path(path)
    if p.is_file():
        return p
    builtin = BUILTIN_CONFIGS / f"{p.name.removesuffix('.toml')}.toml"
    if builtin.is_file() and (len(p.parts) == 1 or p.parent.name == "configs"):
        return builtin
    names = ", ".join(sorted(q.stem for q in BUILTIN_CONFIGS.glob("*.toml")))
    raise ConfigError(f"config {str(path)!r} is neither a file nor a built-in config (built-in: {names})")


#: Tasks that failed after their retries (Ray executor): their results are missing from the other tables.
FAILED = TableSpec("failed", "Failed: tasks that still failed after their retries (their results are missing from the "
                   "tables below), with their key and error.", order=1)


def run_config(path: str | Path, *, quick: bool = False, overrides: list[str] | None = None,
               out: str | None = None, progress: bool = True, executor: str | None = None,
               address: str | None = None, check_only: bool = False) -> dict[str, Any]:
    """Load and validate ``path`` (a file, or a built-in config's name: :func:`resolve_config`; with ``--quick``
    and ``key=value`` overrides), then :func:`run` it (``check_only``: every check, then stop)."""
    extra = list(overrides or []) + ([f'run.out="{out}"'] if out else [])
    extra += [f'run.executor="{executor}"'] if executor else []
    extra += [f'run.address="{address}"'] if address else []
    resolved = resolve_config(path)
    config = resolved.stem if resolved.parent == BUILTIN_CONFIGS else str(path)
    command = ["liccs", "run", config, *(["--quick"] if quick else [])]
    command += [a for o in overrides or [] for a in ("--set", o)]
    command += (["--executor", executor] if executor else []) + (["--address", address] if address else [])
    cfg = load_config(resolved, quick=quick, overrides=extra)
    if check_only:
        return check(cfg)
    return run(cfg, progress=progress, command=command)


def check(cfg: RunConfig) -> dict[str, Any]:
    """Every check :func:`run` makes before any work (names, engines, attacks, sources, data, each enabled stage's
    own check), and nothing else; returns ``{"stages", "skipped"}``."""
    names = check_names(cfg)
    stages = _checked_stages(cfg, names)
    return {"stages": [s.name for s in stages], "skipped": dict(names.unavailable)}


def _checked_stages(cfg: RunConfig, names: Names) -> list[Any]:
    papers.load(cfg)  # the enabled papers' drivers register their stages
    stages = [s for s in ordered() if s.enabled(cfg)]
    if not cfg.export.enabled and any(s.name in ("profile", "transfer") for s in stages):
        raise RunError("export.enabled is false, but the profile and transfer stages run the exported graphs: "
                       "enable the export or disable profile and transfer")
    for stage in stages:
        stage.check(cfg, names)
    return stages


def run(cfg: RunConfig, progress: bool = True, command: list[str] | None = None) -> dict[str, Any]:
    """Run every enabled stage of ``cfg`` and write the report folder under ``cfg.run.out``; ``command``: the command
    line that reproduces it, without ``--out`` (recorded in the report's header and manifest).

    Returns ``{"out", "files", "tables", "skipped", "seconds"}``.
    """
    names = check_names(cfg)  # every name, before any work
    stages = _checked_stages(cfg, names)
    commit = git_commit()  # the code that runs: the manifest is written at the end, when HEAD may have moved
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    torch.manual_seed(cfg.run.seed)
    out = Path(cfg.run.out)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 2)
        clock = now

    ctx: Context = load_context(cfg, names, progress)
    ctx.executor = make_executor(cfg.run.executor, cfg.run.address, num_cpus=None)
    if isinstance(ctx.executor, RayExecutor):
        out.mkdir(parents=True, exist_ok=True)
        ctx.executor.check_shared([out, cache_dir()])
    lap("load")
    results = Results(skipped=dict(names.unavailable))
    try:
        for stage in stages:
            ctx.executor.stage = stage.name
            result = stage.run(ctx, results)
            results.add(stage, result)
            ctx.notes.extend(result.notes)
            lap(stage.name)
    finally:  # the deployed codecs the stages shared: their runners are released here
        results.exports.close()
    failed = [r.to_dict() for r in ctx.executor.records if r.status == "failed"]
    if failed:
        results.tables["failed"] = pd.DataFrame(failed)
        ctx.notes.append(f"{len(failed)} task(s) failed after their retries: see Failed; their cells are missing")
    specs = [FAILED] + [spec for s in ordered() for spec in s.tables]
    # the engine each stage of each [export.deployments] entry ran on, and a choice's times: in the manifest too
    deployed = results.tables.get("deployments")
    extra = ({"deployments": deployed.astype(object).where(deployed.notna(), None).to_dict("records")}
             if deployed is not None and not deployed.empty else {})
    files = run_report.write(ctx, results, specs, seconds, out, commit=commit, command=command,
                             executor={"name": ctx.executor.name, **summary(ctx.executor, seconds)}, **extra)
    lap("report")
    return {"out": str(out), "files": {k: str(v) for k, v in files.items()}, "tables": results.tables,
            "skipped": results.skipped, "seconds": seconds}
