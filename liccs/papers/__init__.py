"""Paper reproductions run as stages of ``liccs run`` (issue 7).

A config enables a paper's stage by its section: ``[sampling]`` runs paper A's driver
(:mod:`liccs.papers.paper_a`, Transferable learned-image-compression-resistant adversarial perturbations),
``[defense]`` runs paper B's (:mod:`liccs.papers.paper_b`, A training-free defense for robust learned image
compression). Each driver module defines

- ``TABLES``: ``[(table name, caption, columns shown or None)]``, the tables it adds to the report, in order;
- ``run_stage(ctx, exports, adversarial, out, progress) -> (tables, findings)``: its tables by name and
  one-line findings (with their numbers) for the report's notes. ``adversarial`` holds the adversarial
  images of the generic attack stage by source (empty when ``[attack]`` is disabled). A driver whose
  ``run_stage`` has a ``tables`` parameter also gets the generic stages' tables by name (``transfer``, ...).

and optionally ``check_config(cfg, names)``, called by ``liccs run`` right after the names are checked, before any
work: it raises :class:`~liccs.config.ConfigError` naming the key when the run cannot serve the paper's stage.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd
from torch import Tensor

if TYPE_CHECKING:
    from liccs.config import RunConfig
    from liccs.run.exports import Exports
    from liccs.run.setup import Context, Names

#: config section → driver module
PAPER_STAGES: dict[str, str] = {"sampling": "liccs.papers.paper_a", "defense": "liccs.papers.paper_b"}

TableSpec = tuple[str, str, "list[str] | None"]


def driver(section: str) -> ModuleType:
    """The driver module of the paper stage enabled by ``[section]``."""
    return importlib.import_module(PAPER_STAGES[section])


def check_paper_stages(cfg: RunConfig, names: Names) -> None:
    """Before any work: ``check_config(cfg, names)`` of every enabled paper stage whose driver defines one."""
    for section in PAPER_STAGES:
        if getattr(cfg, section).enabled:
            check = getattr(driver(section), "check_config", None)
            if check is not None:
                check(cfg, names)


def run_paper_stages(ctx: Context, exports: Exports, adversarial: dict[str, Tensor], out: Path,
                     progress: bool = True, tables: dict[str, pd.DataFrame] | None = None,
                     ) -> tuple[dict[str, pd.DataFrame], list[TableSpec], list[str], list[str]]:
    """Run every paper stage the config enables; returns (tables, their report specs, findings, stages run).

    ``tables``: the generic stages' tables, passed on to drivers whose ``run_stage`` takes ``tables``.
    """
    produced: dict[str, pd.DataFrame] = {}
    specs: list[TableSpec] = []
    findings: list[str] = []
    ran: list[str] = []
    for section in PAPER_STAGES:
        if not getattr(ctx.cfg, section).enabled:
            continue
        mod = driver(section)
        extra = {"tables": dict(tables or {})} if "tables" in inspect.signature(mod.run_stage).parameters else {}
        t, f = mod.run_stage(ctx, exports, adversarial, out, progress, **extra)
        produced.update(t)
        specs.extend(mod.TABLES)
        findings.extend(f)
        ran.append(section)
    return produced, specs, findings, ran
