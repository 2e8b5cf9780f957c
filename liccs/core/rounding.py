"""Rounding surrogates: how the codec's quantizer is crossed on the gradient path.

CompressAI's eval-mode forward rounds with ``torch.round``, whose gradient is zero almost everywhere,
so an attack through it sees no gradient at all. Each surrogate here maps a centred latent ``v``
(``y - means`` or ``z - medians``) to its quantized stand-in:

- ``hard``: ``round(v)``; the deployed behaviour, zero gradient.
- ``ste``: straight-through estimator (Bengio et al., 2013), i.e. BPDA with g(v)=v (Athalye et al.,
  ICML 2018): forward ``round(v)``, backward identity.
- ``noise``: additive uniform noise ``v + U(-0.5, 0.5)``, the training-time proxy (Ballé et al., ICLR 2017);
  random, so attacks using it are EoT attacks.
- ``identity``: no quantization at all (forward and backward ``v``): the continuous relaxation.
- ``cubic``: ``round(v) + (v - round(v))**3`` (Shin & Song, "JPEG-resistant adversarial images",
  NeurIPS-W 2017): forward close to rounding, gradient ``3 (v - round(v))**2``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from liccs.core import Registry

Surrogate = Callable[[Tensor], Tensor]

SURROGATES: Registry[Surrogate] = Registry("rounding surrogate")


def _hard(v: Tensor) -> Tensor:
    return torch.round(v)


def _ste(v: Tensor) -> Tensor:
    return v + (torch.round(v) - v).detach()


def _noise(v: Tensor) -> Tensor:
    return v + torch.empty_like(v).uniform_(-0.5, 0.5)


def _identity(v: Tensor) -> Tensor:
    return v


def _cubic(v: Tensor) -> Tensor:
    r = torch.round(v).detach()
    return r + (v - r) ** 3


SURROGATES.register("hard", _hard)
SURROGATES.register("ste", _ste)
SURROGATES.register("noise", _noise)
SURROGATES.register("identity", _identity)
SURROGATES.register("cubic", _cubic)


def get_surrogate(name: str) -> Surrogate:
    """The surrogate registered under ``name`` (unknown names list the valid ones)."""
    return SURROGATES.get(name)
