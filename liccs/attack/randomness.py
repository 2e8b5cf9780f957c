"""Randomness inside an attacked model, driven by the attack's own ``torch.Generator``.

A module whose forward is random (a transform draw, EoT's input transform) subclasses
:class:`RandomSource`; the attack hands it its generator before the first step, so a seed fixes every
draw without touching the global RNG. The ``noise`` rounding surrogate draws from the global RNG
(it lives in :mod:`liccs.core.rounding`); attacks run inside ``torch.random.fork_rng`` seeded from the same
seed, so those draws repeat too and the caller's global RNG state is left as it was.
"""

from __future__ import annotations

import torch
from torch import nn


class RandomSource:
    """Mixin for modules with random forwards: draws use ``self.generator`` (set by the attack)."""

    generator: torch.Generator | None = None

    def rng(self) -> torch.Generator:
        """The bound CPU generator, or a fresh one seeded 0 when used outside an attack.

        Draws are CPU scalars or CPU tensors, so a random forward never waits on the device.
        """
        if self.generator is None:
            self.generator = torch.Generator().manual_seed(0)
        return self.generator


def bind_generators(module: object, gen: torch.Generator) -> int:
    """Give ``gen`` to every :class:`RandomSource` in ``module`` (itself and its submodules); returns how many."""
    found = [module] if isinstance(module, RandomSource) else []
    if isinstance(module, nn.Module):
        found += [m for m in module.modules() if isinstance(m, RandomSource) and m is not module]
    for m in found:
        m.generator = gen
    return len(found)
