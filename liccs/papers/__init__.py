"""Paper reproductions run as stages of ``liccs run`` (issue 7).

A config enables a paper's stage by its section: ``[sampling]`` runs paper A's driver
(:mod:`liccs.papers.paper_a`, Transferable learned-image-compression-resistant adversarial perturbations),
``[defense]`` runs paper B's (:mod:`liccs.papers.paper_b`, A training-free defense for robust learned image
compression). Each driver module defines

- ``TABLES``: ``[(table name, caption, columns shown or None)]``, the tables it adds to the report, in order;
- ``run_stage(ctx, exports, adversarial, out, progress) -> (tables, findings)``: its tables by name and
  one-line findings (with their numbers) for the report's notes. ``adversarial`` holds the adversarial
  images of the generic attack stage by source (empty when ``[attack]`` is disabled).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd
from torch import Tensor

if TYPE_CHECKING:
    from liccs.run.exports import Exports
    from liccs.run.setup import Context

#: config section → driver module
PAPER_STAGES: dict[str, str] = {"sampling": "liccs.papers.paper_a", "defense": "liccs.papers.paper_b"}

TableSpec = tuple[str, str, "list[str] | None"]


def driver(section: str) -> ModuleType:
    """The driver module of the paper stage enabled by ``[section]``."""
    return importlib.import_module(PAPER_STAGES[section])


def run_paper_stages(ctx: Context, exports: Exports, adversarial: dict[str, Tensor], out: Path,
                     progress: bool = True) -> tuple[dict[str, pd.DataFrame], list[TableSpec], list[str], list[str]]:
    """Run every paper stage the config enables; returns (tables, their report specs, findings, stages run)."""
    tables: dict[str, pd.DataFrame] = {}
    specs: list[TableSpec] = []
    findings: list[str] = []
    ran: list[str] = []
    for section in PAPER_STAGES:
        if not getattr(ctx.cfg, section).enabled:
            continue
        mod = driver(section)
        t, f = mod.run_stage(ctx, exports, adversarial, out, progress)
        tables.update(t)
        specs.extend(mod.TABLES)
        findings.extend(f)
        ran.append(section)
    return tables, specs, findings, ran
