"""Paper reproductions, each a registered stage of ``liccs run`` (:class:`liccs.stage.Stage`).

A config turns a paper's stage on by its section: ``[paper_a]`` runs paper A (:mod:`.a`, *Transferable
learned-image-compression-resistant adversarial perturbations*), ``[paper_b]`` runs paper B (:mod:`.b`, *A
training-free defense framework for robust learned image compression*); each driver registers a
:class:`~liccs.papers.driver.PaperStage`. They import the stage contract (:mod:`liccs.stage`) and the
layers below it, never the run job or the generic stages.

A driver is imported (and so registered) by :func:`load` only when a run enables its section: a run's code record
(:mod:`liccs.core.provenance`) then names the papers it ran, and a change to one paper leaves the others' reports
current.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Each paper's config section → its driver module.
PAPERS: dict[str, str] = {"paper_a": "liccs.papers.a.stage", "paper_b": "liccs.papers.b.stage"}


def load(cfg: Any = None) -> None:
    """Import the drivers of the papers ``cfg`` enables (every paper without ``cfg``), which registers their
    stages."""
    for section, module in PAPERS.items():
        if cfg is None or getattr(cfg, section).enabled:
            import_module(module)
