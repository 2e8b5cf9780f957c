"""The deployed codec: stage runners on an engine + CompressAI's entropy coder on the CPU → real bitstreams.

``compress(images) → {"strings", "shape", "size"}`` and ``decompress(strings, shape) → {"x_hat"}`` follow
CompressAI's contract; every string is framed (:mod:`liccs.engines.bitstream`: length, crc32, checksums of
the entropy tables), so a damaged string or a decoder that picks other tables than the encoder raises
:class:`BitstreamError` instead of crashing or returning a wrong image. ``encode``/``decode`` give one
self-describing container (``bytes``) per image; ``bpp`` comes from their real length.

Works for every family: factorized, scale hyperprior, mean-scale, and autoregressive (CompressAI's
sequential loop around the ``context_prediction``/``entropy_parameters`` runners, :mod:`.autoregressive`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from liccs.core import check_images, crop_to, pad_to_multiple
from liccs.core.errors import InputError, RunnerInactive
from liccs.engines.address import EngineAddress, parse_split
from liccs.engines.base import ENGINES, Runner, get_engine
from liccs.engines.bitstream import BitstreamError, Container, unframe
from liccs.engines.coders import coder_for
from liccs.engines.factory import runner_for
from liccs.engines.int8_fit import fit_int8
from liccs.engines.limits import check_header, geometry, pixel_budget
from liccs.export.graphs import codec_graphs, module_hash, stage_feeds
from liccs.families import family_of, mse_lambda
from liccs.pipeline import PAD_MULTIPLE

MISMATCH = ("raise", "decode")
LOOP_STAGES = ("context_step", "entropy_parameters")
#: the stages that choose the entropy tables (and ``h_a``, the hyper path's other half): an int8 engine's deployed
#: codec runs them on its fp32 twin, so that every decoder picks the tables its encoder picked
TABLE_STAGES = ("h_a", "h_s", "context_step", "entropy_parameters")


def engine_forms(per_stage: Mapping[str, str], stages: Sequence[str]) -> dict[str, str]:
    """Each stage's transposed-convolution form when none is asked for: its engine's (``EngineSpec.transposed``;
    a split stage's head engine's); ``per_stage`` maps stages (and ``"default"``) to engines."""
    out = {}
    for s in stages:
        head = EngineAddress.parse(per_stage.get(s, per_stage.get("default", "torch"))).head
        out[s] = ENGINES.get(head).transposed
    return out


class DeployedCodec:
    """A CompressAI model whose networks run on ``runners`` (stage name → Runner) and whose entropy coder
    runs on the CPU with ``codec``'s tables. Build one with :meth:`on_engine`.

    The codec owns its runners' lifecycle: :meth:`activate` activates every stage runner, :meth:`close` (or
    :meth:`deactivate`) releases their sessions and compiled models, and ``with codec:`` does both. Coding with
    an inactive codec raises :class:`~liccs.core.errors.RunnerInactive` naming the stage's runner."""

    def __init__(self, codec: nn.Module, runners: Mapping[str, Runner], engine: str = "custom") -> None:
        self.codec, self.family, self.engine = codec, family_of(codec), engine
        self.coder = coder_for(self.family)
        missing = set(self.family.stages) - set(runners) - {"context_prediction"}
        if missing:
            raise InputError(f"deployed {self.family.name} codec needs runners for {sorted(missing)}")
        self.runners = dict(runners)
        self.name = getattr(codec, "liccs_name", type(codec).__name__)
        self.int8_plan: dict[str, Any] | None = None
        self.transposed: dict[str, str] = {}  # stage → how its transposed convolutions were exported
        self.repaired = 0  # decoded images whose scale indexes were repaired by the checksum (repair_indexes)
        self.fingerprint = bytes.fromhex(module_hash(codec)[:16])
        self.geometry = geometry(codec)  # what a header may ask of this decoder (liccs.engines.limits), probed now

    # --- lifecycle ---------------------------------------------------------------------------------
    @property
    def is_active(self) -> bool:
        """Whether every stage runner is active."""
        return all(r.is_active for r in self.runners.values())

    def activate(self) -> None:
        """Activate every stage runner (a no-op for those already active); none stays active if one fails."""
        try:
            for r in self.runners.values():
                r.activate()
        except BaseException:
            self.deactivate()
            raise

    def deactivate(self) -> None:
        """Deactivate every stage runner, releasing its session or compiled model; a no-op when inactive."""
        for r in self.runners.values():
            r.deactivate()

    def _require_active(self) -> None:
        idle = [s for s, r in self.runners.items() if not r.is_active]
        if idle:
            raise RunnerInactive(f"deployed codec {self.name} on {self.engine}: the runners of stage(s) {idle} are not "
                                 f"active; code inside `with codec:` or after codec.activate()")

    def close(self) -> None:
        """Release the stage runners (:meth:`deactivate`)."""
        self.deactivate()

    def __enter__(self) -> DeployedCodec:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    @classmethod
    def on_engine(cls, codec: nn.Module, engine: str | Mapping[str, str], cache: Any = None, *,
                  exporter: str = "auto", calibration_images: Tensor | None = None,
                  hyper_fp32: bool = True, int8_tolerance: float | None = 0.02, int8_lambda: float | None = None,
                  transposed: str | Mapping[str, str] | None = None) -> DeployedCodec:
        """Every stage of ``codec`` on ``engine`` (int8 engines calibrate on ``calibration_images``).

        ``engine`` may map stages to engines (``{"g_a": "ort-cpu", "g_s": "ov-cpu"}``; a stage it leaves out
        runs on its ``"default"`` entry, else ``torch``): a codec whose stages run where each is fastest.
        ``"A>B"`` runs a stage's output layer on B and the rest on A (:mod:`liccs.engines.chain`).
        A reduced-precision engine (int8, bf16) runs the transforms (``g_a``, ``g_s``) in its precision and
        :data:`TABLE_STAGES` on its fp32 twin (``ort-cpu-int8`` → ``ort-cpu``, ``ov-cpu-bf16`` → ``ov-cpu``: the
        engine's ``fp32_twin``): reduced-precision hyper networks choose other entropy tables than an fp32 decoder,
        so their streams decoded nowhere else. ``hyper_fp32=False`` keeps every stage in the engine's precision.
        With calibration images, an int8 engine's each layer of ``g_a`` and ``g_s`` is measured alone in int8,
        then layers go to int8 in order of rate-distortion cost per multiply-add while the real bitstreams of those
        images cost at most ``int8_tolerance`` of the fp32 rate more (``J = bpp + λ·255²·MSE``, λ: ``int8_lambda``
        or CompressAI's for the codec's quality; :func:`~liccs.engines.int8_fit.fit_int8`, the plan in
        ``int8_plan``); ``None`` quantizes every layer. ``transposed`` (one form, or stage → form) exports
        transposed convolutions natively, ``"four-phase"`` or ``"sub-pixel-output"`` (:mod:`liccs.export.phases`);
        None (default): each stage in its engine's form (``EngineSpec.transposed``: ``ov-cpu-bf16`` runs them
        four-phase, the others natively).

        The codec comes back active; its owner releases it (``with DeployedCodec.on_engine(...) as d:``, ``d.close()``).
        """
        per_stage = dict(engine) if isinstance(engine, Mapping) else {"default": engine}
        plain = isinstance(engine, str) and not parse_split(engine)
        spec = get_engine(engine) if plain else None
        twin = spec.fp32_twin if spec is not None else ""
        stages = family_of(codec).stages
        if twin and hyper_fp32:
            per_stage |= {s: twin for s in TABLE_STAGES if s in stages}
        if transposed is None:  # each stage in its engine's own form (the padded context graph is for parity)
            transposed = engine_forms(per_stage, [s for s in stages if s != "context_prediction"])
        forms = dict(transposed) if isinstance(transposed, Mapping) else {"default": transposed}
        default_form = forms.get("default", "native")
        by_form = {f: codec_graphs(codec, with_reconstruct=False, transposed=f)[0]
                   for f in {forms.get(s, default_form) for s in stages}}  # only the forms some stage runs in
        graphs = {s: by_form[forms.get(s, default_form)][s] for s in stages if s in by_form[forms.get(s, default_form)]}
        graphs.pop("context_prediction", None)  # the loop runs context_step; the padded graph is for parity
        unknown = set(forms) - set(graphs) - {"default"}
        if unknown:
            raise InputError(f"transposed forms for unknown stage(s) {sorted(unknown)}; stages of this codec: "
                             f"{', '.join(graphs)} (and 'default')")
        unknown = set(per_stage) - set(graphs) - {"default"}
        if unknown:
            raise InputError(f"engines for unknown stage(s) {sorted(unknown)}; stages of this codec: "
                             f"{', '.join(graphs)} (and 'default')")
        feeds = stage_feeds(codec, calibration_images) if calibration_images is not None else {}
        runners = {}
        for name, g in graphs.items():
            calib = [{k: v.numpy() for k, v in feeds[name].items()}] if name in feeds else None
            loop = {"threads": 1} if name in LOOP_STAGES else {}  # tiny per-position calls: see .autoregressive
            # no spinning: torch work follows every call, and spinning ONNX Runtime threads would hold its cores
            on = per_stage.get(name, per_stage.get("default", "torch"))  # "A>B": see runner_for
            runners[name] = runner_for(on, g, cache, exporter=exporter, calibration=calib, spinning=False, **loop)
        label = engine if isinstance(engine, str) else "+".join(
            f"{s}={e}" for s, e in sorted(per_stage.items()))
        label += "".join(f"; {s} {f}" for s, f in sorted(forms.items()) if f != "native")
        out = cls(codec, runners, label)
        out.transposed = {s: forms.get(s, default_form) for s in graphs}
        fit = bool(spec is not None and spec.precision == "int8" and twin and hyper_fp32
                   and calibration_images is not None and int8_tolerance is not None)
        lmbda = int8_lambda if int8_lambda is not None else mse_lambda(out.name)
        if fit and lmbda is None:
            raise InputError(f"{out.name}: the int8 fit weighs distortion by the codec's λ, and this codec's name "
                             f"gives none (ARCH@q1…q8): pass int8_lambda, or int8_tolerance=None")
        try:  # the fit activates what it measures with and installs active transforms; then the rest
            if fit:
                out.int8_plan = fit_int8(out, engine, twin, graphs, feeds, calibration_images, cache, lmbda=lmbda,
                                         tolerance=int8_tolerance, exporter=exporter)
            out.activate()
        except BaseException:
            out.close()
            raise
        return out

    def run_stage(self, stage: str, name: str, x: Tensor) -> Tensor:
        """One stage's runner on ``x`` (its input ``name``), as float on the CPU."""
        out = self.runners[stage].infer({name: x.contiguous()})
        return next(iter(out.values())).float().cpu()

    def hyper(self, z_hat: Tensor) -> Tensor:
        """``h_s`` one image at a time, on the encoder's side and the decoder's alike.

        The entropy tables are chosen from these outputs, so both sides must compute them bit for bit. A GPU
        picks its convolution algorithm by batch size: on an H200 an encoder that ran ``h_s`` on 256 images at
        once selected other tables than decoders that ran it on one, and the checksums refused the streams.
        """
        return torch.cat([self.run_stage("h_s", "z_hat", z_hat[i:i + 1]) for i in range(z_hat.shape[0])])

    # --- CompressAI contract -------------------------------------------------------------------------
    @torch.no_grad()
    def compress(self, images: Tensor) -> dict[str, Any]:
        """{"strings": [[framed bytes per image] per latent], "shape": latent (h, w), "size": image (H, W)}."""
        check_images(images)
        self._require_active()
        xp, size = pad_to_multiple(images, PAD_MULTIPLE)
        strings, shape = self.coder.encode(self, self.run_stage("g_a", "x", xp))
        return {"strings": strings, "shape": shape, "size": size}

    @torch.no_grad()
    def decompress(self, strings: Sequence[Sequence[bytes]], shape: Sequence[int], size: Sequence[int] | None = None,
                   on_mismatch: str = "raise") -> dict[str, Any]:
        """{"x_hat": [B, 3, H, W] in [0, 1], "tables_match": [bool per image]}.

        ``on_mismatch``: ``raise`` (default) when this decoder's networks select other entropy tables than
        the encoder's for an image; ``decode`` decodes anyway (for measuring cross-engine drift) and reports
        it in ``tables_match``. Where only a few scales sit across a table boundary (another engine's last bits),
        the stream's index checksum finds them first (:func:`~liccs.engines.indexes.repair_indexes`; counted in
        ``self.repaired``) and the image decodes on the encoder's tables.
        """
        if on_mismatch not in MISMATCH:
            raise InputError(f"on_mismatch must be one of {MISMATCH}, got {on_mismatch!r}")
        self._require_active()
        latents = self.family.latents
        want = len(latents)
        if not isinstance(strings, (list, tuple)) or len(strings) != want:
            raise BitstreamError(f"{self.name}: expected {want} string list(s) (one per latent), got "
                                 f"{len(strings) if isinstance(strings, (list, tuple)) else type(strings).__name__}")
        parsed = [[unframe(s, f"{self.name}: latent {lat} of image {i}") for i, s in enumerate(lst)]
                  for lat, lst in zip(latents, strings)]
        if len({len(p) for p in parsed}) != 1:
            raise BitstreamError(f"{self.name}: latents have different image counts {[len(p) for p in parsed]}")
        shape = tuple(int(s) for s in shape)
        if len(shape) != 2 or min(shape) < 1:
            raise BitstreamError(f"{self.name}: latent shape {shape} is not a (height, width) of at least 1×1")
        self.coder.check_capacity(self, parsed, shape)  # before any network or entropy decoder runs
        y_hat, match = self.coder.decode(self, parsed, shape, on_mismatch)
        # a decode on other tables, or of a forged string, may hold inf/NaN: keep the image finite (flagged if so)
        x_hat = torch.nan_to_num(self.run_stage("g_s", "y_hat", y_hat), nan=0.0).clamp(0, 1)
        return {"x_hat": crop_to(x_hat, tuple(size)) if size is not None else x_hat, "tables_match": match}

    def mismatch(self, bad: bool, on_mismatch: str, i: int, what: str) -> None:
        """Raise (``on_mismatch='raise'``) where image ``i`` decodes on other tables than its encoder's."""
        if bad and on_mismatch == "raise":
            raise BitstreamError(
                f"{self.name} on {self.engine}: image {i}: {what} computed by this decoder select other entropy "
                f"tables than the encoder's (checksum differs), so the decode would be wrong; the stream was "
                f"written by another engine or model (decompress(..., on_mismatch='decode') decodes anyway)")

    # --- one container per image ---------------------------------------------------------------------
    def encode(self, images: Tensor) -> list[bytes]:
        """One self-describing bitstream per image (see :class:`~liccs.engines.bitstream.Container`)."""
        out = self.compress(images)
        return [Container(self.fingerprint, out["size"], out["shape"],
                          tuple(lst[i] for lst in out["strings"])).to_bytes() for i in range(images.shape[0])]

    def decode(self, data: bytes, on_mismatch: str = "raise", where: str = "bitstream",
               max_pixels: int | None = None) -> dict[str, Any]:
        """Decode one :meth:`encode` output: {"x_hat": [1, 3, H, W], "tables_match": bool}.

        The header is checked before any work (:func:`~liccs.engines.limits.check_header`: latent shape, strings,
        pixel budget: ``max_pixels``, else ``$LICCS_MAX_PIXELS``, else 64
        megapixels, estimated memory)."""
        c = Container.from_bytes(data, where)
        if c.fingerprint != self.fingerprint:
            raise BitstreamError(f"{where} was written by another model (weights fingerprint {c.fingerprint.hex()}); "
                                 f"this decoder is {self.name} (weights fingerprint {self.fingerprint.hex()})")
        check_header(c, self.codec, where, pixel_budget(max_pixels), self.coder)
        try:
            out = self.decompress([[s] for s in c.strings], c.shape, c.size, on_mismatch)
        except BitstreamError as e:
            raise BitstreamError(str(e) if where in str(e) else f"{where}: {e}") from None
        return {"x_hat": out["x_hat"], "tables_match": out["tables_match"][0]}


def bpp(data: bytes | Sequence[bytes], size: Sequence[int]) -> float:
    """Bits per pixel of compressed bytes for an image of ``size`` (H, W)."""
    n = len(data) if isinstance(data, (bytes, bytearray)) else sum(len(d) for d in data)
    return 8.0 * n / (int(size[0]) * int(size[1]))
