"""The attack base class: ``attack(images, labels) -> adv_images``, images in [0, 1].

An attack holds a target (one model or an :class:`~liccs.attack.ensemble.Ensemble`, possibly inside
:class:`~liccs.attack.eot.EoT`), a threat model (L∞ or L2 ball of radius ``eps``), a step size and a step
count, an objective to maximize (:mod:`liccs.attack.objectives`), and a seed. Every argument is checked
before any work starts. With the same seed a run repeats bit for bit on the CPU: the attack's own draws
come from a local ``torch.Generator``; the ``noise`` surrogate's draws from the global RNG run inside
``torch.random.fork_rng`` seeded from the same seed, so the caller's RNG state is left untouched.

The step loop keeps everything on the device: the per-step loss is kept as a tensor (no ``.item()``),
and the work per step does not grow with the batch in Python.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from liccs.attack.diversity import InputDiversity
from liccs.attack.ensemble import as_ensemble
from liccs.attack.objectives import (
    Objective,
    parse_objective,
    target_members,
    target_names,
)
from liccs.attack.randomness import bind_generators
from liccs.attack.threat import ThreatModel
from liccs.core import Registry
from liccs.core.errors import InputError
from liccs.pipeline import module_device

MAX_STEPS = 100_000


def parse_eps(value: str | float) -> float:
    """``"8/255"``, ``"0.03"`` or a number → float (for the CLI and configs)."""
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(Fraction(value.strip())) if "/" in value else float(value)
    except (ValueError, ZeroDivisionError):
        raise InputError(f"{value!r} is not a number or a fraction like 8/255") from None


def _seed_global(seed: int, device: torch.device) -> None:
    """Seed the global generator of ``device`` (inside ``fork_rng``), for the ``noise`` surrogate's draws.

    Not ``torch.manual_seed``: that also queues seeds for every accelerator backend, which costs more
    than a small attack step.
    """
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)


class Attack:
    """Base class of every attack; subclasses implement :meth:`perturb` and set the class attributes.

    Args:
        model: classifier, LICCS pipeline, ensemble, or EoT wrapper (see :mod:`liccs.attack.ensemble`).
        eps: radius of the threat model in [0, 1] pixel units (L∞) or L2 norm of the whole image.
        norm: ``"linf"`` or ``"l2"``.
        steps: number of gradient steps (≥ 1).
        alpha: step size, in (0, eps]; default :meth:`default_alpha`.
        random_start: start from a uniform draw in the ball (default: the attack's own convention).
        targeted: ``labels`` are target classes to reach instead of true classes to leave.
        objective: an :class:`Objective` or its spec (``"ce"``, ``"margin"``, ``"rate"``, ``"ce+10*distortion"``).
        seed: seeds the random start, input diversity, EoT draws and the ``noise`` surrogate.
        diversity: input diversity (DI) applied to the input of every gradient evaluation.
        progress: show a tqdm bar over the steps.
    """

    name: ClassVar[str] = "attack"
    paper: ClassVar[str] = ""
    default_random_start: ClassVar[bool] = False
    one_step: ClassVar[bool] = False
    #: sets its own step size (APGD's schedule, Square's windows): a caller passes no ``alpha``
    own_step_size: ClassVar[bool] = False
    #: needs only the model's outputs (scores), never a gradient (Square)
    score_only: ClassVar[bool] = False
    #: the objectives it can serve (names of :data:`~liccs.attack.objectives.OBJECTIVES`); None: every one
    objectives: ClassVar[tuple[str, ...] | None] = None
    #: has a targeted mode (the standard evaluation picks its own targets)
    supports_targeted: ClassVar[bool] = True
    #: takes input diversity (DI transforms a gradient's input: not for score-only attacks or a fixed protocol)
    takes_diversity: ClassVar[bool] = True

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = 8 / 255,
        norm: str = "linf",
        steps: int = 10,
        alpha: float | None = None,
        random_start: bool | None = None,
        targeted: bool = False,
        objective: str | Objective = "ce",
        seed: int = 0,
        diversity: InputDiversity | None = None,
        progress: bool = False,
    ) -> None:
        self.threat = ThreatModel(norm, eps)
        if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
            raise InputError(f"steps must be an integer in [1, {MAX_STEPS}], got {steps!r}")
        self.steps = steps
        self.alpha = float(alpha) if alpha is not None else self.default_alpha(self.threat.eps, steps)
        if not math.isfinite(self.alpha) or not 0 < self.alpha <= self.threat.eps * (1 + 1e-9):
            raise InputError(f"step size alpha must be in (0, eps={self.threat.eps:g}], got {alpha!r}")
        self.random_start = self.default_random_start if random_start is None else bool(random_start)
        self.targeted = bool(targeted)
        self.objective = parse_objective(objective)
        if self.objectives is not None and self.objective.name not in self.objectives:
            raise InputError(f"attack {self.name!r} serves the objectives {', '.join(self.objectives)} only, "
                             f"not {self.objective.name!r}")
        if self.targeted and not self.objective.supports_targeted:
            raise InputError(f"objective {self.objective.name!r} has no targeted mode")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InputError(f"seed must be an integer, got {seed!r}")
        self.seed = seed
        if diversity is not None and not self.takes_diversity:
            raise InputError(f"attack {self.name!r} takes no input diversity")
        if self.targeted and not self.supports_targeted:
            raise InputError(f"attack {self.name!r} has no targeted mode")
        self.diversity = diversity
        self.progress = progress
        self.target = as_ensemble(model)
        self.samples = int(getattr(self.target, "samples", 1))
        self._check_target()
        self.losses: Tensor | None = None  #: mean objective over the batch at each step, after a call

    @staticmethod
    def default_alpha(eps: float, steps: int) -> float:
        """Step size when none is given: ``eps / steps`` (reaches the boundary exactly; Kurakin et al.)."""
        return eps / steps

    def _check_target(self) -> None:
        for name, m in zip(target_names(self.target), target_members(self.target), strict=True):
            if getattr(m, "rounding", None) == "hard":
                raise InputError(f"member {name!r} uses rounding 'hard', which has no gradient; "
                                 "attack through a surrogate (ste, noise, identity, cubic)")
        self.objective.check(self.target)

    def _check_inputs(self, images: Tensor, labels: Tensor | None) -> Tensor:
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3 or images.shape[0] == 0:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise InputError(f"images must be a float tensor [B, 3, H, W] with B ≥ 1, got {shape}")
        if not images.is_floating_point():
            raise InputError(f"images must be float in [0, 1], got dtype {images.dtype}")
        lo, hi = torch.aminmax(images.detach())  # one pass; NaN propagates and fails both comparisons
        lo, hi = float(lo), float(hi)
        if not (lo >= 0 and hi <= 1):
            raise InputError(f"images must lie in [0, 1] (no NaN); got min {lo:.4g}, max {hi:.4g}")
        self.threat.check_images(images)
        b = images.shape[0]
        if labels is None:
            if self.objective.needs_logits:
                raise InputError(f"objective {self.objective.name!r} needs labels")
            return torch.zeros(b, dtype=torch.long, device=images.device)
        if not isinstance(labels, Tensor) or labels.dtype.is_floating_point or labels.dtype.is_complex \
                or labels.dtype == torch.bool:
            raise InputError(f"labels must be an integer tensor [B], got {getattr(labels, 'dtype', type(labels))}")
        if tuple(labels.shape) != (b,):
            raise InputError(f"labels must have shape [{b}] (one per image), got {tuple(labels.shape)}")
        n = getattr(self.target, "num_classes", None)
        lo, hi = (int(v) for v in torch.aminmax(labels))
        if lo < 0 or (n is not None and hi >= n):
            raise InputError(f"labels must lie in [0, {n if n is not None else 'num_classes'}), got min {lo}, max {hi}")
        return labels.to(device=images.device, dtype=torch.long)

    def __call__(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """Adversarial images in [0, 1], inside the eps ball around ``images``.

        The attack runs on the target's device (its first parameter's; ``images`` as given when it has none)
        and the result comes back on ``images``' device, so CPU-held images attack a GPU model.
        """
        home = images.device
        device = module_device(self.target, home)
        images = images.to(device)
        labels = self._check_inputs(images, labels)
        training = [m for m in self.target.modules() if m.training]
        for m in training:  # eval mode for the attack (BatchNorm statistics, dropout), restored after
            m.training = False
        devices = [images.device] if images.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), torch.enable_grad():
                _seed_global(self.seed, images.device)
                gen = torch.Generator().manual_seed(self.seed)
                bind_generators(self.target, gen)
                x = images.detach()
                self.objective.prepare(self.target, x, labels)
                adv = self.perturb(x, labels, gen)
        finally:
            for m in training:
                m.training = True
        return adv.detach().to(home)

    def perturb(self, x: Tensor, labels: Tensor, gen: torch.Generator) -> Tensor:
        """The attack proper, on checked inputs, with the attack's generator."""
        raise NotImplementedError

    def gradient_losses(self, x_adv: Tensor, labels: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """(∇_x Σ_b loss_b, loss per image ``[B]``), averaged over the target's EoT draws; DI applied per draw."""
        grad: Tensor | None = None
        total: Tensor | None = None
        for _ in range(self.samples):
            xa = x_adv.detach().requires_grad_(True)
            xin = self.diversity(xa, gen) if self.diversity is not None else xa
            out = self.target.forward_all(xin, logits=self.objective.needs_logits)
            loss = self.objective(out, labels, self.targeted)
            (g,) = torch.autograd.grad(loss.sum(), xa)
            grad = g if grad is None else grad.add_(g)
            total = loss.detach() if total is None else total + loss.detach()
        if self.samples > 1:
            grad.div_(self.samples)
            total = total / self.samples
        return grad, total

    def gradient(self, x_adv: Tensor, labels: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """(∇_x Σ_b loss_b, Σ_b loss_b), averaged over the target's EoT draws; DI applied per draw."""
        grad, losses = self.gradient_losses(x_adv, labels, gen)
        return grad, losses.sum()

    @torch.no_grad()
    def losses_at(self, x_adv: Tensor, labels: Tensor, gen: torch.Generator) -> Tensor:
        """The loss per image ``[B]`` as :meth:`gradient_losses` measures it (same draws, no gradient): what the
        best iterate of the last step is judged by."""
        total: Tensor | None = None
        for _ in range(self.samples):
            xin = self.diversity(x_adv, gen) if self.diversity is not None else x_adv
            loss = self.objective(self.target.forward_all(xin, logits=self.objective.needs_logits), labels,
                                  self.targeted)
            total = loss if total is None else total + loss
        return total / self.samples if self.samples > 1 else total

    @torch.no_grad()
    def loss(self, images: Tensor, labels: Tensor | None = None, *, clean: Tensor | None = None) -> Tensor:
        """The objective per image ``[B]`` at ``images`` (one draw of any randomness, no DI), seeded.

        ``clean``: the clean images the references are computed from (``distortion-clean``); default ``images``.
        """
        labels = self._check_inputs(images, labels)
        with torch.random.fork_rng(devices=[images.device] if images.device.type == "cuda" else []):
            _seed_global(self.seed, images.device)
            bind_generators(self.target, torch.Generator().manual_seed(self.seed))
            self.objective.prepare(self.target, images if clean is None else clean, labels)
            out = self.target.forward_all(images, logits=self.objective.needs_logits)
            return self.objective(out, labels, self.targeted)

    def describe(self) -> dict[str, Any]:
        """Everything a result records about this attack: the sidecar's ``attack`` entry."""
        members = target_members(self.target)
        return {
            "attack": self.name,
            "paper": self.paper,
            "norm": self.threat.norm,
            "eps": self.threat.eps,
            "alpha": self.alpha,
            "steps": self.steps,
            "random_start": self.random_start,
            "targeted": self.targeted,
            "seed": self.seed,
            "objective": self.objective.describe(),
            "diversity": self.diversity.describe() if self.diversity is not None else None,
            "eot_samples": self.samples,
            "source_models": target_names(self.target),
            "surrogates": sorted({str(getattr(m, "rounding", "none")) for m in members}),
            "target": self.target.describe() if hasattr(self.target, "describe") else None,
        }


#: Every attack family, by name: the families register themselves when their module is imported, and the
#: :mod:`liccs.attack` package imports all of them (so any import from it completes this registry).
ATTACKS: Registry[type[Attack]] = Registry("attack")


def load_families() -> Registry[type[Attack]]:
    """:data:`ATTACKS`, complete (the package has imported every family module)."""
    return ATTACKS


def register_attack(name: str):
    """Class decorator: register an :class:`Attack` subclass under ``name`` (its ``name`` attribute)."""
    def deco(cls: type[Attack]) -> type[Attack]:
        cls.name = name
        ATTACKS.register(name, cls)
        return cls
    return deco


def create_attack(name: str, model: nn.Module, **kwargs: Any) -> Attack:
    """``ATTACKS.get(name)(model, **kwargs)``; an unknown name lists the valid ones."""
    return load_families().get(name)(model, **kwargs)



def attack_params(name: str) -> dict[str, Any]:
    """The parameters of attack ``name`` beyond the common ones of :class:`Attack` (``decay``, ``restarts``, ...),
    with their defaults: what a config's ``[attack.params]`` may set. An unknown name lists the valid ones."""
    cls = load_families().get(name)
    common = set(inspect.signature(Attack.__init__).parameters)
    out: dict[str, Any] = {}
    for c in reversed(cls.__mro__):
        if isinstance(c, type) and issubclass(c, Attack) and "__init__" in c.__dict__:
            for p in inspect.signature(c.__init__).parameters.values():
                if p.kind is p.KEYWORD_ONLY and p.name not in common and p.default is not None:
                    out[p.name] = p.default  # a None default marks an object given in code (predict), not a setting
    return out


def check_attack_params(name: str, params: Mapping[str, Any], key: str = "params") -> None:
    """Refuse (:class:`InputError`, naming ``key.PARAM`` and listing the valid ones) a parameter that attack ``name``
    does not take, or a value of another type than its default's (an integer is accepted for a float)."""
    valid = attack_params(name)
    for k, v in params.items():
        if k not in valid:
            listed = ", ".join(sorted(valid)) or "none"
            raise InputError(f"{key}.{k}: attack {name!r} has no parameter {k!r}; its parameters: {listed}")
        want = type(valid[k])
        ok = isinstance(v, want) and (want is bool or not isinstance(v, bool)) or (
            want is float and isinstance(v, int) and not isinstance(v, bool))
        if valid[k] is not None and not ok:
            raise InputError(f"{key}.{k}: attack {name!r} expects {want.__name__} (default {valid[k]!r}), got {v!r}")


class _Probe(nn.Module):
    """A stand-in classifier for :func:`check_attack`: an attack is built on it to check its values (no work)."""

    num_classes = 10

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)[:, :10]


def check_attack(name: str, params: Mapping[str, Any], key: str = "params", **common: Any) -> type[Attack]:
    """Attack ``name`` with ``params`` (and the ``common`` arguments: eps, norm, steps, ...) checked before any
    work: the name, each parameter's name and type, and the values the attack's constructor refuses, all
    as :class:`InputError` naming the key. Returns the attack's class."""
    cls = load_families().get(name)
    check_attack_params(name, params, key)
    try:
        cls(_Probe(), **common, **params)
    except InputError as e:
        raise InputError(f"{key}: attack {name!r}: {e}") from None
    return cls
