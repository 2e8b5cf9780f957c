"""The main job, ``liccs run CONFIG.toml``: export → parity → profile → attack → transfer → report.

Every name in the config is checked before any work (:mod:`.setup`); an engine this machine cannot run
is skipped with its reason in the report. Stages: :mod:`.exports` (artifacts in the artifact cache,
parity, deployed codecs, rate-distortion from real bitstreams), :mod:`.profiles` (per-stage latency, the
batch × resolution sweep, growth, dominant stage, FLOPs against the matmul ceiling), :mod:`.attacks`
(PGD in PyTorch per source, cached under the run folder), :mod:`.transfers` (every engine × target),
:mod:`.report`. A re-run reuses the cached artifacts and adversarial images.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from liccs.config import RunConfig, load_config
from liccs.manifest import git_commit
from liccs.run.setup import Context, Names, RunError, check_names, load_context

log = logging.getLogger("liccs")

__all__ = ["RunError", "Context", "Names", "check_names", "load_config", "load_context", "run", "run_config"]


def run_config(path: str | Path, *, quick: bool = False, overrides: list[str] | None = None,
               out: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Load and validate ``path`` (with ``--quick`` and ``key=value`` overrides), then :func:`run` it."""
    extra = list(overrides or []) + ([f'run.out="{out}"'] if out else [])
    path = Path(path)
    if not path.exists() and not path.is_absolute():  # the default config, from outside the repository
        beside = Path(__file__).resolve().parents[2] / path
        path = beside if beside.exists() else path
    return run(load_config(path, quick=quick, overrides=extra), progress=progress)


def run(cfg: RunConfig, progress: bool = True) -> dict[str, Any]:
    """Run every enabled stage of ``cfg`` and write the report folder under ``cfg.run.out``.

    Returns ``{"out", "files", "tables", "skipped", "seconds"}``.
    """
    from liccs.papers import check_paper_stages, run_paper_stages
    from liccs.run import attacks, exports, profiles, report, transfers

    names = check_names(cfg)  # every name, before any work
    if not cfg.export.enabled and (cfg.profile.enabled or (cfg.attack.enabled and cfg.transfer.enabled)):
        raise RunError("export.enabled is false, but the profile and transfer stages run the exported graphs: "
                       "enable the export or disable profile and transfer")
    check_paper_stages(cfg, names)
    commit = git_commit()  # the code that runs: the manifest is written at the end, when HEAD may have moved
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    torch.manual_seed(cfg.run.seed)
    out = Path(cfg.run.out)
    seconds: dict[str, float] = {}
    skipped = dict(names.unavailable)
    tables: dict[str, pd.DataFrame] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 2)
        clock = now

    ctx: Context = load_context(cfg, names, progress)
    lap("load")
    if cfg.export.enabled:
        ex = exports.run_exports(ctx, progress)
        tables.update(parity=ex.parity, export=ex.export, rate_distortion=exports.rate_distortion(ctx, ex, progress))
        lap("export+parity")
    else:
        ex = exports.Exports(pd.DataFrame(), pd.DataFrame())
    if cfg.profile.enabled:
        tables.update(profiles.run_profiles(ctx, ex, progress))
        lap("profile")
    if cfg.attack.enabled:
        adversarial, tables["attacks"] = attacks.run_attacks(ctx, out, progress)
        lap("attack")
        if cfg.transfer.enabled:
            tr = transfers.run_transfer(ctx, adversarial, ex, progress)
            tables.update(tr)
            if "gap_summary" in tr:
                tables["transfer_gap_summary"] = tr.pop("gap_summary")
            tables["whitebox"] = transfers.whitebox(tr["transfer"], cfg.transfer.reference_engine)
            lap("transfer")
    else:
        adversarial = {}
    paper_tables, specs, findings, ran = run_paper_stages(ctx, ex, adversarial, out, progress, tables=tables)
    if ran:
        tables.update(paper_tables)
        ctx.notes.extend(findings)
        lap("+".join(ran))
    skipped.update(ex.failed)
    files = report.write(ctx, tables, skipped, seconds, out, extra=specs, commit=commit)
    lap("report")
    return {"out": str(out), "files": {k: str(v) for k, v in files.items()}, "tables": tables, "skipped": skipped,
            "seconds": seconds}
