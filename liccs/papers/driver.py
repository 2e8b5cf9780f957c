"""A paper's driver as a run stage: its ``check_config`` before any work, its run on the stages' results."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from liccs.config import RunConfig
from liccs.stage import Context, Names, Results, StageBase, StageResult, TableSpec


class PaperStage(StageBase):
    """``drive(ctx, results) -> (tables, notes)`` as the stage ``name``, on when ``[section]`` is enabled."""

    def __init__(self, name: str, section: str, order: int, tables: tuple[TableSpec, ...],
                 check_config: Callable[[RunConfig, Names], None],
                 drive: Callable[[Context, Results], tuple[dict[str, pd.DataFrame], list[str]]]) -> None:
        self.name, self.section, self.order, self.tables = name, section, order, tables
        self.check_config, self.drive = check_config, drive

    def check(self, cfg: RunConfig, names: Names) -> None:
        self.check_config(cfg, names)

    def run(self, ctx: Context, results: Results) -> StageResult:
        tables, notes = self.drive(ctx, results)
        return StageResult(tables, notes=notes)
