"""The generic stages of ``liccs run``, each a :class:`~liccs.stage.Stage` registered in
:data:`~liccs.stage.STAGES`: :mod:`.export` (export, parity, deployed codecs, real-bitstream RD), :mod:`.profile`
(per-stage latency), :mod:`.operators` (per-operator tables and Chrome traces), :mod:`.model_card`, :mod:`.attack`
(adversarial images in PyTorch), :mod:`.robustness` (the standard evaluation and sanity checks of the attack),
:mod:`.transfer` (every engine × target), :mod:`.pictures` (the engine figures).
The paper stages live in :mod:`liccs.papers`."""

from liccs.stages import attack, export, model_card, operators, pictures, profile, robustness, transfer

__all__ = ["attack", "export", "model_card", "operators", "pictures", "profile", "robustness", "transfer"]
