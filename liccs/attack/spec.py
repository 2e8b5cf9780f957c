"""One attack as a value: :class:`AttackSpec` holds a registered attack's name, its common arguments and its own
parameters, and is the one place an attack is built (:meth:`AttackSpec.build`). The jobs, the run's stages and
both papers describe their attacks with it; :meth:`AttackSpec.from_run` maps a run's ``[attack]`` settings onto
what each attack takes (as torchattacks' and AutoAttack's attacks each take their own subset)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from liccs.attack.base import Attack, check_attack, create_attack, load_families

#: the common arguments of :class:`~liccs.attack.base.Attack` a spec carries (None: the attack's default)
COMMON = ("eps", "norm", "steps", "alpha", "random_start", "targeted", "objective", "seed", "diversity", "progress")


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack ``name`` with its common arguments (None: the attack's own default) and ``params``,
    its own parameters (``decay`` of mifgsm, ``restarts`` of apgd, ...)."""

    name: str
    eps: float | None = None
    norm: str | None = None
    steps: int | None = None
    alpha: float | None = None
    random_start: bool | None = None
    targeted: bool | None = None
    objective: Any = None
    seed: int | None = None
    diversity: Any = None
    progress: bool | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_run(cls, name: str, *, eps: float, steps: int, step_size: float, random_start: bool,
                 params: dict[str, Any] | None = None, **common: Any) -> AttackSpec:
        """The spec of a run's settings: ``steps`` and ``random_start`` only where attack ``name`` takes them, and
        the step size ``alpha = min(step_size, eps)`` only where it does not set its own (FGSM is one step from the
        clean image; APGD and the standard evaluation set their own step size; Square takes none of them)."""
        cls_ = load_families().get(name)
        iterative = not (cls_.one_step or cls_.score_only)
        return cls(name, eps=eps, steps=steps if iterative else None,
                   random_start=random_start if iterative else None,
                   alpha=min(step_size, eps) if iterative and not cls_.own_step_size else None,
                   params=dict(params or {}), **common)

    def kwargs(self) -> dict[str, Any]:
        """The common arguments that are set (the others keep the attack's defaults)."""
        return {k: v for k in COMMON if (v := getattr(self, k)) is not None}

    def build(self, model: nn.Module) -> Attack:
        """The attack on ``model``; an unknown name lists the valid ones."""
        return create_attack(self.name, model, **self.kwargs(), **self.params)

    def check(self, key: str = "params") -> type[Attack]:
        """Refuse, before any work, a parameter the attack does not take or a value its constructor refuses
        (:class:`~liccs.core.errors.InputError` naming ``key``); returns the attack's class."""
        return check_attack(self.name, self.params, key, **self.kwargs())

