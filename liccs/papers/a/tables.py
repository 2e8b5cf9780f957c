"""Paper A's small shared pieces ("Transferable learned image compression-resistant adversarial perturbations"):
how a model name splits into (architecture, quality), and the error for unequal ensemble budgets."""

from __future__ import annotations

from liccs.core.errors import LiccsError
from liccs.zoo.codecs import parse_codec


class BudgetError(LiccsError):
    """The ensembles of one k did not get the same attack budget (member gradient evaluations)."""


def codec_parts(name: str) -> tuple[str, int] | None:
    """(architecture, quality) of ``ARCH@qN`` (``ARCH:metric`` for non-MSE weights); None for a non-codec."""
    try:
        spec = parse_codec(name)
    except LiccsError:
        return None
    return (spec.arch if spec.metric == "mse" else f"{spec.arch}:{spec.metric}"), spec.quality
