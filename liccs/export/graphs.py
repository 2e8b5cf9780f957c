"""What gets exported: each graph of a codec (its stages, ``reconstruct``), of a classifier, and of LICCS.

A :class:`GraphSpec` is a torch module in inference form plus the names, dtypes and dynamic axes of its
tensors, and a ``source_hash`` over its weights and the code that defines it (the artifact cache key).
Stage I/O (paper notation; every tensor is NCHW float32):

=======================  ================================  ======================================
graph                    input                             output
=======================  ================================  ======================================
``g_a``                  ``x`` padded image (/1)           ``y`` (/16)
``h_a``                  ``y`` (/16; ``|y|`` for bmshj)    ``z`` (/64)
``h_s``                  ``z_hat`` (/64)                   ``params`` (/16)
``g_s``                  ``y_hat`` (/16)                   ``x_hat`` (/1, not clamped)
``context_prediction``   ``y_hat`` (/16)                   ``ctx_params`` (/16)
``context_step``         ``y_window`` 5×5 of ŷ             ``ctx_params`` 1×1 (the sequential loop's)
``entropy_parameters``   ``params_ctx`` (/16)              ``gaussian_params`` (/16)
``reconstruct``          ``x`` image, any size             ``x_hat`` (hard rounding, clamped)
``liccs``                ``x`` at the classifier's crop    ``logits``
``classifier``           ``x`` at the classifier's crop    ``logits``
=======================  ================================  ======================================

Autoregressive models (mbt2018, cheng2020) have no ``reconstruct``/``liccs`` graph: their deployed decoder
is a sequential loop over latent positions around ``context_prediction`` and ``entropy_parameters``
(:mod:`liccs.engines.codec` runs it), which is not one graph.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liccs.core import pad_to_multiple
from liccs.core.errors import InputError
from liccs.core.provenance import source_hash
from liccs.export.inference import inference_form
from liccs.export.phases import (
    TRANSPOSED_FORMS,
    FourPhaseConvTranspose2d,
    SubPixelConvTranspose2d,
    split_transposed,
    transposed_count,
)
from liccs.families import AUTOREGRESSIVE, family_of
from liccs.pipeline import PAD_MULTIPLE, codec_forward

#: family name → the stages exported for it (each family's ``stages``; kept for callers that key by name)
_IO = {  # stage: (input name, input stride, output name)
    "g_a": ("x", 1, "y"),
    "h_a": ("y", 16, "z"),
    "h_s": ("z_hat", 64, "params"),
    "g_s": ("y_hat", 16, "x_hat"),
    "context_prediction": ("y_hat", 16, "ctx_params"),
    "entropy_parameters": ("params_ctx", 16, "gaussian_params"),
    "context_step": ("y_window", 16, "ctx_params"),
}
#: The context model's window (CompressAI's autoregressive models use a 5×5 masked convolution).
CONTEXT_WINDOW = AUTOREGRESSIVE.context_window


@dataclass(frozen=True)
class TensorSpec:
    """One graph input: name, channels, spatial stride relative to the padded image, value range."""

    name: str
    channels: int
    stride: int = 1
    dtype: str = "float32"
    value_range: tuple[float, float] | None = None
    fixed_hw: tuple[int, int] | None = None  # spatial size when it is not dynamic

    def shape(self) -> tuple[int | None, ...]:
        """(batch, C, H, W) with None where dynamic."""
        h, w = self.fixed_hw or (None, None)
        return (None, self.channels, h, w)


@dataclass
class GraphSpec:
    """A module to export and what its tensors are. ``model`` is e.g. ``bmshj2018-hyperprior@q3``."""

    model: str
    name: str
    module: nn.Module
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    source_hash: str = ""
    notes: list[str] = field(default_factory=list)
    reference: nn.Module | None = None  # the same computation on the original PyTorch model (for parity)

    @property
    def label(self) -> str:
        """``<model>.<name>``, the graph's name in the cache and in reports."""
        return f"{self.model}.{self.name}"

    def example(self, image_hw: tuple[int, int] = (75, 117), batch: int = 2) -> dict[str, Tensor]:
        """Random inputs for an image of ``image_hw`` (padded to 64 for the stages); sides of at least 2."""
        g = torch.Generator().manual_seed(0)
        out = {}
        for t in self.inputs:
            if t.fixed_hw:
                hw = t.fixed_hw
            elif t.stride == 1 and self.name in ("reconstruct",):
                hw = image_hw
            else:
                ph, pw = (-(-s // PAD_MULTIPLE) * PAD_MULTIPLE for s in image_hw)
                hw = (max(2, ph // t.stride), max(2, pw // t.stride))
            out[t.name] = torch.rand(batch, t.channels, *hw, generator=g)
        return out


_CODE_FILES = ("liccs/export/inference.py", "liccs/export/phases.py", "liccs/export/graphs.py", "liccs/pipeline.py",
               "liccs/families.py")


def code_hash() -> str:
    """sha256 over the code that defines the exported graphs, each file's syntax tree without docstrings
    (:func:`liccs.core.provenance.source_hash`): a change of what it does rebuilds the artifacts, a change of its
    documentation or comments does not."""
    root = Path(sys.modules["liccs"].__file__).resolve().parent.parent
    h = hashlib.sha256()
    for rel in _CODE_FILES:
        h.update(source_hash(root / rel).encode())
    return h.hexdigest()


def module_hash(module: nn.Module, *extra: str) -> str:
    """sha256 over a module's class, parameters and buffers (names, dtypes, shapes, bytes) and ``extra``."""
    h = hashlib.sha256(type(module).__qualname__.encode())
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()


class _Stage(nn.Module):
    """One submodule as a graph with a named input (exporters name inputs after forward's arguments)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class ContextStep(nn.Module):
    """The masked context convolution at one position: a 5×5 window of ŷ → its centre's context (no padding).

    The sequential loop needs only the centre; the padded ``context_prediction`` graph would compute the
    whole 5×5 output, 25 times the work, at every latent position.
    """

    def __init__(self, cp: nn.Conv2d) -> None:
        super().__init__()
        mask = getattr(cp, "mask", None)
        weight = cp.weight * mask if mask is not None else cp.weight
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", cp.bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        """The context of the centre of each 5×5 window of ŷ (the masked convolution, no padding)."""
        return F.conv2d(x, self.weight, self.bias)


class Reconstruct(nn.Module):
    """image (any size) → pad to 64 → codec with hard rounding (no entropy coding) → clamp → crop."""

    def __init__(self, codec: nn.Module) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, x: Tensor) -> Tensor:
        """The codec's hard-rounded reconstruction of ``x``, padded to 64 then cropped back, clamped to [0, 1]."""
        h, w = x.shape[-2], x.shape[-1]
        xp = F.pad(x, (0, (-w) % PAD_MULTIPLE, 0, (-h) % PAD_MULTIPLE), mode="replicate")
        x_hat = codec_forward(self.codec, xp, "hard").x_hat.clamp(0, 1)
        return x_hat[..., :h, :w]


class LiccsGraph(nn.Module):
    """image at the classifier's crop → reconstruct → classifier (normalization inside) → logits."""

    def __init__(self, codec: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.reconstruct = Reconstruct(codec)
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        """The classifier's logits on the reconstruction of ``x``."""
        return self.classifier(self.reconstruct(x))


def _stage_channels(codec: nn.Module, stage: str) -> int:
    kinds = (nn.Conv2d, nn.ConvTranspose2d, FourPhaseConvTranspose2d, SubPixelConvTranspose2d)
    first = next(m for m in getattr(codec, stage).modules() if isinstance(m, kinds))
    return first.in_channels


def codec_graphs(codec: nn.Module, with_reconstruct: bool = True,
                 transposed: str = "native") -> tuple[dict[str, GraphSpec], dict[str, str]]:
    """(graphs, not exportable: graph → reason) of a CompressAI model (``liccs_name`` names it).

    ``transposed="four-phase"`` exports every stride-2 transposed convolution as four ordinary ones,
    ``"sub-pixel-output"`` the narrow ones (``g_s``'s output layer) as one sub-pixel convolution
    (:mod:`liccs.export.phases`); the form is part of each graph's source hash, hence of its artifact key.
    """
    if transposed not in TRANSPOSED_FORMS:
        raise InputError(f"transposed form {transposed!r} is not one of {TRANSPOSED_FORMS}")
    family = family_of(codec)
    model = getattr(codec, "liccs_name", type(codec).__name__)
    inf = inference_form(codec)
    changed: dict[str, int] = {}  # graph → transposed convolutions the form rewrote in it
    if transposed != "native":
        changed = {s: transposed_count(getattr(inf, s), transposed) for s in family.stages if hasattr(inf, s)}
        inf, changed["reconstruct"] = split_transposed(inf, transposed)

    code = code_hash()

    def key(graph: str) -> str:  # the form is in the key of the graphs it changed; the others keep the native key
        return code + (f"|transposed={transposed}" if changed.get(graph) else "")
    graphs: dict[str, GraphSpec] = {}
    for stage in family.stages:
        in_name, stride, out_name = _IO[stage]
        if stage == "context_step":
            body, ref = ContextStep(inf.context_prediction), ContextStep(codec.context_prediction)
            spec = TensorSpec(in_name, inf.context_prediction.in_channels, stride,
                              fixed_hw=(CONTEXT_WINDOW, CONTEXT_WINDOW))
        else:
            body, ref = getattr(inf, stage), getattr(codec, stage)
            rng = (0.0, 1.0) if stage == "g_a" else None
            spec = TensorSpec(in_name, _stage_channels(inf, stage), stride, value_range=rng)
        graphs[stage] = GraphSpec(model, stage, _Stage(body).eval(), (spec,), (out_name,),
                                  module_hash(body, stage, key(stage)),
                                  notes=_form_notes(changed.get(stage, 0), transposed), reference=_Stage(ref).eval())
    skipped: dict[str, str] = {}
    if family.single_graph_refusal:
        skipped["reconstruct"] = family.single_graph_refusal
    elif with_reconstruct:
        graphs["reconstruct"] = GraphSpec(model, "reconstruct", Reconstruct(inf).eval(),
                                          (TensorSpec("x", 3, value_range=(0.0, 1.0)),), ("x_hat",),
                                          module_hash(inf, "reconstruct", key("reconstruct")),
                                          notes=_form_notes(changed.get("reconstruct", 0), transposed),
                                          reference=Reconstruct(codec).eval())
    return graphs, skipped


def _form_notes(n: int, form: str) -> list[str]:
    return [f"{n} transposed convolution(s) exported as ordinary convolutions ({form})"] if n else []


#: The name of the tensor between a split stage's two graphs (:func:`split_tail`).
SPLIT_TENSOR = "h"


@torch.no_grad()
def split_tail(graph: GraphSpec) -> tuple[GraphSpec, GraphSpec]:
    """(every layer but the last, the last layer) of a stage that is a chain of layers: two graphs whose
    composition is ``graph``, so that its output layer may run on another engine than the rest.

    Measured (``benchmarks/layer_budget.py``): OpenVINO runs ``g_s``'s big transposed convolutions at 0.85-0.95 of
    this CPU's ceiling and its 128 → 3 output layer at 0.20; ONNX Runtime runs that layer twice as fast.
    """
    body, ref = (getattr(m, "body", None) for m in (graph.module, graph.reference))
    if not isinstance(body, nn.Sequential) or len(body) < 2 or len(graph.inputs) != 1:
        raise InputError(f"{graph.label}: only a stage that is a chain of layers (nn.Sequential, one input) splits "
                         "off its last layer")
    (t,) = graph.inputs
    probe = max(8, PAD_MULTIPLE // t.stride)  # an input the head's scale divides: the tail's input stride
    mid = body[:-1](torch.zeros(1, t.channels, probe, probe))
    spec = TensorSpec(SPLIT_TENSOR, int(mid.shape[1]), max(1, t.stride * probe // int(mid.shape[-1])))
    parts = []
    seq = isinstance(ref, nn.Sequential)
    for name, ins, outs, mod, r in (("head", graph.inputs, (SPLIT_TENSOR,), body[:-1], ref[:-1] if seq else None),
                                    ("tail", (spec,), graph.outputs, body[-1:], ref[-1:] if seq else None)):
        parts.append(GraphSpec(graph.model, f"{graph.name}.{name}", _Stage(mod).eval(), ins, outs,
                               module_hash(mod, graph.source_hash, name), notes=[*graph.notes, f"split: {name}"],
                               reference=_Stage(r).eval() if r is not None else None))
    return parts[0], parts[1]


def classifier_graph(classifier: nn.Module) -> GraphSpec:
    """The classifier alone, at its crop size (dynamic batch); normalization is inside the graph."""
    name = getattr(classifier, "liccs_name", type(classifier).__name__)
    hw = _crop_hw(classifier)
    return GraphSpec(name, "classifier", classifier.eval(),
                     (TensorSpec("x", 3, value_range=(0.0, 1.0), fixed_hw=hw),), ("logits",),
                     module_hash(classifier, "classifier", code_hash()), notes=list(_CROP_NOTE), reference=classifier)


_CROP_NOTE = ["spatial size fixed at the classifier's crop; resize + centre crop run on the host "
              "(liccs.data.prepare): a shape-dependent resize does not export to one dynamic graph"]


def _crop_hw(classifier: nn.Module) -> tuple[int, int]:
    crop = getattr(getattr(getattr(classifier, "preprocess", None), "cfg", None), "crop", None)
    if crop is None:
        raise InputError(f"classifier {type(classifier).__name__} has no preprocess.cfg.crop: "
                         "its input size is unknown")
    return (int(crop), int(crop))


def liccs_graph(codec: nn.Module, classifier: nn.Module) -> GraphSpec | str:
    """codec → classifier as one graph, or the reason it cannot be one (autoregressive codecs)."""
    if why := family_of(codec).single_graph_refusal:
        return why
    inf = inference_form(codec)
    model = f"{getattr(codec, 'liccs_name', type(codec).__name__)}+{getattr(classifier, 'liccs_name', 'classifier')}"
    module = LiccsGraph(inf, classifier).eval()
    return GraphSpec(model, "liccs", module,
                     (TensorSpec("x", 3, value_range=(0.0, 1.0), fixed_hw=_crop_hw(classifier)),), ("logits",),
                     module_hash(module, "liccs", code_hash()), notes=list(_CROP_NOTE),
                     reference=LiccsGraph(codec, classifier).eval())


@torch.no_grad()
def stage_feeds(codec: nn.Module, images: Tensor) -> dict[str, dict[str, Tensor]]:
    """The input of every graph when ``codec`` encodes ``images`` [B, 3, H, W] in [0, 1], as its coder does.

    ``ŷ`` follows CompressAI's entropy coder: ``Q(y − m) + m`` (factorized, m = medians), ``Q(y)`` (scale
    hyperprior), ``Q(y − μ) + μ`` (mean-scale); for autoregressive models the context and entropy-parameter
    inputs are those of CompressAI's forward (``ŷ = Q(y)``), which have the statistics of the real ones.
    """
    xp, _ = pad_to_multiple(images, PAD_MULTIPLE)
    return {"g_a": {"x": xp}, "reconstruct": {"x": images}, **family_of(codec).stage_feeds(codec, xp)}
