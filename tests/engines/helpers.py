"""Shared helpers of the export / engines / parity tests: models loaded once, checkpoints the tests make."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

from liccs.zoo import CODECS, load_codec


@functools.cache
def codec(name: str) -> nn.Module:
    """A codec with random weights, loaded once per test session (tests must not modify it)."""
    return load_codec(name, "random")


def lowest_highest() -> list[str]:
    """Every registered codec at its lowest and highest quality."""
    return [f"{a}@q{q}" for a in CODECS.names() for q in sorted({min(CODECS.get(a).qualities),
                                                                  max(CODECS.get(a).qualities)})]


def stress_checkpoint(name: str, path: Path, gain: float = 30.0, scale_gain: float = 300.0) -> Path:
    """A checkpoint of ``name`` whose latents look like a trained model's: random weights with ``g_a``'s
    last layer scaled up (y of std ~1) and ``h_s``'s last conv scaled so that the scales spread over many
    entropy tables (random weights alone give y ≈ 0 and a single table)."""
    m = load_codec(name, "random")
    with torch.no_grad():
        last = [mod for mod in m.g_a.modules() if isinstance(mod, nn.Conv2d)][-1]
        last.weight.mul_(gain)
        last.bias.mul_(gain)
        first_s = [mod for mod in m.g_s.modules() if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d))][0]
        first_s.weight.div_(gain)
        if hasattr(m, "h_s"):
            hs = [mod for mod in m.h_s.modules() if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d))][-1]
            hs.weight.mul_(scale_gain)
            hs.bias.mul_(scale_gain)
    torch.save(m.state_dict(), path)
    return path


#: The cheapest registered codec with a hyperprior (the mini zoo's toy model when registered): for tests of
#: the machinery (exporters, CLI) rather than of a particular architecture.
SMALL = ("mini-tiny-bmshj2018-hyperprior@q1" if "mini-tiny-bmshj2018-hyperprior" in CODECS
         else "bmshj2018-hyperprior@q1")
