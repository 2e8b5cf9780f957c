"""``liccs encode`` / ``liccs decode``: image files through a deployed codec on any engine, as ``.liccs`` files.

Each ``.liccs`` file is one :class:`~liccs.engines.bitstream.Container` (the deployed codec's own format: a header
with the weights' fingerprint, image and latent sizes, then the framed strings with their checksums), so a file
made by other weights, or damaged, is refused naming the file, and a decoder on another engine whose networks
pick other entropy tables than the encoder's says so instead of returning a wrong image (``on_mismatch="decode"``
decodes anyway, for measuring the drift). Like CompressAI's codec example, on any engine liccs deploys to.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from liccs.attack.io import save_png
from liccs.core.errors import InputError
from liccs.core.fileio import output_dir
from liccs.data import read_image, to_float
from liccs.engines.bitstream import BitstreamError
from liccs.engines.codec import MISMATCH, DeployedCodec, bpp
from liccs.export.cache import ArtifactCache
from liccs.zoo import load_codec
from liccs.zoo.weights import random_weights_banner

SUFFIX = ".liccs"


def deployed(codec: str, weights: str, engine: str, inputs: Sequence[Any], what: str,
             out: str | Path) -> tuple[DeployedCodec, str | None, Path]:
    """The deployed ``codec`` on ``engine`` (artifacts in the cache; active, the caller closes it), the
    random-weights banner if any, and the output folder (made); no ``inputs`` is an error naming ``what`` was
    expected."""
    if not inputs:
        raise InputError(f"no {what} given")
    out = output_dir(out)
    model = load_codec(codec, weights)
    return DeployedCodec.on_engine(model, engine, ArtifactCache()), random_weights_banner({codec: model}), out


def encode_files(codec: str, weights: str, engine: str, images: Sequence[str | Path],
                 out: str | Path) -> tuple[list[dict[str, Any]], str | None]:
    """One ``STEM.liccs`` per image under ``out``: (rows: file, size, bytes, bpp; the random-weights banner). Two
    images with one stem (they would write one file) are refused before any work."""
    stems: dict[str, Path] = {}
    for path in map(Path, images):
        if path.stem in stems:
            raise InputError(f"images {stems[path.stem]} and {path} would both be written as {path.stem}{SUFFIX}; "
                             "rename one")
        stems[path.stem] = path
    if images:
        output_dir(out)
    d, banner, out = deployed(codec, weights, engine, images, "image to encode", out)
    rows = []
    with d:
        for path in map(Path, images):
            x = to_float(read_image(path))[None]
            (data,) = d.encode(x)
            target = out / f"{path.stem}{SUFFIX}"
            target.write_bytes(data)
            rows.append({"image": str(path), "file": str(target), "height": x.shape[-2], "width": x.shape[-1],
                         "bytes": len(data), "bpp": round(bpp(data, x.shape[-2:]), 4)})
    return rows, banner


def decode_files(codec: str, weights: str, engine: str, files: Sequence[str | Path], out: str | Path,
                 on_mismatch: str = "raise", max_pixels: int | None = None) -> list[dict[str, Any]]:
    """One ``STEM.png`` per ``.liccs`` file under ``out``; rows: file, png, tables_match. A damaged file, one made
    by other weights, one whose header this codec would not write, one too large to decode (above ``max_pixels``,
    else ``$LICCS_MAX_PIXELS``, else 64 megapixels, or above the memory available: see
    :mod:`liccs.engines.limits`), or (``on_mismatch="raise"``) one whose tables this engine does not reproduce
    raises :class:`BitstreamError` naming the file, before any network runs on it."""
    if on_mismatch not in MISMATCH:
        raise InputError(f"on_mismatch must be one of {MISMATCH}, got {on_mismatch!r}")
    stems: dict[str, Path] = {}
    for path in map(Path, files):
        if not path.is_file():
            raise InputError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
        if path.stem in stems:
            raise InputError(f"files {stems[path.stem]} and {path} would both be decoded to {path.stem}.png; "
                             "decode them into different folders")
        stems[path.stem] = path
    d, _, out = deployed(codec, weights, engine, files, ".liccs file to decode", out)
    rows = []
    with d:
        for path in map(Path, files):
            try:
                res = d.decode(path.read_bytes(), on_mismatch=on_mismatch, where=str(path), max_pixels=max_pixels)
            except BitstreamError as e:
                msg = str(e) if str(path) in str(e) else f"{path}: {e}"
                raise BitstreamError(msg) from None
            png = save_png(res["x_hat"][0], out / f"{path.stem}.png")
            rows.append({"file": str(path), "png": str(png), "tables_match": res["tables_match"]})
    return rows
