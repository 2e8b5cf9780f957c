"""The exact four-phase split of a stride-2 transposed convolution, an export option for ``g_s`` and ``h_s``.

A transposed convolution of stride s writes output row ``s·m + a`` from the kernel taps ``k ≡ a + p (mod s)``
only, so each of its s² output phases is an ordinary convolution with a sub-kernel, and the phases interleave
by DepthToSpace. For CompressAI's ``deconv`` (5×5, stride 2, padding 2, output padding 1) the phases have
3×3, 3×2, 2×3 and 2×2 taps: the same multiply-adds as the transposed convolution, unlike the sub-pixel rewrite
(one 3×3 convolution with four times the outputs, 44% more multiply-adds). Shi et al., *Is the deconvolution
layer the same as a convolutional layer?* (arXiv:1609.07009) derive the equivalence.

:func:`split_transposed` returns a copy of a module with every splittable ``nn.ConvTranspose2d`` replaced;
the result equals the original up to float summation order.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liccs.export.errors import ExportError

#: How a transposed convolution is exported: as ONNX ConvTranspose, or as four ordinary convolutions.
TRANSPOSED_FORMS = ("native", "four-phase")


def _phase_taps(kernel: int, stride: int, padding: int, phase: int) -> tuple[list[int], int]:
    """(kernel taps in correlation order, first input offset) of output phase ``phase`` along one axis.

    Output ``stride·m + phase`` reads input ``m + d`` through tap ``k`` where ``d = (phase + padding - k) / stride``.
    """
    taps = [k for k in range(kernel) if (phase + padding - k) % stride == 0]
    offsets = [(phase + padding - k) // stride for k in taps]
    order = sorted(range(len(taps)), key=lambda i: offsets[i])
    return [taps[i] for i in order], min(offsets)


def splittable(m: nn.ConvTranspose2d) -> str | None:
    """Why ``m`` cannot be split (None when it can): square stride, no dilation or groups, output = stride × input."""
    (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
    (oh, ow), (dh, dw) = m.output_padding, m.dilation
    if sh != sw or sh < 2:
        return f"stride {m.stride}"
    if (dh, dw) != (1, 1) or m.groups != 1:
        return f"dilation {m.dilation} / groups {m.groups}"
    if kh + oh - 2 * ph != sh or kw + ow - 2 * pw != sw:
        return "output size is not stride × input size"
    return None


class FourPhaseConvTranspose2d(nn.Module):
    """``nn.ConvTranspose2d`` as s² ordinary convolutions interleaved by a depth-to-space reshape (exact)."""

    def __init__(self, m: nn.ConvTranspose2d) -> None:
        super().__init__()
        why = splittable(m)
        if why:
            raise ExportError(f"transposed convolution {m} cannot be split into phases: {why}")
        self.stride = s = m.stride[0]
        self.in_channels, self.out_channels = m.in_channels, m.out_channels
        (kh, kw), (ph, pw) = m.kernel_size, m.padding
        w = m.weight.detach()  # (C_in, C_out, kh, kw)
        self.pads: list[tuple[int, int, int, int]] = []
        for a in range(s):
            rows, r0 = _phase_taps(kh, s, ph, a)
            for b in range(s):
                cols, c0 = _phase_taps(kw, s, pw, b)
                sub = w[:, :, rows][:, :, :, cols].transpose(0, 1).contiguous()  # (C_out, C_in, |rows|, |cols|)
                self.register_buffer(f"w{a}{b}", sub.clone())
                # pad (left, right, top, bottom) so that output m reads inputs m + r0 … m + r0 + |rows| - 1
                self.pads.append((-c0, c0 + len(cols) - 1, -r0, r0 + len(rows) - 1))
        self.register_buffer("bias", m.bias.detach().clone() if m.bias is not None else None)

    def forward(self, x: Tensor) -> Tensor:
        s = self.stride
        phases = []
        for i, pad in enumerate(self.pads):
            w = getattr(self, f"w{i // s}{i % s}")
            phases.append(F.conv2d(F.pad(x, pad), w, self.bias))
        n, c, h, wd = phases[0].shape
        # phase-major channels, (a, b, c): DepthToSpace's DCR order
        y = torch.cat(phases, 1).reshape(n, s, s, c, h, wd).permute(0, 3, 4, 1, 5, 2)
        return y.reshape(n, c, h * s, wd * s)


def transposed_count(module: nn.Module) -> int:
    """How many transposed convolutions of ``module`` :func:`split_transposed` would replace (no copy made)."""
    return sum(isinstance(m, nn.ConvTranspose2d) and splittable(m) is None for m in module.modules())


def split_transposed(module: nn.Module) -> tuple[nn.Module, int]:
    """(a copy of ``module`` with every splittable ConvTranspose2d replaced, how many were replaced)."""
    out = copy.deepcopy(module)
    count = 0

    def convert(parent: nn.Module) -> None:
        nonlocal count
        for name, child in parent.named_children():
            if isinstance(child, nn.ConvTranspose2d) and splittable(child) is None:
                setattr(parent, name, FourPhaseConvTranspose2d(child))
                count += 1
            else:
                convert(child)

    convert(out)
    return out, count
