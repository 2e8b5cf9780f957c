"""Paper B's attacks on a codec alone ("A training-free defense framework for robust learned image
compression"), crafted in PyTorch:

- ``pgd``: the gradient attack (``method``: PGD or APGD, L∞) on an objective (``distortion``, ``distortion-clean``,
  ``distortion-recon``, ``rate``) against the plain codec;
- ``noise``: the control, ``x + eps · sign(u)`` with random signs (no gradient);
- ``eot``: the adaptive attack on a K-way defense with EoT over the defense's own candidate draws (identity + K−1
  from the family) and its own selection rule, the hard arg-min of the RD loss, differentiated through the chosen
  branch (BPDA; Athalye et al., ICML 2018): :class:`~liccs.papers.b.adaptive_select.SelectionAware` with ``hard``;
- ``select``: the selection-aware adaptive attack (:mod:`liccs.papers.b.adaptive_select`), through a soft minimum
  of the candidates' RD losses at temperature ``tau`` (labelled ``select-τ``).

The adversarial images are quantized to 8 bits (what a saved PNG holds, still inside the eps ball around the
8-bit originals) and cached under ``<run.out>/paper-b/adversarial/`` by a key of everything that determines
them: the codec's weights, the images, the attack's settings, the defense and the seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from liccs.attack.ensemble import CodecOnly
from liccs.attack.eot import EoT
from liccs.attack.evaluate import quantize_png
from liccs.attack.spec import AttackSpec as Spec
from liccs.core.fileio import json_digest, load_keyed, save_keyed
from liccs.export.graphs import module_hash
from liccs.papers.b.adaptive_select import SelectionAware, SoftSelected
from liccs.papers.b.defense import KWayDefense
from liccs.papers.b.eval import Images

ATTACKS = ("pgd", "noise", "eot", "select")


@dataclass(frozen=True)
class AttackSpec:
    """One attack (see the module docstring); ``target`` names the defense an adaptive attack aims at."""

    attack: str
    objective: str
    eps: float
    steps: int
    surrogate: str
    seed: int
    target: str = "none"
    samples: int = 1
    tau: float = 0.02
    method: str = "pgd"

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise ValueError(f"attack must be one of {ATTACKS}, got {self.attack!r}")

    @property
    def label(self) -> str:
        """The attack's name in the tables: ``select-τ`` for the soft selection at temperature τ."""
        return f"select-{self.tau:g}" if self.attack == "select" else self.attack


def target_model(codec: nn.Module, spec: AttackSpec, defense: KWayDefense | None) -> nn.Module:
    """What the attack differentiates: the codec alone, EoT over the defense's transforms, or the soft selection."""
    if spec.attack in ("eot", "select") and defense is None:
        raise ValueError(f"the adaptive attack {spec.attack!r} needs its defense")
    if spec.attack == "eot":
        return EoT(SelectionAware(defense, spec.surrogate, hard=True), samples=spec.samples)
    if spec.attack == "select":
        return SelectionAware(defense, spec.surrogate, spec.tau)
    return CodecOnly(codec, spec.surrogate)


def sign_noise(x: Tensor, eps: float, seed: int) -> Tensor:
    """The control: ``x + eps · s`` with independent random signs ``s ∈ {−1, +1}``, clamped to [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    s = torch.randint(0, 2, x.shape, generator=gen).to(x.dtype).mul_(2).sub_(1)
    return (x + eps * s).clamp(0, 1)


def _run(codec: nn.Module, spec: AttackSpec, x: Tensor, defense: KWayDefense | None, offset: int) -> Tensor:
    if spec.attack == "noise":
        return sign_noise(x, spec.eps, spec.seed + offset)
    adaptive = spec.attack in ("eot", "select") and spec.objective in ("distortion", "rate")
    objective: Any = SoftSelected(spec.objective) if adaptive else spec.objective
    atk = Spec(spec.method, eps=spec.eps, norm="linf", steps=spec.steps, objective=objective,
               seed=spec.seed).build(target_model(codec, spec, defense))
    return atk(x)


def craft(codec: nn.Module, spec: AttackSpec, images: Images, batch_size: int, folder: Path,
          defense: KWayDefense | None = None) -> tuple[list[Tensor], bool]:
    """Adversarial images (8-bit, one ``[1, 3, H, W]`` per image) of ``spec``; (images, loaded from the cache)."""
    key = json_digest({"spec": asdict(spec), "codec": module_hash(codec),
                       "defense": defense.describe() if defense is not None else None,
                       "images": [hashlib.sha256(x.numpy().tobytes()).hexdigest() for x in images.x]})
    name = getattr(codec, "liccs_name", "codec").replace("@", "-")
    path = folder / f"{name}-{spec.label}-{spec.objective}-{key[:16]}.pt"
    hit = load_keyed(path, key)
    if hit is not None:
        return list(hit["images"]), True
    adv: list[Tensor | None] = [None] * len(images.x)
    for idx in images.groups(batch_size):
        out = quantize_png(_run(codec, spec, images.stack(idx), defense, idx[0]))
        for n, i in enumerate(idx):
            adv[i] = out[n:n + 1]
    record: dict[str, Any] = {"key": key, "images": adv, "names": images.names, "spec": asdict(spec)}
    save_keyed(path, record)
    return adv, False  # type: ignore[return-value]
