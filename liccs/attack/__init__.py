"""Attacks on LICCS pipelines and on codecs, and the K-way compression defense.

The gradient path stays in PyTorch (this package never imports :mod:`liccs.engines`); deployed engines
only replay the images it writes. One file per family: :mod:`~liccs.attack.fgsm`, :mod:`~liccs.attack.pgd`
(I-FGSM, PGD), :mod:`~liccs.attack.mifgsm`; input diversity (:mod:`~liccs.attack.diversity`) and EoT
(:mod:`~liccs.attack.eot`) as options; :mod:`~liccs.attack.objectives`, :mod:`~liccs.attack.ensemble`,
:mod:`~liccs.attack.saliency` (paper A) and :mod:`~liccs.attack.defense` (paper B).

The names below load on first use (PEP 562), so that ``liccs.jobs.cli_args`` imports without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "liccs.attack.base": ("ATTACKS", "Attack", "create_attack", "parse_eps", "register_attack"),
    "liccs.attack.diversity": ("InputDiversity",),
    "liccs.attack.ensemble": ("CodecOnly", "Ensemble", "EnsembleOutput", "build_ensemble"),
    "liccs.attack.eot": ("EoT",),
    "liccs.attack.fgsm": ("FGSM",),
    "liccs.attack.mifgsm": ("MIFGSM",),
    "liccs.attack.objectives": ("OBJECTIVES", "ClassificationLoss", "DistortionLoss", "Objective", "RateLoss",
                                "Weighted", "parse_objective"),
    "liccs.attack.pgd": ("IFGSM", "PGD", "IterativeAttack"),
    "liccs.attack.threat": ("NORMS", "ThreatModel"),
    "liccs.attack.defense": ("KWayDefense",),
    "liccs.attack.adaptive": ("RandomTransformLICCS",),
    "liccs.attack.saliency": ("AsrMatrix", "enumerate_sets", "random_baseline", "saliency_attack", "score_sets",
                              "select_sources"),
    "liccs.attack.io": ("load_adversarial", "save_adversarial"),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'liccs.attack' has no attribute {name!r}")
    importlib.import_module("liccs.attack.base").load_families()  # ATTACKS is complete once seen
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
