"""What an untrusted ``.liccs`` header may ask of a decoder: checked before any network or entropy decoder runs.

A container's header says how large the image is and how large its latents are; a decoder that believed it
would let a 1.6 KB file ask ONNX Runtime for gigabytes (a decompression bomb, as Pillow's ``MAX_IMAGE_PIXELS``
guards against). :func:`check_header` refuses, with a one-line :class:`BitstreamError` naming the file and the
field, a header whose

- latent shape is not what this codec's padding and downsampling give for the image size (:class:`Geometry`,
  measured once per codec on a 64×64 probe),
- number of strings, or number of entropy-table checks in a frame, is not what the codec's family writes,
- image is larger than the pixel budget (:data:`DEFAULT_MAX_PIXELS`, ``--max-pixels``, ``$LICCS_MAX_PIXELS``),
- estimated peak decode memory (:func:`decode_peak_bytes`) is above the memory this machine has available.

The strings' capacity (enough bytes for their symbols) is checked in :mod:`liccs.engines.coder`.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from liccs.core.errors import InputError
from liccs.engines.autoregressive import single_thread
from liccs.engines.bitstream import BitstreamError, Container, unframe
from liccs.families import family_of
from liccs.pipeline import PAD_MULTIPLE

#: Pillow refuses images above ~89 megapixels by default; a liccs decode needs far more memory per pixel (the
#: synthesis transform's activations), so 64 megapixels (8192 × 8192) is the default here.
DEFAULT_MAX_PIXELS = 64 * 2**20
MAX_PIXELS_ENV = "LICCS_MAX_PIXELS"
#: Bytes per coded symbol a decode holds at its peak, counted: the table indexes (int32 tensor 4, a Python list 8,
#: the coder's copy 4), the decoded values (the coder's vector 4, a Python list 8 + 32 per int object outside
#: CPython's small-int cache, numpy 4, float tensors 8) and the stream's zero padding 4
#: (:func:`liccs.engines.coder.decode_symbols`): 76, with slack.
SYMBOL_BYTES = 96
#: Slack over the widest layer (:func:`_layer_floats`) for what a runner's arena keeps beside it: a decode of a
#: 1024×1536 image with mini-bmshj2018-hyperprior@q4 on ort-cpu grew the peak RSS by 643 MiB, against 628 MiB
#: estimated without it.
ACTIVATION_FACTOR = 1.25

_GEOMETRY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Geometry:
    """A codec's latent strides and the float activations per pixel of its synthesis networks."""

    y_stride: int
    y_channels: int
    z_stride: int | None
    z_channels: int | None
    #: the most floats a layer of ``g_s`` holds per padded image pixel, and of ``h_s`` per ``z`` position
    g_s_floats: float
    h_s_floats: float

    def latent_shape(self, size: tuple[int, int]) -> tuple[int, int]:
        """The latent shape a container holds for an image of ``size`` (``z``'s with a hyperprior, else ``y``'s)."""
        stride = self.z_stride or self.y_stride
        return tuple(-(-s // PAD_MULTIPLE) * PAD_MULTIPLE // stride for s in size)  # type: ignore[return-value]

    def symbols(self, size: tuple[int, int]) -> int:
        """How many symbols the strings of an image of ``size`` code (``y`` and ``z`` together)."""
        hp, wp = (-(-s // PAD_MULTIPLE) * PAD_MULTIPLE for s in size)
        n = self.y_channels * (hp // self.y_stride) * (wp // self.y_stride)
        return n + (self.z_channels * (hp // self.z_stride) * (wp // self.z_stride) if self.z_stride else 0)


def _layer_floats(m: nn.Module, x: torch.Tensor, out: torch.Tensor) -> int:
    """Floats a layer holds while it runs: input, output, and a convolution's unfolded-patch buffer (im2col for a
    convolution, the columns col2im folds for a transposed one: the largest buffer of a synthesis transform)."""
    work = 0
    if isinstance(m, nn.ConvTranspose2d):
        work = m.out_channels * m.kernel_size[0] * m.kernel_size[1] * x.shape[-2] * x.shape[-1]
    elif isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1):
        work = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1] * out.shape[-2] * out.shape[-1]
    return x.numel() + out.numel() + work


def _widest(module: nn.Module, x: torch.Tensor) -> float:
    """The most floats any leaf module of ``module`` holds at once on ``x``, per element of ``x``'s plane."""
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda m, i, out: sizes.append(_layer_floats(m, i[0], out)))
             for m in module.modules() if not list(m.children())]
    try:
        module(x)
    finally:
        for h in hooks:
            h.remove()
    return max(sizes) / (x.shape[-2] * x.shape[-1])


@torch.no_grad()
@single_thread()
def geometry(codec: nn.Module) -> Geometry:
    """The :class:`Geometry` of ``codec``, measured once on a ``PAD_MULTIPLE``-sided probe image (one thread: tens
    of milliseconds, where two threads on a busy CPU took seconds)."""
    hit = _GEOMETRY.get(codec)
    if hit is not None:
        return hit
    family = family_of(codec)
    p = next(codec.parameters())
    x = torch.zeros(1, 3, PAD_MULTIPLE, PAD_MULTIPLE, device=p.device, dtype=p.dtype)
    y = codec.g_a(x)
    y_stride = PAD_MULTIPLE // y.shape[-1]
    g_s = _widest(codec.g_s, y) * (y.shape[-2] * y.shape[-1]) / PAD_MULTIPLE**2
    z_stride = z_channels = None
    h_s = 0.0
    if (z := family.hyper_latent(codec, y)) is not None:
        z_stride, z_channels = PAD_MULTIPLE // z.shape[-1], z.shape[1]
        h_s = _widest(codec.h_s, z)
    out = Geometry(y_stride, y.shape[1], z_stride, z_channels, g_s, h_s)
    _GEOMETRY[codec] = out
    return out


def pixel_budget(flag: int | None) -> int:
    """The pixel budget: ``flag`` (``--max-pixels``) when given, else ``$LICCS_MAX_PIXELS``, else
    :data:`DEFAULT_MAX_PIXELS`."""
    if flag is not None:
        value, origin = flag, "--max-pixels"
    elif os.environ.get(MAX_PIXELS_ENV, "").strip():
        raw = os.environ[MAX_PIXELS_ENV].strip()
        try:
            value, origin = int(raw.replace("_", "")), MAX_PIXELS_ENV
        except ValueError:
            raise InputError(f"{MAX_PIXELS_ENV}={raw!r} is not a whole number of pixels") from None
    else:
        return DEFAULT_MAX_PIXELS
    if value < 1:
        raise InputError(f"{origin} must be a positive number of pixels, got {value}")
    return value


def available_memory() -> int | None:
    """Bytes this process may still allocate: the kernel's MemAvailable, lowered by a cgroup v2 limit (None when
    neither can be read)."""
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def decode_peak_bytes(geom: Geometry, size: tuple[int, int]) -> int:
    """An estimate (from the header alone) of the peak memory a decode of an image of ``size`` allocates: the
    entropy decode's per-symbol buffers, the widest layer of the synthesis networks (input, output, patch
    buffer) and the decoded image (float and 8-bit)."""
    hp, wp = (-(-s // PAD_MULTIPLE) * PAD_MULTIPLE for s in size)
    z_pos = (hp // geom.z_stride) * (wp // geom.z_stride) if geom.z_stride else 0
    nets = 4 * ACTIVATION_FACTOR * max(geom.g_s_floats * hp * wp, geom.h_s_floats * z_pos)
    return int(SYMBOL_BYTES * geom.symbols(size) + nets + 3 * 5 * hp * wp)


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**27 else f"{n / 2**20:.1f} MiB"


def check_header(c: Container, codec: nn.Module, where: str, pixels: int, coder: Any) -> int:
    """Raise :class:`BitstreamError` naming ``where`` and the field unless ``c``'s header is one ``codec`` wrote
    for an image within ``pixels`` (the entropy-table checks each string's frame carries: ``coder.expected_checks``,
    :mod:`liccs.engines.coders`); returns the estimated peak decode memory (bytes)."""
    h, w = c.size
    if h < 1 or w < 1:
        raise BitstreamError(f"{where}: header field 'image size' is {h}×{w}; an image has at least one pixel")
    geom, family = geometry(codec), family_of(codec)
    want = geom.latent_shape((h, w))
    if tuple(c.shape) != want:
        name = "z" if geom.z_stride else "y"
        raise BitstreamError(f"{where}: header field 'latent shape' is {c.shape[0]}×{c.shape[1]}, but this codec's "
                             f"{name} for a {h}×{w} image is {want[0]}×{want[1]} (padding to multiples of "
                             f"{PAD_MULTIPLE}, stride {geom.z_stride or geom.y_stride})")
    latents = family.latents
    if len(c.strings) != len(latents):
        raise BitstreamError(f"{where}: header field 'n strings' is {len(c.strings)}; a {family.name} codec writes "
                             f"{len(latents)} ({', '.join(latents)})")
    y_rows = -(-h // PAD_MULTIPLE) * PAD_MULTIPLE // geom.y_stride
    for i, (lat, s) in enumerate(zip(latents, c.strings)):
        n = len(unframe(s, f"{where}: string {i}")[1])
        if n != (want_checks := coder.expected_checks(lat, y_rows)):
            raise BitstreamError(f"{where}: string {i} (latent {lat}): frame field 'n checks' is {n}; this codec "
                                 f"writes {want_checks}")
    peak = decode_peak_bytes(geom, (h, w))
    if h * w > pixels:
        raise BitstreamError(
            f"{where}: header field 'image size' is {h}×{w} = {h * w:,} pixels, above the decoder's limit of "
            f"{pixels:,} (estimated peak memory of this decode: {_gib(peak)}); to decode it knowingly, raise the "
            f"limit with --max-pixels N or {MAX_PIXELS_ENV}=N")
    free = available_memory()
    if free is not None and peak > free:
        raise BitstreamError(f"{where}: decoding this {h}×{w} image needs about {_gib(peak)} of memory (estimated "
                             f"from its header); this machine has {_gib(free)} available")
    return peak
