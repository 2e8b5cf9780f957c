"""A differentiable PyTorch replica of an OpenVINO model (``ov-cpu-int8``'s NNCF-quantized IR): :class:`OvReplica`.

The counterpart of :class:`~liccs.engines.replica.OnnxReplica` for the OpenVINO engines: the IR the engine compiles
is read with OpenVINO's own reader and executed op by op with torch operations. NNCF's quantizers are
``FakeQuantize`` ops (OpenVINO opset spec: inputs below ``input_low`` give ``output_low``, above ``input_high``
``output_high``, in between ``levels`` uniform steps); their rounding passes the gradient straight through (STE) and
saturation passes none, as in the ONNX replica. Int8 weights (``Constant`` → ``Convert`` → ``Subtract`` →
``Multiply``) fold once into float constants. How closely the replica follows the engine is measured
(:func:`liccs.checks.replica.replica_parity`), not assumed: the CPU plugin runs these as integer kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liccs.core.errors import InputError
from liccs.engines.replica import gather, round_ste, unsqueeze

Op = Callable[[list[Any], dict[str, Any]], Any]
_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16, "f64": torch.float64,
           "i64": torch.int64, "i32": torch.int32, "i8": torch.int8, "u8": torch.uint8, "boolean": torch.bool}


def _ints(t: Any) -> list[int]:
    return [int(v) for v in (t.reshape(-1).tolist() if isinstance(t, Tensor) else t)]


def _fake_quantize(i: list[Any], a: dict[str, Any]) -> Tensor:
    x, il, ih, ol, oh = (v.to(torch.float32) if isinstance(v, Tensor) else v for v in i)
    n = a["levels"] - 1
    q = round_ste((torch.minimum(torch.maximum(x, il), ih) - il) / (ih - il) * n) / n * (oh - ol) + ol
    return torch.where(x <= torch.minimum(il, ih), ol, torch.where(x > torch.maximum(il, ih), oh, q))


def _pads(a: dict[str, Any], nd: int) -> tuple[list[int], list[int]]:
    if a.get("auto_pad", "explicit") not in ("explicit", "notset", "valid"):
        raise InputError(f"auto_pad={a['auto_pad']!r} is not supported by the OpenVINO replica")
    if a.get("auto_pad") == "valid":
        return [0] * nd, [0] * nd
    return list(a.get("pads_begin", [0] * nd)), list(a.get("pads_end", [0] * nd))


def _padded(x: Tensor, begin: list[int], end: list[int]) -> tuple[Tensor, list[int]]:
    """``x`` padded where the padding is asymmetric, and the symmetric padding left for the convolution."""
    if begin == end:
        return x, begin
    return F.pad(x, [v for d in reversed(range(len(begin))) for v in (begin[d], end[d])]), [0] * len(begin)


def _conv(i: list[Any], a: dict[str, Any], groups: int = 1) -> Tensor:
    x, w = i[0], i[1].to(i[0].dtype)
    if groups == 0:  # GroupConvolution: weights [G, C_out/G, C_in/G, k...]
        groups, w = w.shape[0], w.reshape(w.shape[0] * w.shape[1], *w.shape[2:])
    nd = w.dim() - 2
    x, pad = _padded(x, *_pads(a, nd))
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    return fn(x, w, None, a.get("strides", [1] * nd), pad, a.get("dilations", [1] * nd), groups)


def _deconv(i: list[Any], a: dict[str, Any]) -> Tensor:
    if len(i) > 2:
        raise InputError("ConvolutionBackpropData with an output_shape input is not supported by the OpenVINO replica")
    x, w = i[0], i[1].to(i[0].dtype)
    nd = w.dim() - 2
    begin, end = _pads(a, nd)
    extra = list(a.get("output_padding", [0] * nd))
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]
    full = fn(x, w, None, a.get("strides", [1] * nd), 0, 0, 1, a.get("dilations", [1] * nd))
    out = full
    for d in range(nd):  # size = full − begin − end + output padding (zeros past the full output, if any)
        axis, size = 2 + d, full.shape[2 + d] - begin[d] - end[d] + extra[d]
        out = out.narrow(axis, begin[d], min(size, full.shape[axis] - begin[d]))
        if out.shape[axis] < size:
            pad = [0, 0] * (out.dim() - 1 - axis) + [0, size - out.shape[axis]]
            out = F.pad(out, pad)
    return out


def _pool(kind: str) -> Op:
    def run(i: list[Any], a: dict[str, Any]) -> Tensor:
        x = i[0]
        nd = x.dim() - 2
        x, pad = _padded(x, *_pads(a, nd))
        ceil = a.get("rounding_type", "floor") == "ceil"
        if kind == "max":
            fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]
            return fn(x, a["kernel"], a["strides"], pad, a.get("dilations", [1] * nd), ceil)
        fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[nd]
        return fn(x, a["kernel"], a["strides"], pad, ceil, not a.get("exclude-pad", False))
    return run


def _reduce(fn: Callable[..., Tensor]) -> Op:
    return lambda i, a: fn(i[0], dim=tuple(v % i[0].dim() for v in _ints(i[1])), keepdim=a.get("keep_dims", False))


def _reshape(i: list[Any], a: dict[str, Any]) -> Tensor:
    shape = _ints(i[1])
    if a.get("special_zero"):
        shape = [i[0].shape[k] if v == 0 else v for k, v in enumerate(shape)]
    return i[0].reshape(shape)


def _gather(i: list[Any], a: dict[str, Any]) -> Tensor:
    if a.get("batch_dims", 0):
        raise InputError("Gather with batch_dims is not supported by the OpenVINO replica")
    return gather(i[0], i[1], int(_ints(i[2])[0]))


def _slice(i: list[Any], a: dict[str, Any]) -> Tensor:
    """OpenVINO ``Slice`` (opset 8): Python slicing per axis, negative steps included (a channel flip)."""
    x, start, stop, step = i[0], _ints(i[1]), _ints(i[2]), _ints(i[3])
    axes = _ints(i[4]) if len(i) > 4 else list(range(len(start)))
    for b, e, s, ax in zip(start, stop, step, axes, strict=True):
        n, ax = x.shape[ax], ax % x.dim()
        b, e = (v + n if v < 0 else v for v in (b, e))
        lo, hi = (0, n) if s > 0 else (-1, n - 1)
        idx = torch.arange(min(max(b, lo), hi), min(max(e, lo), hi), s)
        x = torch.index_select(x, ax, idx)
    return x


def _split(i: list[Any], a: dict[str, Any]) -> tuple[Tensor, ...]:
    x, axis = i[0], int(_ints(i[1])[0])
    return torch.chunk(x, a["num_splits"], axis)


def _pad(i: list[Any], a: dict[str, Any]) -> Tensor:
    x, begin, end = i[0], _ints(i[1]), _ints(i[2])
    value = float(i[3]) if len(i) > 3 and i[3] is not None else 0.0
    if any(begin[:2]) or any(end[:2]):
        raise InputError("Pad over the batch or channel axis is not supported by the OpenVINO replica")
    flat = [v for d in reversed(range(2, x.dim())) for v in (begin[d], end[d])]
    mode = a.get("pad_mode", "constant")
    if mode == "constant":
        return F.pad(x, flat, value=value)
    return F.pad(x, flat, mode={"reflect": "reflect", "edge": "replicate"}[mode])


def _broadcast(i: list[Any], a: dict[str, Any]) -> Tensor:
    mode = a.get("mode", "numpy")
    if mode not in ("numpy", "bidirectional"):
        raise InputError(f"Broadcast mode {mode!r} is not supported by the OpenVINO replica")
    shape = _ints(i[1])
    if mode == "bidirectional":
        shape = list(torch.broadcast_shapes(tuple(i[0].shape), tuple(shape)))
    return i[0].expand(shape).clone()


def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> Op:
    return lambda i, a: fn(i[0], i[1])


def _divide(i: list[Any], a: dict[str, Any]) -> Tensor:
    x, y = i
    if not x.is_floating_point() and a.get("m_pythondiv", True):
        return torch.div(x, y, rounding_mode="floor")
    return x / y


OPS: dict[str, Op] = {
    "FakeQuantize": _fake_quantize, "Convolution": _conv,
    "GroupConvolution": lambda i, a: _conv(i, a, groups=0), "ConvolutionBackpropData": _deconv,
    "Convert": lambda i, a: i[0].to(_DTYPES[a["destination_type"]]),
    "Add": _binary(torch.add), "Subtract": _binary(torch.sub), "Multiply": _binary(torch.mul), "Divide": _divide,
    "Maximum": _binary(torch.maximum), "Minimum": _binary(torch.minimum), "FloorMod": _binary(torch.remainder),
    "Power": _binary(torch.pow), "Negative": lambda i, a: -i[0], "Sqrt": lambda i, a: torch.sqrt(i[0]),
    "Abs": lambda i, a: torch.abs(i[0]), "Exp": lambda i, a: torch.exp(i[0]), "Relu": lambda i, a: F.relu(i[0]),
    "Sigmoid": lambda i, a: torch.sigmoid(i[0]), "Tanh": lambda i, a: torch.tanh(i[0]),
    "Floor": lambda i, a: torch.floor(i[0]), "Ceiling": lambda i, a: torch.ceil(i[0]),
    "Clamp": lambda i, a: torch.clamp(i[0], a["min"], a["max"]),
    "Round": lambda i, a: round_ste(i[0]) if a.get("mode", "half_to_even") == "half_to_even"
    else torch.sign(i[0]) * torch.floor(i[0].abs() + 0.5),
    "MatMul": lambda i, a: torch.matmul(i[0].transpose(-1, -2) if a.get("transpose_a") else i[0],
                                        i[1].transpose(-1, -2) if a.get("transpose_b") else i[1]),
    "BatchNormInference": lambda i, a: F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0, a["epsilon"]),
    "MaxPool": _pool("max"), "AvgPool": _pool("avg"), "ReduceMax": _reduce(torch.amax),
    "ReduceMin": _reduce(torch.amin), "ReduceMean": _reduce(torch.mean), "ReduceSum": _reduce(torch.sum),
    "Reshape": _reshape, "Unsqueeze": lambda i, a: unsqueeze(i[0], _ints(i[1])),
    "Squeeze": lambda i, a: i[0].squeeze(tuple(v % i[0].dim() for v in _ints(i[1]))) if len(i) > 1 else i[0].squeeze(),
    "ShapeOf": lambda i, a: torch.tensor(list(i[0].shape), dtype=_DTYPES.get(a.get("output_type", "i64"), torch.int64)),
    "Concat": lambda i, a: torch.cat(i, a["axis"]), "Gather": _gather, "Slice": _slice, "Split": _split, "Pad": _pad,
    "Broadcast": _broadcast, "Transpose": lambda i, a: i[0].permute(*_ints(i[1])),
    "Softmax": lambda i, a: torch.softmax(i[0], a.get("axis", 1)),
}


class OvReplica(nn.Module):
    """The OpenVINO model at ``path`` (IR ``.xml``, or anything OpenVINO reads) as a differentiable torch module:
    ``forward(*inputs)`` in the model's parameter order.

    Raises:
        InputError: naming the op types and file, when the model holds an op the replica does not implement.
    """

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        import openvino as ov

        super().__init__()
        self.path = Path(path)
        self.name = self.liccs_name = name or self.path.name
        model = ov.Core().read_model(str(self.path))
        ops = model.get_ordered_ops()
        unknown = sorted({o.get_type_name() for o in ops} - set(OPS) - {"Parameter", "Constant", "Result"})
        if unknown:
            raise InputError(f"{self.path}: the OpenVINO replica cannot execute op(s) {unknown}; supported: "
                             f"{', '.join(sorted(OPS))}")
        self.inputs = [p.get_name() for p in model.get_parameters()]
        consts: dict[tuple[str, int], Tensor] = {}
        self.nodes: list[tuple[str, list[tuple[str, int]], str, dict[str, Any]]] = []
        self.outputs: list[tuple[str, int]] = []
        for o in ops:
            kind, key = o.get_type_name(), o.get_name()
            ins = [(i.get_source_output().get_node().get_name(), i.get_source_output().get_index()) for i in o.inputs()]
            if kind == "Parameter":
                continue
            if kind == "Constant":
                consts[(key, 0)] = torch.from_numpy(np.array(o.get_data(), copy=True))
            elif kind == "Result":
                self.outputs.append(ins[0])
            elif all(k in consts for k in ins):  # constant folding (int8 weights → float, shapes)
                with torch.no_grad():
                    res = OPS[kind]([consts[k] for k in ins], o.get_attributes())
                for j, r in enumerate(res if isinstance(res, tuple) else (res,)):
                    consts[(key, j)] = r
            else:
                self.nodes.append((kind, ins, key, o.get_attributes()))
        used = {k for _, ins, _, _ in self.nodes for k in ins} | set(self.outputs)
        self._const_names: dict[tuple[str, int], str] = {}
        for n, (k, t) in enumerate((k, t) for k, t in consts.items() if k in used):
            self.register_buffer(f"c{n}", t, persistent=False)
            self._const_names[k] = f"c{n}"

    def forward(self, *xs: Tensor) -> Tensor | tuple[Tensor, ...]:
        """The model's output(s) for ``xs`` (in input order), evaluated node by node in PyTorch."""
        if len(xs) != len(self.inputs):
            raise InputError(f"{self.name}: {len(self.inputs)} input(s) {self.inputs}, got {len(xs)}")
        env: dict[tuple[str, int], Any] = {k: getattr(self, a) for k, a in self._const_names.items()}
        env.update({(name, 0): x for name, x in zip(self.inputs, xs, strict=True)})
        for kind, ins, key, attrs in self.nodes:
            res = OPS[kind]([env[k] for k in ins], attrs)
            for j, r in enumerate(res if isinstance(res, tuple) else (res,)):
                env[(key, j)] = r
        got = [env[k] for k in self.outputs]
        return got[0] if len(got) == 1 else tuple(got)
