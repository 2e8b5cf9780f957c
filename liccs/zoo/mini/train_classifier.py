"""The mini zoo's CIFAR-10 classifier: a ResNet-9-style CNN trained from scratch on the CPU.

Recipe (fast CIFAR-10 training): random crops with 4-pixel reflection padding and horizontal flips,
label smoothing, SGD with Nesterov momentum on a one-cycle learning-rate schedule, channels_last.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liccs.core.progress import tqdm

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _conv_bn(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                               nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """``x + f(x)`` with ``f`` two conv-BN-ReLU blocks."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.f = nn.Sequential(_conv_bn(c, c), _conv_bn(c, c))

    def forward(self, x: Tensor) -> Tensor:
        """``x + f(x)``."""
        return x + self.f(x)


class ResNet9(nn.Module):
    """ResNet-9-style CIFAR network: prep, three pooled stages (residual after the 1st and 3rd), linear head.

    ``width`` is the first stage's channel count (the classic network uses 64; stages double it).
    ``flip_tta``: in eval mode, average the logits of the image and its mirror image (the test-time
    augmentation of the ResNet-9 DAWNBench recipe, Page 2018); training is unchanged.
    """

    def __init__(self, width: int = 32, num_classes: int = 10, flip_tta: bool = False) -> None:
        super().__init__()
        w = width
        self.flip_tta = flip_tta
        self.body = nn.Sequential(
            _conv_bn(3, w),
            _conv_bn(w, 2 * w, pool=True), Residual(2 * w),
            _conv_bn(2 * w, 4 * w, pool=True),
            _conv_bn(4 * w, 8 * w, pool=True), Residual(8 * w),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(8 * w, num_classes, bias=False)
        self.scale = 0.125  # the classic network's logit scale

    def forward(self, x: Tensor) -> Tensor:
        """Scaled logits of ``x``; in eval mode with ``flip_tta``, averaged with those of its mirror image."""
        out = self.head(self.body(x)) * self.scale
        if self.flip_tta and not self.training:
            out = (out + self.head(self.body(x.flip(-1))) * self.scale) / 2
        return out


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """How the CIFAR classifier is trained (every field enters the cache key)."""

    width: int = 16
    epochs: int = 8
    batch_size: int = 512
    lr: float = 0.4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    train_per_class: int | None = None  # None: all 5000 per class
    bf16: bool = True  # bfloat16 autocast (AVX-512 BF16 CPUs and GPUs run it faster; weights stay fp32)
    seed: int = 0


def normalize(x: Tensor) -> Tensor:
    """[0, 1] → CIFAR-normalized."""
    mean = torch.tensor(CIFAR_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def augment(x: Tensor, g: torch.Generator) -> Tensor:
    """Random crop (4-pixel reflect padding) and horizontal flip of a uint8/float batch, per image."""
    n, _, h, w = x.shape
    xp = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dy = torch.randint(0, 9, (n,), generator=g)
    dx = torch.randint(0, 9, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h))  # [n, h]
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w))  # [n, w]
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols)
    idx_n = torch.arange(n).view(n, 1, 1)
    out = xp.permute(0, 2, 3, 1)[idx_n, rows.view(n, h, 1), cols.view(n, 1, w)]  # [n, h, w, c]
    return out.permute(0, 3, 1, 2)


def train_classifier(
    cfg: ClassifierTrainConfig,
    images: Tensor,
    labels: Tensor,
    device: str = "cpu",
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    max_steps: int | None = None,
) -> tuple[ResNet9, list[dict[str, float]]]:
    """Train a :class:`ResNet9` on uint8 ``images`` ``[N, 3, 32, 32]``; returns (model in eval mode, loss log)."""
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    model = ResNet9(cfg.width).to(device).to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": no_decay, "weight_decay": 0}],
                          lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    steps_per_epoch = len(images) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs if max_steps is None else max_steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(total, 2), pct_start=0.25,
                                                anneal_strategy="linear", div_factor=10, final_div_factor=100)
    crit = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    log: list[dict[str, float]] = []
    step, t0 = 0, time.perf_counter()
    bar = tqdm(total=total, desc="training mini-cifar-resnet", disable=not progress, leave=False)
    model.train()
    while step < total:
        perm = torch.randperm(len(images), generator=g)
        for b in range(steps_per_epoch):
            if step >= total:
                break
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = augment(images[idx], g).float().div_(255)
            x = normalize(x.to(device)).contiguous(memory_format=torch.channels_last)
            y = labels[idx].to(device)
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=cfg.bf16):
                loss = crit(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            lv = loss.detach().item()
            log.append({"step": step, "loss": lv, "lr": sched.get_last_lr()[0], "time_s": time.perf_counter() - t0})
            bar.set_postfix(loss=f"{lv:.3f}")
            bar.update()
            if on_step is not None:
                on_step(step, lv)
    bar.close()
    return model.eval(), log


@torch.no_grad()
def accuracy(predict: Callable[[Tensor], Tensor], images: Tensor, labels: Tensor, batch_size: int = 500,
             progress: bool = False, desc: str = "evaluating") -> float:
    """Top-1 accuracy of ``predict`` (float [0, 1] images → logits) over uint8 ``images``."""
    correct = 0
    for i in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress, leave=False):
        x = images[i : i + batch_size].float().div(255)
        correct += int((predict(x).argmax(1).cpu() == labels[i : i + batch_size]).sum())
    return correct / len(images)
