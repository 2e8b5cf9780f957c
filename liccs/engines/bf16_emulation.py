"""bf16 arithmetic on a CPU that lacks it, at fp32 speed: what AVX-512 BF16 and AMX-BF16 compute, emulated.

Those units multiply bf16 operands and accumulate in fp32; the product of two bf16 numbers (8-bit significands) is
exact in fp32, so a convolution on operands rounded to bf16 (round to nearest even), computed in fp32, gives what
they give up to the order of the fp32 sums. :class:`Bf16Emulation` rounds the operands of every
convolution, transposed convolution and matrix product that CPU autocast runs in bf16 (inputs, weights, bias) and
rounds the result to bf16, as autocast returns it. What it leaves in fp32: the element-wise operations between
them (a GDN's square root and division, activations), which autocast runs on the bf16 tensor it received. So it
is an approximation of a native bf16 engine's numerics, close enough to measure the quality cost of bf16 transforms
and whether attacks transfer to them; it is never timed (on an AVX2 CPU, PyTorch's own bf16 convolutions run
about 100× slower than fp32: ``torch-cpu-bf16`` is skipped there, ``torch-cpu-bf16-emu`` runs this instead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

#: The functions CPU autocast runs in bf16 that liccs's graphs call (convolutions and matrix products).
ROUNDED: frozenset[Callable[..., Any]] = frozenset({
    F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d, F.linear,
    torch.matmul, torch.mm, torch.bmm, torch.addmm, torch.baddbmm, Tensor.matmul, Tensor.__matmul__,
})


def to_bf16(x: Any) -> Any:
    """``x`` rounded to the nearest bf16 (ties to even), kept as fp32; other values unchanged."""
    if isinstance(x, Tensor) and x.is_floating_point():
        return x.to(torch.bfloat16).to(x.dtype)
    return x


class Bf16Emulation(TorchFunctionMode):
    """Inside ``with Bf16Emulation():`` every function of :data:`ROUNDED` computes on bf16-rounded operands and
    returns a bf16-rounded result (fp32 tensors holding bf16 values)."""

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func not in ROUNDED:
            return func(*args, **kwargs)
        out = func(*[to_bf16(a) for a in args], **{k: to_bf16(v) for k, v in kwargs.items()})
        return to_bf16(out)
