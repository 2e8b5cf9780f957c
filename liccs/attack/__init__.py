"""Attacks on LICCS pipelines and on codecs, and the K-way compression defense.

The gradient path stays in PyTorch (this package never imports :mod:`liccs.engines`); deployed engines
only replay the images it writes. One file per family: :mod:`~liccs.attack.fgsm`, :mod:`~liccs.attack.pgd`
(I-FGSM, PGD), :mod:`~liccs.attack.mifgsm`; input diversity (:mod:`~liccs.attack.diversity`) and EoT
(:mod:`~liccs.attack.eot`) as options; objectives, ensembles, saliency-score sampling and the K-way defense.
"""

from __future__ import annotations

from liccs.attack.base import ATTACKS, Attack, create_attack, parse_eps, register_attack
from liccs.attack.diversity import InputDiversity
from liccs.attack.ensemble import CodecOnly, Ensemble, EnsembleOutput, build_ensemble
from liccs.attack.eot import EoT
from liccs.attack.fgsm import FGSM
from liccs.attack.mifgsm import MIFGSM
from liccs.attack.objectives import (
    OBJECTIVES,
    ClassificationLoss,
    DistortionLoss,
    Objective,
    RateLoss,
    Weighted,
    parse_objective,
)
from liccs.attack.pgd import IFGSM, PGD, IterativeAttack
from liccs.attack.threat import NORMS, ThreatModel

__all__ = [
    "ATTACKS", "Attack", "ClassificationLoss", "CodecOnly", "DistortionLoss", "Ensemble", "EnsembleOutput",
    "EoT", "FGSM", "IFGSM", "InputDiversity", "IterativeAttack", "MIFGSM", "NORMS", "OBJECTIVES", "Objective",
    "PGD", "RateLoss", "ThreatModel", "Weighted", "build_ensemble", "create_attack", "parse_eps",
    "parse_objective", "register_attack",
]
