"""The standard evaluation: per image the worst case over a fixed suite, as AutoAttack reports it (Croce & Hein,
"Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks", ICML 2020).

Threat model: L∞ or L2 ball of radius eps; untargeted classification. The suite runs in this order, each attack on
the images that no earlier one fooled: APGD-CE (:class:`~liccs.attack.apgd.APGD` on the cross-entropy), APGD-T
(APGD on the targeted DLR loss toward each of the ``target_classes`` classes ranked highest after the label on the
clean image), then Square (:func:`~liccs.attack.square.square_attack`, scores only). A user tunes the budget
(``steps``, ``restarts``, ``queries``) but not the protocol: no step size, no objective, no input diversity.
Success is judged by ``predict`` (default: the attacked model's scores), which can be a deployed engine.
Each image records which attack fooled it first (``clean`` if it was misclassified already, ``""`` if none did);
an image no attack fooled gets APGD-CE's point (the highest cross-entropy found).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch import Tensor, nn

from liccs.attack.apgd import APGD
from liccs.attack.base import Attack, register_attack
from liccs.attack.square import Predict, _scores, check_budget, square_attack
from liccs.core.errors import InputError

SUITE = ("apgd-ce", "apgd-t", "square")


@register_attack("standard")
class StandardEvaluation(Attack):
    """Worst case per image over APGD-CE, APGD-T and Square; :attr:`found_by` says which attack fooled each image.

    Args:
        model: as :class:`~liccs.attack.base.Attack` (APGD differentiates it; Square reads its scores).
        restarts: APGD's restarts (each of APGD-CE and every APGD-T target).
        target_classes: how many classes APGD-T aims at, by clean rank after the label (AutoAttack: 9 of 10).
        queries: Square's query budget per image.
        p_init: Square's first window share.
        predict: the scores success is judged by and Square queries (default: the model's own logits).
        **kwargs: eps, norm, steps (APGD's), random_start, seed, progress.
    """

    paper = ("Croce & Hein, Reliable evaluation of adversarial robustness with an ensemble of diverse "
             "parameter-free attacks, ICML 2020")
    default_random_start = True
    own_step_size = True
    objectives = ("ce",)
    supports_targeted = False
    takes_diversity = False

    def __init__(self, model: nn.Module, *, restarts: int = 1, target_classes: int = 3, queries: int = 1000,
                 p_init: float = 0.05, predict: Predict | None = None, **kwargs: Any) -> None:
        if kwargs.get("alpha") is not None:
            raise InputError("the standard evaluation is a fixed protocol: it takes no step size (alpha)")
        if not isinstance(target_classes, int) or isinstance(target_classes, bool) or target_classes < 0:
            raise InputError(f"target_classes must be an integer ≥ 0, got {target_classes!r}")
        super().__init__(model, **kwargs)
        common = dict(eps=self.threat.eps, norm=self.threat.norm, steps=self.steps, restarts=restarts,
                      random_start=self.random_start)
        self.apgd_ce = APGD(model, objective="ce", seed=self.seed, **common)
        self.apgd_t = APGD(model, objective="dlr", targeted=True, seed=self.seed + 1, **common)
        check_budget(queries, p_init)
        self.restarts, self.target_classes, self.queries, self.p_init = restarts, target_classes, queries, p_init
        self.predict = predict
        self.found_by: list[str] = []  #: per image of the last call: the attack that fooled it first
        self.queries_used: Tensor | None = None  #: per image of the last call: Square's queries (0: not run)

    def _scores(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return _scores(self.predict, x) if self.predict is not None else self.target(x).detach().float()

    def perturb(self, x: Tensor, labels: Tensor, gen: torch.Generator) -> Tensor:
        """Per image, the first success of APGD-CE, APGD-T then Square (Croce & Hein 2020); APGD-CE's point where none
        succeeds."""
        scores = self._scores(x)
        found = ["clean" if bool(f) else "" for f in scores.argmax(1) != labels]
        adv = x.clone()
        self.queries_used = torch.zeros(x.shape[0], dtype=torch.long)

        def left() -> Tensor:
            return torch.tensor([f == "" for f in found], device=x.device).nonzero().flatten()

        def record(idx: Tensor, cand: Tensor, name: str) -> None:
            hit = self._scores(cand).argmax(1) != labels[idx]
            for j in idx[hit].tolist():
                found[j] = name
            adv[idx[hit]] = cand[hit]

        self.apgd_ce.losses = None
        idx = left()
        if len(idx):
            cand = self.apgd_ce(x[idx], labels[idx])
            adv[idx] = cand  # the highest cross-entropy found, kept where no attack succeeds
            record(idx, cand, "apgd-ce")
        n_classes = scores.shape[1]
        ranked = scores.scatter(1, labels[:, None], float("-inf")).argsort(1, descending=True)
        k_max = min(self.target_classes, n_classes - 1) if n_classes >= 4 else 0  # targeted DLR needs 4 classes
        for k in range(k_max):
            idx = left()
            if not len(idx):
                break
            record(idx, self.apgd_t(x[idx], ranked[idx, k]), "apgd-t")
        idx = left()
        if len(idx):
            res = square_attack(self._scores, x[idx], labels[idx], eps=self.threat.eps, norm=self.threat.norm,
                                queries=self.queries, p_init=self.p_init, seed=self.seed + 2, progress=self.progress)
            self.queries_used[idx.cpu()] = res.queries.cpu()
            hit = res.success
            for j in idx[hit].tolist():
                found[j] = "square"
            adv[idx[hit]] = res.adv[hit]
        self.found_by = found
        self.losses = self.apgd_ce.losses if self.apgd_ce.losses is not None else torch.zeros(1)
        return adv

    def summary(self) -> dict[str, int]:
        """Images of the last call per outcome: ``clean`` (misclassified already), each attack, ``robust``."""
        c = Counter(f or "robust" for f in self.found_by)
        return {k: c.get(k, 0) for k in ("clean", *SUITE, "robust")}

    def describe(self) -> dict[str, Any]:
        """As :meth:`Attack.describe`, with the suite, its budget, the judge and (after a call) :meth:`summary`."""
        d = {**super().describe(), "alpha": None, "suite": list(SUITE), "restarts": self.restarts,
             "target_classes": self.target_classes, "queries": self.queries, "p_init": self.p_init,
             "judged_by": "predict" if self.predict is not None else "model"}
        if self.found_by:
            d["found_by"] = self.summary()
        return d
