"""A differentiable PyTorch replica of a deployed ONNX graph (int8 QDQ, fp16 or fp32): :class:`OnnxReplica`.

The replica executes the very ONNX file the engine runs, node by node, with torch operations: the scales and zero
points of every ``QuantizeLinear``/``DequantizeLinear`` are read from the file's initializers, so the replica
computes what the QDQ graph defines (fake quantization). Rounding (``QuantizeLinear``, ``Round``) passes the
gradient straight through (STE, Bengio et al., 2013), and saturation passes none, as in quantization-aware
training. Nodes whose inputs are all constant (the dequantized weights, for instance) are folded once.

This is what an attacker who knows the deployment differentiates (engine-aware attacks, after DIVA: Hao et al.,
"A Tale of Two Models: Constructing Evasive Attacks on Edge Models", MLSys 2022). How closely it follows the
real engine is measured, not assumed (:func:`liccs.checks.replica.replica_parity`): ONNX Runtime fuses
``DQ → Conv → Q`` into integer kernels that accumulate exactly and requantize once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import Tensor, nn

from liccs.core.errors import InputError

Op = Callable[[list[Any], dict[str, Any]], Any]

_QRANGE = {torch.uint8: (0, 255), torch.int8: (-128, 127), torch.int32: (-(2**31), 2**31 - 1)}


def round_ste(x: Tensor) -> Tensor:
    """Round half to even (ONNX ``Round``, ``QuantizeLinear``) with the identity as its gradient."""
    return x + (torch.round(x) - x).detach() if x.requires_grad else torch.round(x)


def _per_axis(v: Tensor, x: Tensor, axis: int) -> Tensor:
    """A scale or zero point (scalar or 1-D along ``axis``) shaped to broadcast against ``x``."""
    if v.dim() == 0 or v.numel() == 1:
        return v.reshape(())
    shape = [1] * x.dim()
    shape[axis % x.dim()] = -1
    return v.reshape(shape)


def _quantize(i: list[Any], a: dict[str, Any]) -> Tensor:
    x, scale = i[0], i[1]
    zp = i[2] if len(i) > 2 and i[2] is not None else torch.zeros((), dtype=torch.uint8)
    lo, hi = _QRANGE.get(zp.dtype, (0, 255))
    axis = a.get("axis", 1)
    s, z = _per_axis(scale.float(), x, axis), _per_axis(zp.float(), x, axis)
    return torch.clamp(round_ste(x.float() / s) + z, lo, hi)  # integer values, kept in float for the gradient


def _dequantize(i: list[Any], a: dict[str, Any]) -> Tensor:
    x, scale = i[0], i[1]
    zp = i[2] if len(i) > 2 and i[2] is not None else torch.zeros((), dtype=torch.float32)
    axis = a.get("axis", 1)
    return (x.float() - _per_axis(zp.float(), x, axis)) * _per_axis(scale.float(), x, axis)


def _pads(a: dict[str, Any], nd: int) -> tuple[list[int], list[int]]:
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise InputError(f"auto_pad={a['auto_pad']!r} is not supported by the replica (explicit pads only)")
    p = list(a.get("pads", [0] * 2 * nd))
    return p[:nd], p[nd:]


def _conv(i: list[Any], a: dict[str, Any]) -> Tensor:
    x, w = i[0], i[1]
    b = i[2] if len(i) > 2 else None
    nd = w.dim() - 2
    begin, end = _pads(a, nd)
    if begin != end:  # asymmetric: pad explicitly (F.pad takes the last dimension first)
        x = F.pad(x, [v for d in reversed(range(nd)) for v in (begin[d], end[d])])
        begin = [0] * nd
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    return fn(x, w.to(x.dtype), None if b is None else b.to(x.dtype), a.get("strides", [1] * nd), begin,
              a.get("dilations", [1] * nd), a.get("group", 1))


def _conv_transpose(i: list[Any], a: dict[str, Any]) -> Tensor:
    x, w = i[0], i[1]
    b = i[2] if len(i) > 2 else None
    nd = w.dim() - 2
    if "output_shape" in a:
        raise InputError("ConvTranspose with output_shape is not supported by the replica (give pads)")
    begin, end = _pads(a, nd)
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]
    out_pad = list(a.get("output_padding", [0] * nd))
    y = fn(x, w.to(x.dtype), None if b is None else b.to(x.dtype), a.get("strides", [1] * nd), [0] * nd, out_pad,
           a.get("group", 1), a.get("dilations", [1] * nd))
    index = [slice(None), slice(None)] + [slice(begin[d], y.shape[2 + d] - end[d]) for d in range(nd)]
    return y[tuple(index)]


def _gemm(i: list[Any], a: dict[str, Any]) -> Tensor:
    x, w = i[0], i[1]
    x = x.t() if a.get("transA", 0) else x
    w = w.t() if a.get("transB", 0) else w
    y = a.get("alpha", 1.0) * (x @ w.to(x.dtype))
    return y + a.get("beta", 1.0) * i[2].to(x.dtype) if len(i) > 2 and i[2] is not None else y


def _pool(kind: str) -> Op:
    def run(i: list[Any], a: dict[str, Any]) -> Tensor:
        x = i[0]
        k = list(a["kernel_shape"])
        nd = len(k)
        begin, end = _pads(a, nd)
        strides = a.get("strides", [1] * nd)
        if begin != end:
            value = float("-inf") if kind == "max" else 0.0
            x = F.pad(x, [v for d in reversed(range(nd)) for v in (begin[d], end[d])], value=value)
            begin = [0] * nd
        if kind == "max":
            return F.max_pool2d(x, k, strides, begin, a.get("dilations", [1] * nd), bool(a.get("ceil_mode", 0)))
        return F.avg_pool2d(x, k, strides, begin, bool(a.get("ceil_mode", 0)),
                            bool(a.get("count_include_pad", 0)))
    return run


def _axes(i: list[Any], a: dict[str, Any]) -> list[int] | None:
    if len(i) > 1 and i[1] is not None:
        return [int(v) for v in i[1].reshape(-1)]
    return list(a["axes"]) if "axes" in a else None


def _reduce(fn: Callable[..., Tensor]) -> Op:
    def run(i: list[Any], a: dict[str, Any]) -> Tensor:
        axes = _axes(i, a)
        keep = bool(a.get("keepdims", 1))
        if axes is None or not axes:
            if a.get("noop_with_empty_axes", 0):
                return i[0]
            axes = list(range(i[0].dim()))
        return fn(i[0], dim=axes, keepdim=keep)
    return run


def _slice(i: list[Any], a: dict[str, Any]) -> Tensor:
    x = i[0]
    starts, ends = [int(v) for v in i[1]], [int(v) for v in i[2]]
    axes = [int(v) for v in i[3]] if len(i) > 3 and i[3] is not None else list(range(len(starts)))
    steps = [int(v) for v in i[4]] if len(i) > 4 and i[4] is not None else [1] * len(starts)
    for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
        ax %= x.dim()
        n = x.shape[ax]
        s, e = max(-(2**62), min(2**62, s)), max(-(2**62), min(2**62, e))  # Python slices clamp as ONNX does
        if st > 0:
            x = x[(slice(None),) * ax + (slice(s, e, st),)]
        else:  # torch has no negative steps: gather the indices Python's slice gives
            idx = torch.tensor(list(range(*slice(s, e, st).indices(n))), dtype=torch.long, device=x.device)
            x = x.index_select(ax, idx)
    return x


def _pad(i: list[Any], a: dict[str, Any]) -> Tensor:
    x = i[0]
    pads = [int(v) for v in i[1]]
    value = float(i[2]) if len(i) > 2 and i[2] is not None and i[2].numel() else 0.0
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    nd = x.dim()
    begin, end = pads[:nd], pads[nd:]
    if any(begin[:2]) or any(end[:2]):
        raise InputError("Pad over the batch or channel axis is not supported by the replica")
    flat = [v for d in reversed(range(2, nd)) for v in (begin[d], end[d])]
    if mode == "constant":
        return F.pad(x, flat, value=value)
    return F.pad(x, flat, mode={"reflect": "reflect", "edge": "replicate"}[mode])


def _reshape(i: list[Any], a: dict[str, Any]) -> Tensor:
    shape = [int(v) for v in i[1]]
    if not a.get("allowzero", 0):
        shape = [i[0].shape[k] if v == 0 else v for k, v in enumerate(shape)]
    return i[0].reshape(shape)


def gather(x: Tensor, idx: Tensor, axis: int) -> Tensor:
    """ONNX/OpenVINO ``Gather``: the output's shape is x[:axis] + idx + x[axis + 1:] (a scalar index drops the axis;
    TorchScript exports read one dimension of a ``Shape`` that way); negative indices count from the end."""
    axis %= x.dim()
    out = torch.index_select(x, axis, (idx.long() % x.shape[axis]).reshape(-1))
    return out.reshape([*x.shape[:axis], *idx.shape, *x.shape[axis + 1:]])


def unsqueeze(x: Tensor, axes: Sequence[int]) -> Tensor:
    """``x`` with a new dimension at each of ``axes`` (positions in the output, negative ones from its end)."""
    for ax in sorted(v % (x.dim() + len(axes)) for v in axes):
        x = x.unsqueeze(ax)
    return x


def _constant_of_shape(i: list[Any], a: dict[str, Any]) -> Tensor:
    """ONNX ``ConstantOfShape``: ``value`` (a one-element tensor, already an array here; default float 0) of its
    dtype (TorchScript exports build int64 pads this way)."""
    value = _tensor(np.asarray(a.get("value", np.zeros(1, np.float32))).reshape(-1)[:1])
    return value.reshape(()).expand([int(v) for v in i[0]]).clone()


def _squeeze(i: list[Any], a: dict[str, Any]) -> Tensor:
    axes = _axes(i, a)
    if axes is None:
        return i[0].squeeze()
    return i[0].squeeze(tuple(axes)) if axes else i[0]


def _unsqueeze(i: list[Any], a: dict[str, Any]) -> Tensor:
    return unsqueeze(i[0], _axes(i, a) or [])


def _cast(i: list[Any], a: dict[str, Any]) -> Tensor:
    np_type = onnx.helper.tensor_dtype_to_np_dtype(a["to"])
    return i[0].to(torch.from_numpy(np.zeros(0, dtype=np_type)).dtype)


def _clip(i: list[Any], a: dict[str, Any]) -> Tensor:
    lo = i[1] if len(i) > 1 and i[1] is not None else a.get("min")
    hi = i[2] if len(i) > 2 and i[2] is not None else a.get("max")
    return torch.clamp(i[0], None if lo is None else float(lo), None if hi is None else float(hi))


def _mod(i: list[Any], a: dict[str, Any]) -> Tensor:
    return torch.fmod(i[0], i[1]) if a.get("fmod", 0) else torch.remainder(i[0], i[1])


def _split(i: list[Any], a: dict[str, Any]) -> tuple[Tensor, ...]:
    axis = a.get("axis", 0)
    if len(i) > 1 and i[1] is not None:
        sizes = [int(v) for v in i[1]]
    elif "split" in a:
        sizes = list(a["split"])
    else:
        n = a["num_outputs"]
        sizes = [-(-i[0].shape[axis] // n)] * n
    return torch.split(i[0], sizes, axis)


def _shape(i: list[Any], a: dict[str, Any]) -> Tensor:
    return torch.tensor(i[0].shape[a.get("start", 0):a.get("end", None)], dtype=torch.int64)


OPS: dict[str, Op] = {
    "QuantizeLinear": _quantize, "DequantizeLinear": _dequantize, "Conv": _conv, "ConvTranspose": _conv_transpose,
    "Gemm": _gemm, "MatMul": lambda i, a: i[0] @ i[1].to(i[0].dtype),
    "Add": lambda i, a: i[0] + i[1], "Sub": lambda i, a: i[0] - i[1], "Mul": lambda i, a: i[0] * i[1],
    "Div": lambda i, a: i[0] / i[1] if i[0].is_floating_point() else torch.div(i[0], i[1], rounding_mode="trunc"),
    "Pow": lambda i, a: torch.pow(i[0], i[1]), "Sqrt": lambda i, a: torch.sqrt(i[0]),
    "Reciprocal": lambda i, a: torch.reciprocal(i[0]), "Relu": lambda i, a: F.relu(i[0]),
    "LeakyRelu": lambda i, a: F.leaky_relu(i[0], a.get("alpha", 0.01)), "Sigmoid": lambda i, a: torch.sigmoid(i[0]),
    "Tanh": lambda i, a: torch.tanh(i[0]), "Exp": lambda i, a: torch.exp(i[0]), "Log": lambda i, a: torch.log(i[0]),
    "Abs": lambda i, a: torch.abs(i[0]), "Neg": lambda i, a: -i[0], "Floor": lambda i, a: torch.floor(i[0]),
    "Ceil": lambda i, a: torch.ceil(i[0]), "Round": lambda i, a: round_ste(i[0]), "Clip": _clip,
    "Max": lambda i, a: torch.stack(torch.broadcast_tensors(*i)).amax(0),
    "Min": lambda i, a: torch.stack(torch.broadcast_tensors(*i)).amin(0),
    "MaxPool": _pool("max"), "AveragePool": _pool("avg"),
    "GlobalAveragePool": lambda i, a: i[0].mean(tuple(range(2, i[0].dim())), keepdim=True),
    "GlobalMaxPool": lambda i, a: i[0].amax(tuple(range(2, i[0].dim())), keepdim=True),
    "ReduceMax": _reduce(torch.amax), "ReduceMin": _reduce(torch.amin), "ReduceMean": _reduce(torch.mean),
    "ReduceSum": _reduce(torch.sum), "Reshape": _reshape,
    "Flatten": lambda i, a: i[0].flatten(a.get("axis", 1)).flatten(0, a.get("axis", 1) - 1)
    if a.get("axis", 1) > 0 else i[0].reshape(1, -1),
    "BatchNormalization": lambda i, a: F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0,
                                                     a.get("epsilon", 1e-5)),
    "Squeeze": _squeeze, "Split": _split, "Unsqueeze": _unsqueeze, "Shape": _shape, "Slice": _slice, "Pad": _pad,
    "Mod": _mod,
    "Concat": lambda i, a: torch.cat([t for t in i if t is not None], a["axis"]),
    "Gather": lambda i, a: gather(i[0], i[1], a.get("axis", 0)),
    "Transpose": lambda i, a: i[0].permute(*(a.get("perm") or reversed(range(i[0].dim())))),
    "Identity": lambda i, a: i[0], "Cast": _cast, "Softmax": lambda i, a: torch.softmax(i[0], a.get("axis", -1)),
    "Expand": lambda i, a: i[0] * torch.ones([int(v) for v in i[1]], dtype=i[0].dtype, device=i[0].device),
    "Equal": lambda i, a: i[0] == i[1], "Where": lambda i, a: torch.where(i[0].bool(), i[1], i[2]),
    "ConstantOfShape": _constant_of_shape,
}


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out = {}
    for at in node.attribute:
        v = onnx.helper.get_attribute_value(at)
        out[at.name] = numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else v
    return out


def _tensor(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.array(a, copy=True))


class OnnxReplica(nn.Module):
    """The ONNX graph at ``path`` as a differentiable torch module: ``forward(*inputs)`` in the graph's input order.

    Args:
        path: the ONNX file the engine runs (e.g. the int8 QDQ file of ``ort-cpu-int8``).
        name: a label for errors and tables (default: the file name).

    Raises:
        InputError: naming the op type, node and file, when the graph holds an op the replica does not implement.
    """

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = name or self.path.name
        self.liccs_name = self.name
        model = onnx.load(str(self.path))
        g = model.graph
        unknown = sorted({n.op_type for n in g.node if n.op_type not in OPS and n.op_type != "Constant"})
        if unknown or any(n.domain not in ("", "ai.onnx") for n in g.node):
            raise InputError(f"{self.path}: the replica cannot execute op(s) {unknown or 'of custom domains'}; "
                             f"supported: {', '.join(sorted(OPS))}")
        init = {t.name for t in g.initializer}
        self.inputs = [i.name for i in g.input if i.name not in init]
        self.outputs = [o.name for o in g.output]
        consts: dict[str, Tensor] = {t.name: _tensor(numpy_helper.to_array(t)) for t in g.initializer}
        self.nodes: list[tuple[str, list[str], list[str], dict[str, Any]]] = []
        for n in g.node:
            attrs = _attrs(n)
            if n.op_type == "Constant":
                consts[n.output[0]] = _tensor(np.asarray(attrs.get("value", attrs.get("value_float", 0.0))))
                continue
            if all(not x or x in consts for x in n.input):  # constant folding (dequantized weights, shapes)
                args = [consts[x] if x else None for x in n.input]
                with torch.no_grad():
                    res = OPS[n.op_type](args, attrs)
                for name, r in zip(n.output, res if isinstance(res, tuple) else (res,), strict=False):
                    consts[name] = r
                continue
            self.nodes.append((n.op_type, list(n.input), list(n.output), attrs))
        used = {x for _, ins, _, _ in self.nodes for x in ins} | set(self.outputs)
        self._const_names: dict[str, str] = {}
        for k, (name, t) in enumerate((n, t) for n, t in consts.items() if n in used):
            attr = f"c{k}"
            self.register_buffer(attr, t, persistent=False)
            self._const_names[name] = attr

    def forward(self, *xs: Tensor) -> Tensor | tuple[Tensor, ...]:
        """The graph's output(s) for ``xs`` (in input order), evaluated node by node in PyTorch."""
        if len(xs) != len(self.inputs):
            raise InputError(f"{self.name}: {len(self.inputs)} input(s) {self.inputs}, got {len(xs)}")
        env: dict[str, Any] = {n: getattr(self, a) for n, a in self._const_names.items()}
        env.update(zip(self.inputs, xs, strict=True))
        for op, ins, outs, attrs in self.nodes:
            res = OPS[op]([env[x] if x else None for x in ins], attrs)
            for name, r in zip(outs, res if isinstance(res, tuple) else (res,), strict=False):
                env[name] = r
        got = [env[o] for o in self.outputs]
        return got[0] if len(got) == 1 else tuple(got)


def output_step(path: str | Path) -> float | None:
    """The quantization step of a QDQ graph's output (the scale of the last ``DequantizeLinear`` feeding it), or
    None when its output is not dequantized."""
    g = onnx.load(str(path), load_external_data=False).graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    names: Sequence[str] = [g.output[0].name]
    for _ in range(4):  # through a Reshape/Identity/Flatten at the end of the graph
        node = producer.get(names[0])
        if node is None:
            return None
        if node.op_type == "DequantizeLinear" and node.input[1] in init:
            return float(np.max(init[node.input[1]]))
        names = node.input
    return None
