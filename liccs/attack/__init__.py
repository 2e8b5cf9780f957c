"""Attacks on LICCS pipelines and on codecs, and the K-way compression defense.

The gradient path stays in PyTorch (this package never imports :mod:`liccs.engines`); deployed engines
only replay the images it writes. One file per family: :mod:`~liccs.attack.fgsm`, :mod:`~liccs.attack.pgd`
(I-FGSM, PGD), :mod:`~liccs.attack.mifgsm`, :mod:`~liccs.attack.apgd`, :mod:`~liccs.attack.square`,
:mod:`~liccs.attack.standard` (the worst case over APGD and Square); input diversity
(:mod:`~liccs.attack.diversity`) and EoT (:mod:`~liccs.attack.eot`) as options; :mod:`~liccs.attack.objectives`,
:mod:`~liccs.attack.ensemble`. Paper-specific attack science (paper A's saliency score, paper B's defense and its
adaptive attacks) lives with its paper, in :mod:`liccs.papers.a` and :mod:`liccs.papers.b`.

Importing the package imports every family module, so :data:`ATTACKS` is complete.
"""

from liccs.attack.apgd import APGD
from liccs.attack.base import ATTACKS, Attack, create_attack, parse_eps, register_attack
from liccs.attack.diversity import InputDiversity
from liccs.attack.ensemble import CodecOnly, Ensemble, EnsembleOutput, build_ensemble
from liccs.attack.eot import EoT
from liccs.attack.fgsm import FGSM
from liccs.attack.io import load_adversarial, save_adversarial
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
from liccs.attack.spec import AttackSpec
from liccs.attack.square import Square, SquareResult, square_attack
from liccs.attack.standard import StandardEvaluation
from liccs.attack.threat import NORMS, ThreatModel

__all__ = ["APGD", "ATTACKS", "FGSM", "IFGSM", "MIFGSM", "NORMS", "OBJECTIVES", "PGD", "Attack",
           "AttackSpec", "ClassificationLoss", "CodecOnly", "DistortionLoss", "Ensemble", "EnsembleOutput",
           "EoT", "InputDiversity",
           "IterativeAttack", "Objective", "RateLoss", "Square", "SquareResult",
           "StandardEvaluation", "ThreatModel", "Weighted",
           "build_ensemble", "create_attack", "load_adversarial", "parse_eps", "parse_objective",
           "register_attack", "save_adversarial",
           "square_attack"]
