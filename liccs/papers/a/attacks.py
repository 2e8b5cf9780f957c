"""Paper A's own attacks ("Transferable learned image compression-resistant adversarial perturbations"): PGD
through one model or an ensemble of k qualities, at a :class:`~liccs.papers.a.cells.Setting`.

Every attack takes the run's ``[attack]`` settings (norm, surrogate, objective, seed, random start), with eps,
steps and step size from the setting. The ensembles count their *member gradient evaluations* (members × images,
each forward/backward of the attack), so that every k-set can be shown to have had the same budget. Crafted images
are cached under ``<out>/adversarial/paper-a/`` by a key of everything that determines them; a re-run loads them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from liccs.attack.base import Attack
from liccs.attack.diversity import InputDiversity
from liccs.attack.ensemble import Ensemble, EnsembleOutput
from liccs.attack.eot import EoT
from liccs.attack.spec import AttackSpec
from liccs.core.fileio import json_digest, load_keyed, save_keyed
from liccs.data import load_batch, open_source
from liccs.papers.a.cells import Setting
from liccs.stage import ATTACK_OBJECTIVES, Context, device_key
from liccs.zoo import image_geometry


class CountingEnsemble(Ensemble):
    """An :class:`Ensemble` that counts member gradient evaluations: members × images of every forward on an
    input that requires grad (what an attack differentiates; evaluations without grad are not counted)."""

    def __init__(self, members: list[nn.Module], names: list[str]) -> None:
        super().__init__(members, names=names)
        self.grad_evals = 0

    def forward_all(self, x: Tensor, logits: bool = True) -> EnsembleOutput:
        if torch.is_grad_enabled() and x.requires_grad:
            self.grad_evals += len(self.members) * int(x.shape[0])
        return super().forward_all(x, logits)


def make_attack(ctx: Context, target: nn.Module, fgsm: bool = False, setting: Setting | None = None) -> Attack:
    """The run's attack on ``target`` (:meth:`~liccs.attack.spec.AttackSpec.from_run`, as the attack stage builds
    it), or FGSM at the same eps;
    ``setting`` replaces its eps, steps and step size."""
    a = ctx.cfg.attack
    if a.eot_samples > 1:
        target = EoT(target, samples=a.eot_samples)
    eps = setting.eps if setting else a.eps
    steps, alpha = (setting.steps, setting.step_size) if setting else (a.steps, min(a.step_size, a.eps))
    common: dict[str, Any] = dict(norm=a.norm, targeted=a.targeted, objective=ATTACK_OBJECTIVES[a.objective],
                                  seed=ctx.cfg.run.seed, diversity=InputDiversity() if a.input_diversity else None)
    if fgsm:
        return AttackSpec("fgsm", eps=eps, **common).build(target)
    return AttackSpec.from_run(a.name, eps=eps, steps=steps, step_size=alpha, random_start=a.random_start,
                               params=a.params, **common).build(target)


def attack_labels(ctx: Context, labels: Tensor) -> Tensor:
    """What the attack aims at: the labels, or ``(label + 1) mod classes`` for a targeted attack."""
    return (labels + 1) % int(ctx.classifier.num_classes) if ctx.cfg.attack.targeted else labels


def stored_as(ctx: Context, out: Path, members: list[str], images: Tensor, labels: Tensor, *, fgsm: bool = False,
              setting: Setting | None = None) -> tuple[Path, str]:
    """(file, key) a source set's adversarial images are stored under: the key covers everything that determines
    them."""
    cfg = ctx.cfg
    over = {"eps": setting.eps, "steps": setting.steps, "step_size": setting.step_size} if setting else {}
    key = json_digest({"attack": cfg.to_dict()["attack"] | over, "fgsm": fgsm, "seed": cfg.run.seed, "members": members,
                       "weights": {m: ctx.weights[m].get("sha256") or ctx.weights[m].get("source") for m in members},
                       "images": hashlib.sha256(images.numpy().tobytes()).hexdigest(), "labels": labels.tolist(),
                       **device_key(cfg)})
    tag = ("fgsm-" if fgsm else "ens-") + "_".join(m.replace("@", "-") for m in members)
    if setting:
        tag = f"e{setting.eps_255:g}s{setting.steps}-{tag}"
    return out / "adversarial" / "paper-a" / f"{tag[:120]}-{key[:16]}.pt", key


def craft(ctx: Context, out: Path, members: list[str], images: Tensor, labels: Tensor, *,
          fgsm: bool = False, setting: Setting | None = None) -> tuple[Tensor, int, bool]:
    """(adversarial images, member gradient evaluations, loaded from the cache) of one source set; ``setting``
    replaces the run's eps, steps and step size."""
    cfg = ctx.cfg
    path, key = stored_as(ctx, out, members, images, labels, fgsm=fgsm, setting=setting)
    hit = load_keyed(path, key)
    if hit is not None:
        return hit["images"], int(hit["grad_evals"]), True
    ens = CountingEnsemble(ctx.attack_members(members), names=members)
    atk = make_attack(ctx, ens, fgsm=fgsm, setting=setting)
    aim, bs = attack_labels(ctx, labels), cfg.data.batch_size
    adv = torch.cat([atk(images[i:i + bs], aim[i:i + bs]) for i in range(0, len(images), bs)])
    record = {"key": key, "images": adv, "grad_evals": ens.grad_evals}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_keyed(path, record)
    return adv, ens.grad_evals, False


def heldout_images(ctx: Context, n: int, avoid: frozenset[str] = frozenset(),
                   purpose: str = "sampling") -> tuple[Tensor, Tensor, str, list[str]]:
    """``n`` images of ``data.source`` that are neither among the run's images nor in ``avoid`` (evenly spaced over
    the rest), their labels, a note and their names; the run's own images (with a note saying so) when the source
    has none left. ``purpose`` names what they are for in the note."""
    source = open_source(ctx.cfg.data.source)
    used = set(ctx.image_names)
    taken = used | avoid
    free = [i for i in range(len(source)) if source.describe(i)[0] not in taken]
    if not free:
        return (ctx.images[:n], ctx.labels[:n],
                f"{purpose}: {ctx.cfg.data.source} has no image beyond the run's {len(used)} and the {len(avoid)} "
                "set aside; the run's own images are used (selection leaks)", list(ctx.image_names[:n]))
    m = min(n, len(free))
    idx = sorted({free[round(i * (len(free) - 1) / max(1, m - 1))] for i in range(m)})
    resize, crop, interpolation = image_geometry(ctx.codecs, ctx.classifier)  # the run images' geometry
    batch = load_batch(source, idx, resize=resize, crop=crop, interpolation=interpolation)
    if not batch.names:
        raise RuntimeError(f"{purpose}: none of the {len(idx)} held-out images of {ctx.cfg.data.source} could be read")
    x = batch.images.contiguous()
    if all(v is not None for v in batch.labels):
        y = torch.tensor(batch.labels, dtype=torch.long)
    else:
        with torch.no_grad():
            y = ctx.classifier(x).argmax(1)  # the CPU model: x is on the CPU
    aside = f" and the {len(avoid)} set aside for another purpose" if avoid else ""
    return x, y, (f"{purpose}: {len(batch.names)} images of {ctx.cfg.data.source} disjoint from the {len(used)} run "
                  f"images{aside}"), list(batch.names)
