"""Fixtures of the attack tests: a tiny trained CIFAR classifier and a tiny real CompressAI codec.

Everything is small enough to train or run in seconds on one core of a shared 2-core machine.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from compressai.models import FactorizedPrior
from torch import Tensor, nn

from liccs.data import cifar10, load_batch

#: CIFAR-10 classes of the 4-way task: airplane, cat, frog, truck.
CLASSES = (0, 3, 6, 9)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a loaded 2-core machine, two threads spin against each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Affine(nn.Module):
    def __init__(self, scale: float, shift: float) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


class TinyCodec(FactorizedPrior):
    """A real CompressAI FactorizedPrior (entropy bottleneck, compress/decompress) whose analysis and
    synthesis transforms are a 4×4 pixel (un)shuffle and an affine map: a uniform quantizer of the
    pixels with step 1/scale. Cheap, and its reconstruction follows its input."""

    def __init__(self, scale: float = 8.0) -> None:
        super().__init__(N=4, M=48)
        self.g_a = nn.Sequential(nn.PixelUnshuffle(4), Affine(scale, -0.5 * scale))
        self.g_s = nn.Sequential(Affine(1.0 / scale, 0.5), nn.PixelShuffle(4))


def tiny_codec(scale: float = 8.0, seed: int = 0) -> TinyCodec:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        codec = TinyCodec(scale).eval()
    codec.update(force=True)
    return codec


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, len(CLASSES)),
    )


@pytest.fixture(scope="session")
def cifar4(shared_data) -> tuple[Tensor, Tensor]:
    """200 CIFAR-10 training images of 4 classes (50 each), float [0, 1], labels 0..3."""
    src = cifar10("train", root=shared_data, limit_per_class=50)
    keep = [i for i in range(len(src)) if src.describe(i)[2] in CLASSES]
    batch = load_batch(src, keep)
    return batch.images, torch.tensor([CLASSES.index(v) for v in batch.labels])


@pytest.fixture(scope="session")
def trained_cnn(cifar4) -> nn.Module:
    """A small CNN trained on the 200 images for 30 epochs (a few seconds): ~90%+ training accuracy."""
    x, y = cifar4
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = small_cnn()
        opt = torch.optim.Adam(net.parameters(), 2e-3)
        for _ in range(30):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 50):
                idx = perm[i : i + 50]
                loss = F.cross_entropy(net(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    torch.set_num_threads(before)
    net.eval()
    net.num_classes = len(CLASSES)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@pytest.fixture(scope="session")
def batch(cifar4) -> tuple[Tensor, Tensor]:
    """16 of the training images (4 per class) with labels."""
    x, y = cifar4
    idx = torch.cat([torch.nonzero(y == c).flatten()[:4] for c in range(len(CLASSES))])
    return x[idx].contiguous(), y[idx].contiguous()
