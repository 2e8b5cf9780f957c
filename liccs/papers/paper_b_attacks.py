"""Paper B's attacks on a codec alone, crafted in PyTorch: PGD (L∞) on the distortion or the rate objective
against the plain codec, and the adaptive EoT attack against a K-way defense (Athalye et al., ICML 2018),
which averages the gradient over the defense's candidate transforms
(:class:`~liccs.attack.adaptive.RandomTransformLICCS`).

The adversarial images are quantized to 8 bits (what a saved PNG holds, and still inside the eps ball around
the 8-bit originals) and cached under ``<run.out>/paper-b/adversarial/`` by a key of everything that
determines them: the codec's weights, the images, the attack's settings and the seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from liccs.attack.adaptive import RandomTransformLICCS
from liccs.attack.base import create_attack
from liccs.attack.defense import KWayDefense
from liccs.attack.ensemble import CodecOnly
from liccs.attack.eot import EoT
from liccs.attack.evaluate import quantize_png
from liccs.export.graphs import module_hash
from liccs.fileio import atomic_write, json_digest
from liccs.papers.paper_b_eval import Images


@dataclass(frozen=True)
class AttackSpec:
    """One attack: PGD on ``objective`` at ``eps``; ``target_k > 1`` makes it the adaptive EoT attack on the
    K-way defense with that K (``samples`` transform draws per step)."""

    objective: str
    eps: float
    steps: int
    surrogate: str
    seed: int
    target_k: int = 0
    samples: int = 1

    @property
    def attack(self) -> str:
        return "eot" if self.target_k > 1 else "pgd"


def target_model(codec: nn.Module, spec: AttackSpec, defense: KWayDefense | None) -> nn.Module:
    """What the attack differentiates: the codec alone, or EoT over the defense's candidate transforms."""
    if spec.target_k > 1:
        if defense is None or defense.k != spec.target_k:
            raise ValueError(f"the adaptive attack on K={spec.target_k} needs that defense")
        return EoT(RandomTransformLICCS.from_defense(defense, None, spec.surrogate), samples=spec.samples)
    return CodecOnly(codec, spec.surrogate)


def craft(codec: nn.Module, spec: AttackSpec, images: Images, batch_size: int, folder: Path,
          defense: KWayDefense | None = None) -> tuple[list[Tensor], bool]:
    """Adversarial images (8-bit, one ``[1, 3, H, W]`` per image) of ``spec``; (images, loaded from the cache)."""
    key = json_digest({"spec": asdict(spec), "codec": module_hash(codec),
                       "candidates": [t.name for t in defense.candidates] if defense is not None else None,
                       "images": [hashlib.sha256(x.numpy().tobytes()).hexdigest() for x in images.x]})
    path = folder / f"{getattr(codec, 'liccs_name', 'codec').replace('@', '-')}-{spec.attack}-{key[:16]}.pt"
    if path.is_file():
        hit = torch.load(path, weights_only=True)
        if hit.get("key") == key:
            return list(hit["images"]), True
    atk = create_attack("pgd", target_model(codec, spec, defense), eps=spec.eps, norm="linf", steps=spec.steps,
                        objective=spec.objective, seed=spec.seed)
    adv: list[Tensor | None] = [None] * len(images.x)
    for idx in images.groups(batch_size):
        out = quantize_png(atk(images.stack(idx)))
        for n, i in enumerate(idx):
            adv[i] = out[n:n + 1]
    record: dict[str, Any] = {"key": key, "images": adv, "names": images.names, "spec": asdict(spec)}
    atomic_write(path, lambda tmp: torch.save(record, tmp))
    return adv, False  # type: ignore[return-value]
