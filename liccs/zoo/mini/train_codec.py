"""Training and evaluation of the mini zoo's codec quality ladders.

The architectures are CompressAI's (Ballé et al., ICLR 2018: factorized prior and scale hyperprior;
Minnen et al., NeurIPS 2018: mean-scale hyperprior) with fewer channels. The loss is CompressAI's
rate-distortion objective ``λ·255²·MSE + bpp`` on its λ ladder.

Quantization in training is *mixed*: the rate term sees additive uniform noise (Ballé et al., 2017),
while the synthesis transform sees latents rounded with a straight-through gradient, exactly as the
real decoder will see them. Pure noise training for a few minutes decodes far worse than it trains,
because rounding erases the small latents the decoder learned to use; the evaluation below therefore
runs the real ``compress``/``decompress`` (:func:`liccs.pipeline.codec_roundtrip`), not the loss.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liccs.core import resize_center_crop
from liccs.core.progress import tqdm
from liccs.families import MSE_LAMBDAS, CodecFamily, family_of_class
from liccs.pipeline import codec_roundtrip, psnr  # lazily: liccs.pipeline imports liccs.zoo
from liccs.zoo.codecs import COMPRESSAI_ARCHS

#: CompressAI's λ per quality for MSE (q1..q8).
LAMBDAS: dict[int, float] = MSE_LAMBDAS

ARCHS: dict[str, tuple[type[nn.Module], CodecFamily]] = {
    arch: (COMPRESSAI_ARCHS[arch][0], family_of_class(COMPRESSAI_ARCHS[arch][0]))
    for arch in ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean")
}


@dataclass(frozen=True)
class LadderConfig:
    """One codec quality ladder: architecture, width, data and schedule (every field enters the cache key).

    ``data``: ``"cifar10-64-nearest"`` (CIFAR-10 train, 32×32 upsampled 2× nearest; ``"cifar10-64"``:
    bilinear, the first recipe) or ``"imagenet-crops-S"``
    (S×S crops of imagenet-samples). ``base_quality`` (the highest when None) trains from scratch for
    ``base_steps``; every other quality is fine-tuned for ``finetune_steps`` from its neighbour on the side
    of the base (:meth:`parent`), so the ladder grows outward from the base in both directions.
    ``independent``: every quality trains from scratch for ``base_steps`` (seeded per quality), sharing no
    weights with its neighbours: the lineage control of paper A's quality-transfer experiment.
    """

    arch: str
    N: int
    M: int
    data: str
    qualities: tuple[int, ...]
    base_steps: int
    finetune_steps: int
    batch_size: int
    lr: float = 1e-3
    aux_lr: float = 1e-3
    train_limit: int | None = None  # cifar: images per class; crops: crops per image
    seed: int = 0
    base_quality: int | None = None
    independent: bool = False

    def __post_init__(self) -> None:
        if self.independent and self.base_quality is not None:
            raise ValueError("an independent ladder has no base quality: every quality trains from scratch")
        if self.base_quality is not None and self.base_quality not in self.qualities:
            raise ValueError(f"base_quality {self.base_quality} is not one of the qualities {self.qualities}")

    def key_fields(self) -> dict:
        """The fields that name the trained models (:func:`liccs.zoo.mini.store.config_key`). ``base_quality=None``
        trains exactly as ladders did before the field existed, so it is left out and their keys stay valid."""
        d = asdict(self)
        if d["base_quality"] is None:
            del d["base_quality"]
        if not d["independent"]:
            del d["independent"]
        return d

    @property
    def base(self) -> int:
        """The quality trained from scratch."""
        return max(self.qualities) if self.base_quality is None else self.base_quality

    def parent(self, quality: int) -> int | None:
        """The quality ``quality`` is fine-tuned from: its neighbour towards the base (None for the base)."""
        if self.independent:
            return None
        qs = sorted(self.qualities)
        i, b = qs.index(quality), qs.index(self.base)
        return None if i == b else qs[i - 1] if i > b else qs[i + 1]

    def chain(self, quality: int) -> list[int]:
        """``quality`` and its ancestors, base first: what must be trained to get ``quality``."""
        out = [quality]
        while (p := self.parent(out[-1])) is not None:
            out.append(p)
        return out[::-1]

    def init_seed(self, quality: int) -> int:
        """The torch seed of ``quality``'s training (initialisation and batch order): ``seed·1000 + quality``, so
        that resuming a chain gives what an uninterrupted run gives, and ladders of other seeds share neither."""
        return self.seed * 1000 + quality

    def order(self) -> list[int]:
        """A training order in which every quality follows its parent: the base, upward, then downward."""
        qs = sorted(self.qualities)
        b = qs.index(self.base)
        return [qs[b], *qs[b + 1 :], *qs[:b][::-1]]


def build_codec(arch: str, N: int, M: int) -> nn.Module:
    """A CompressAI model of ``arch`` with ``N``/``M`` channels (random init)."""
    return ARCHS[arch][0](N, M)


def cifar_to_codec_input(images: Tensor, size: int = 64, interpolation: str = "nearest") -> Tensor:
    """uint8 CIFAR ``[N, 3, 32, 32]`` → float [0, 1] at ``size × size``, as ``liccs run`` loads them for a mini codec
    (``load_batch(resize=64, crop=64, interpolation="nearest")``)."""
    return resize_center_crop(images.float().div(255), size, size, interpolation)


def batches(images: Tensor, cfg: LadderConfig, g: torch.Generator) -> Iterator[Tensor]:
    """Endless random batches (with horizontal flips) as float codec inputs."""
    while True:
        idx = torch.randint(0, len(images), (cfg.batch_size,), generator=g)
        x = images[idx]
        flip = torch.rand(cfg.batch_size, generator=g) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if cfg.data.startswith("cifar10-64"):
            yield cifar_to_codec_input(x, interpolation="nearest" if cfg.data.endswith("-nearest") else "bilinear")
        else:
            yield x.float().div(255)


def train_quality(
    model: nn.Module,
    cfg: LadderConfig,
    quality: int,
    steps: int,
    data: Iterator[Tensor],
    device: str = "cpu",
    progress: bool = True,
    desc: str = "",
) -> list[dict[str, float]]:
    """Train ``model`` (in place) at ``LAMBDAS[quality]`` for ``steps``; the lr drops 10× for the last 20%."""
    family = ARCHS[cfg.arch][1]
    lmbda = LAMBDAS[quality]
    aux_params = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    main_params = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    opt = torch.optim.Adam(main_params, lr=cfg.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=cfg.aux_lr)
    model.train()
    log: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for step in tqdm(range(1, steps + 1), desc=desc, disable=not progress, leave=False):
        if step == int(0.8 * steps) + 1:
            for grp in opt.param_groups:
                grp["lr"] = cfg.lr / 10
        x = next(data).to(device)
        x_hat, bpp = family.train_forward(model, x)  # noisy likelihoods, rounded decoder input
        mse = F.mse_loss(x_hat, x)
        loss = lmbda * 255**2 * mse + bpp.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(main_params, 1.0)
        opt.step()
        aux = model.aux_loss()
        aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        aux_opt.step()
        if step % 10 == 0 or step == steps:
            log.append({"step": step, "loss": loss.item(), "bpp_est": bpp.mean().item(), "mse": mse.item(),
                        "aux": aux.item(), "time_s": time.perf_counter() - t0})
    return log


def train_ladder(
    cfg: LadderConfig,
    images: Tensor,
    device: str = "cpu",
    progress: bool = True,
    name: str = "",
    on_done: Callable[[int, nn.Module, list[dict[str, float]], float], None] | None = None,
    trained: dict[int, nn.Module] | None = None,
    only: set[int] | None = None,
) -> dict[int, nn.Module]:
    """Train the qualities of ``cfg`` outward from its base, each from its :meth:`LadderConfig.parent`.

    ``on_done(quality, model, log, wall_s)`` is called after each quality (the caller caches it);
    ``trained`` holds already trained qualities (not retrained, used as parents); ``only`` the qualities
    to train (default: all not in ``trained``), whose parents must be in ``trained`` or in ``only``.
    """
    models: dict[int, nn.Module] = dict(trained or {})
    todo = set(cfg.qualities) - set(models) if only is None else set(only)
    for q in cfg.order():
        if q not in todo:
            continue
        p = cfg.parent(q)
        if p is not None and p not in models:
            raise ValueError(f"{name}@q{q} is fine-tuned from q{p}, which is neither trained nor to be trained")
        torch.manual_seed(cfg.init_seed(q))
        data = batches(images, cfg, torch.Generator().manual_seed(cfg.init_seed(q)))
        t = time.perf_counter()
        model = build_codec(cfg.arch, cfg.N, cfg.M) if p is None else copy.deepcopy(models[p])
        model = model.to(device)
        steps = cfg.base_steps if p is None else cfg.finetune_steps
        log = train_quality(model, cfg, q, steps, data, device, progress, desc=f"training {name}@q{q}")
        model = model.eval().cpu()
        model.update(force=True)
        models[q] = model
        if on_done is not None:
            on_done(q, model, log, time.perf_counter() - t)
    return models


@torch.no_grad()
def evaluate_roundtrip(
    codec: nn.Module, images: Tensor, batch_size: int = 100, classify: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, float]:
    """The REAL entropy-coded path on float ``images``: mean bpp, mean PSNR, and accuracy logits if asked.

    Returns ``bpp``, ``psnr`` (mean over images, reconstruction clamped to [0, 1]) and, with ``classify``,
    the predictions under key ``pred`` are summarized by the caller (see :func:`liccs.zoo.mini.report`).
    """
    codec = codec.eval()
    codec.update(force=True)
    bits, ps, preds = [], [], []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size]
        x_hat, nbytes = codec_roundtrip(codec, x)
        x_hat = x_hat.clamp(0, 1)
        bits += [8 * b / (x.shape[-2] * x.shape[-1]) for b in nbytes]
        ps.append(psnr(x_hat, x))
        if classify is not None:
            preds.append(classify(x_hat).argmax(1))
    out = {"bpp": sum(bits) / len(bits), "psnr": torch.cat(ps).mean().item()}
    if classify is not None:
        out["pred"] = torch.cat(preds)  # type: ignore[assignment]
    return out
