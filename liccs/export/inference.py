"""Inference forms of CompressAI's training-time layers, so that every exporter sees plain tensor ops.

- ``GDN``/``GDN1``: β and γ go through ``NonNegativeParametrizer`` → ``LowerBound`` (a custom autograd
  function) on every call; the inference form holds the reparametrized β, γ as constant buffers.
- ``MaskedConv2d``: masks its weight by assigning ``weight.data`` in ``forward`` (not traceable); the
  inference form is an ``nn.Conv2d`` whose weight is already masked.
- ``LowerBound`` anywhere else: ``torch.max(x, bound)`` (its custom gradient only matters for training).

:func:`inference_form` returns a converted deep copy; the original model is not touched.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from compressai.layers import GDN, GDN1, MaskedConv2d
from compressai.ops import LowerBound
from torch import Tensor, nn

from liccs.export.errors import ExportError

#: Layers that carry a custom autograd function and have no inference form here.
_UNCONVERTIBLE = ("QReLU",)


class InferenceGDN(nn.Module):
    """GDN (or GDN1, ``simplified``) with constant β and γ: ``x * rsqrt(β + γ * x²)`` (inverse: ``sqrt``)."""

    def __init__(self, gdn: GDN) -> None:
        super().__init__()
        c = gdn.beta.shape[0]
        with torch.no_grad():
            beta = gdn.beta_reparam(gdn.beta).detach().clone()
            gamma = gdn.gamma_reparam(gdn.gamma).detach().reshape(c, c, 1, 1).clone()
        self.register_buffer("beta", beta)
        self.register_buffer("gamma", gamma)
        self.inverse = bool(gdn.inverse)
        self.simplified = isinstance(gdn, GDN1)

    def forward(self, x: Tensor) -> Tensor:
        """GDN on ``x`` (Ballé et al., ICLR 2016), or its inverse; GDN1 divides (multiplies) by ``β + γ * |x|``."""
        if self.simplified:
            norm = F.conv2d(torch.abs(x), self.gamma, self.beta)
            return x * norm if self.inverse else x / norm
        norm = F.conv2d(x * x, self.gamma, self.beta)
        return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))


class InferenceLowerBound(nn.Module):
    """``max(x, bound)`` without the custom gradient."""

    def __init__(self, lb: LowerBound) -> None:
        super().__init__()
        self.register_buffer("bound", lb.bound.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        """``max(x, bound)``."""
        return torch.maximum(x, self.bound)


def _masked_conv(m: MaskedConv2d) -> nn.Conv2d:
    conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                     m.bias is not None, m.padding_mode)
    with torch.no_grad():
        conv.weight.copy_(m.weight * m.mask)
        if m.bias is not None:
            conv.bias.copy_(m.bias)
    return conv


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, GDN):
        return InferenceGDN(module)
    if isinstance(module, MaskedConv2d):
        return _masked_conv(module)
    if isinstance(module, LowerBound):
        return InferenceLowerBound(module)
    if type(module).__name__ in _UNCONVERTIBLE:
        raise ExportError(f"layer {type(module).__name__} uses a custom autograd function with no inference form")
    for name, child in module.named_children():
        setattr(module, name, _convert(child))
    return module


def inference_form(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` in eval mode with GDN, MaskedConv2d and LowerBound in their inference forms."""
    return _convert(copy.deepcopy(module)).eval()
