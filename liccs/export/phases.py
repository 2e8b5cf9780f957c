"""Transposed convolutions as ordinary ones, export options for ``g_s`` and ``h_s``: the four-phase split, and the
sub-pixel form of narrow output layers.

A transposed convolution of stride s writes output row ``s·m + a`` from the kernel taps ``k ≡ a + p (mod s)``
only, so each of its s² output phases is an ordinary convolution with a sub-kernel, and the phases interleave
by DepthToSpace. For CompressAI's ``deconv`` (5×5, stride 2, padding 2, output padding 1) the phases have
3×3, 3×2, 2×3 and 2×2 taps: the same multiply-adds as the transposed convolution, unlike the sub-pixel rewrite
(one 3×3 convolution with four times the outputs, 44% more multiply-adds). Shi et al., *Is the deconvolution
layer the same as a convolutional layer?* (arXiv:1609.07009) derive the equivalence.

The sub-pixel form (Shi et al., *Real-time single image and video super-resolution using an efficient sub-pixel
convolutional neural network*, CVPR 2016) puts the four phases' sub-kernels into one convolution over the union of
their windows (3×3 here) with s²·C_out outputs, then interleaves them. It costs 44% more multiply-adds, so
``"sub-pixel-output"`` uses it only for narrow layers (at most :data:`NARROW` output channels: ``g_s``'s 128 → 3
output layer), where the transposed convolution fills 3 of a vector's 8 lanes. Measured inside OpenVINO's whole
``g_s`` at Kodak size (issue 18's fifth session): 19-20 ms faster than the native layer by the median, 24-31 ms by
the best round, about half the gap to a free output layer (``benchmarks/layer_budget.py``'s bound row).

:func:`split_transposed` returns a copy of a module with the transposed convolutions a form rewrites replaced;
the result equals the original up to float summation order.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liccs.export.errors import ExportError

#: How transposed convolutions are exported: as ONNX ConvTranspose, each as four ordinary convolutions, or the
#: narrow ones (the image output layer) as one sub-pixel convolution.
TRANSPOSED_FORMS = ("native", "four-phase", "sub-pixel-output")
#: The widest transposed convolution (output channels) ``"sub-pixel-output"`` rewrites: an image's colours, half an
#: AVX2 vector of fp32 or less (the tiny test models' 8 → 8 layers stay).
NARROW = 4


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


def _phases(m: nn.ConvTranspose2d) -> list[tuple[Tensor, tuple[int, int, int, int]]]:
    """Per output phase (a, b), row-major: (sub-kernel (C_out, C_in, rows, cols), pad (left, right, top, bottom)
    such that output m reads inputs m + r0 … m + r0 + rows - 1)."""
    why = splittable(m)
    if why:
        raise ExportError(f"transposed convolution {m} cannot be split into phases: {why}")
    s, (kh, kw), (ph, pw) = m.stride[0], m.kernel_size, m.padding
    w = m.weight.detach()  # (C_in, C_out, kh, kw)
    out = []
    for a in range(s):
        rows, r0 = _phase_taps(kh, s, ph, a)
        for b in range(s):
            cols, c0 = _phase_taps(kw, s, pw, b)
            sub = w[:, :, rows][:, :, :, cols].transpose(0, 1).contiguous()
            out.append((sub.clone(), (-c0, c0 + len(cols) - 1, -r0, r0 + len(rows) - 1)))
    return out


def _interleave(y: Tensor, s: int) -> Tensor:
    """(N, s²·C, h, w), phase-major channels (a, b, c) as in DepthToSpace's DCR order → (N, C, s·h, s·w)."""
    n, sc, h, w = y.shape
    c = sc // (s * s)
    return y.reshape(n, s, s, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c, h * s, w * s)


class FourPhaseConvTranspose2d(nn.Module):
    """``nn.ConvTranspose2d`` as s² ordinary convolutions interleaved by a depth-to-space reshape (exact)."""

    def __init__(self, m: nn.ConvTranspose2d) -> None:
        super().__init__()
        phases = _phases(m)
        self.stride = m.stride[0]
        self.in_channels, self.out_channels = m.in_channels, m.out_channels
        self.pads: list[tuple[int, int, int, int]] = [pad for _, pad in phases]
        for i, (sub, _) in enumerate(phases):
            self.register_buffer(f"w{i // self.stride}{i % self.stride}", sub)
        self.register_buffer("bias", m.bias.detach().clone() if m.bias is not None else None)

    def forward(self, x: Tensor) -> Tensor:
        """The transposed convolution of ``x``: each phase's convolution, interleaved."""
        s = self.stride
        phases = []
        for i, pad in enumerate(self.pads):
            w = getattr(self, f"w{i // s}{i % s}")
            phases.append(F.conv2d(F.pad(x, pad), w, self.bias))
        return _interleave(torch.cat(phases, 1), s)


class SubPixelConvTranspose2d(nn.Module):
    """``nn.ConvTranspose2d`` as one convolution with s²·C_out outputs over the union of its phases' windows,
    interleaved by a depth-to-space reshape (exact; the phases' sub-kernels zero-padded into one window)."""

    def __init__(self, m: nn.ConvTranspose2d) -> None:
        super().__init__()
        phases = _phases(m)
        self.stride = s = m.stride[0]
        self.in_channels, self.out_channels = m.in_channels, m.out_channels
        # the window every phase reads within: inputs m - top … m + bottom, columns m - left … m + right
        left, top = max(p[0] for _, p in phases), max(p[2] for _, p in phases)
        right, bottom = max(p[1] for _, p in phases), max(p[3] for _, p in phases)
        weight = m.weight.new_zeros(s * s, m.out_channels, m.in_channels, top + bottom + 1, left + right + 1)
        for i, (sub, (lp, _, tp, _)) in enumerate(phases):
            r, c = top - tp, left - lp
            weight[i, :, :, r:r + sub.shape[2], c:c + sub.shape[3]] = sub
        self.pad = (left, right, top, bottom)
        self.register_buffer("weight", weight.reshape(s * s * m.out_channels, m.in_channels, *weight.shape[-2:]))
        self.register_buffer("bias", m.bias.detach().repeat(s * s) if m.bias is not None else None)

    def forward(self, x: Tensor) -> Tensor:
        """The transposed convolution of ``x``: one convolution over the union window, interleaved."""
        left, right, top, bottom = self.pad
        if (left, top) == (right, bottom):  # the convolution pads (no separate Pad node in the graph)
            return _interleave(F.conv2d(x, self.weight, self.bias, padding=(top, left)), self.stride)
        return _interleave(F.conv2d(F.pad(x, self.pad), self.weight, self.bias), self.stride)


#: The module each form puts in place of a transposed convolution it rewrites, and which ones it rewrites.
_REWRITES: dict[str, tuple[type[nn.Module], Callable[[nn.ConvTranspose2d], bool]]] = {
    "four-phase": (FourPhaseConvTranspose2d, lambda m: True),
    "sub-pixel-output": (SubPixelConvTranspose2d, lambda m: m.out_channels <= NARROW),
}


def _rewrite(form: str) -> tuple[type[nn.Module], Callable[[nn.Module], bool]]:
    """(the module ``form`` puts in place, whether it replaces a given module), the form checked once."""
    if form not in _REWRITES:
        raise ExportError(f"transposed form {form!r} rewrites nothing; forms that do: {', '.join(_REWRITES)}")
    cls, narrow = _REWRITES[form]
    return cls, lambda m: isinstance(m, nn.ConvTranspose2d) and splittable(m) is None and narrow(m)


def transposed_count(module: nn.Module, form: str = "four-phase") -> int:
    """How many transposed convolutions of ``module`` :func:`split_transposed` would replace (no copy made)."""
    rewritten = _rewrite(form)[1]
    return sum(rewritten(m) for m in module.modules())


def split_transposed(module: nn.Module, form: str = "four-phase") -> tuple[nn.Module, int]:
    """(a copy of ``module`` with the transposed convolutions ``form`` rewrites replaced, how many were)."""
    cls, rewritten = _rewrite(form)
    out = copy.deepcopy(module)
    count = 0

    def convert(parent: nn.Module) -> None:
        nonlocal count
        for name, child in parent.named_children():
            if rewritten(child):
                setattr(parent, name, cls(child))
                count += 1
            else:
                convert(child)

    convert(out)
    return out, count
