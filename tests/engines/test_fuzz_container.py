"""Structured fuzzing of ``.liccs`` files through :func:`~liccs.jobs.codec_files.decode_files` (Hypothesis,
derandomized, bounded in examples and time).

Every header field, frame field, entropy-table check and payload is rewritten, with the checksums left as they
were or recomputed as an attacker would; files are cut, bit-flipped, spliced and concatenated. Each input either
decodes to exactly the image that was encoded, or (only when its checksums were forged) to some image of its
header's size, or fails with a one-line :class:`BitstreamError` naming the file: never another exception, never
a hang, never more memory than the pixel budget allows. Inputs that once broke the decoder are kept in
``fuzz_corpus/`` and replayed by :func:`test_the_corpus_is_refused`.
"""

from __future__ import annotations

import functools
import resource
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liccs.data import read_image, to_uint8
from liccs.engines.bitstream import _CONT_HEAD, BitstreamError, crc32
from liccs.engines.codec import DeployedCodec
from liccs.jobs import codec_files
from liccs.zoo import load_codec
from tests.engines.forge import FRAME_FIELDS, HEAD_END, HEADER_FIELDS, frame_spans, reframe, refresh, with_header

#: a trained codec with committed weights (no training in the test), small enough for a decode in milliseconds
CODEC, WEIGHTS = "mini-bmshj2018-hyperprior@q1", "pretrained"
#: the decoder's pixel budget in the fuzz: 0.25 megapixels (a forged header may ask for up to 4 gigapixels)
MAX_PIXELS = 512 * 512
CORPUS = Path(__file__).with_name("fuzz_corpus")
MiB = 2**20


@dataclass
class Fuzz:
    """The fuzz's files: real containers, their decoded images, and a folder to write inputs into."""

    bases: list[bytes]
    refs: list[torch.Tensor]
    folder: Path


def _decode(fz: Fuzz, data: bytes, name: str = "input", max_pixels: int = MAX_PIXELS) -> torch.Tensor | BitstreamError:
    """``data`` through ``decode_files``: the decoded 8-bit image, or the BitstreamError it raised."""
    path = fz.folder / f"{name}.liccs"
    path.write_bytes(data)
    try:
        (row,) = codec_files.decode_files(CODEC, WEIGHTS, "torch", [path], fz.folder / "out", max_pixels=max_pixels)
    except BitstreamError as e:
        msg = str(e)
        assert "\n" not in msg and msg.startswith(str(path)), msg
        return e
    return read_image(row["png"])


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Fuzz:
    """Two images (sides not multiples of 64) encoded by the deployed codec, and ``decode_files`` with the model
    loaded once (as ``liccs decode`` loads it once per call)."""
    cached = functools.cache(load_codec)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a decode of a few thousand pixels: a second thread only waits (2 busy cores here)
    mp = pytest.MonkeyPatch()
    mp.setattr(codec_files, "load_codec", cached)
    d = DeployedCodec.on_engine(cached(CODEC, WEIGHTS), "torch")
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(1, 3, 40, 56, generator=g), torch.rand(1, 3, 70, 33, generator=g)]
    bases = [d.encode(x)[0] for x in images]
    refs = [to_uint8(d.decode(b)["x_hat"][0]) for b in bases]
    fz = Fuzz(bases, refs, tmp_path_factory.mktemp("fuzz"))
    for b, ref in zip(bases, refs, strict=True):
        assert torch.equal(_decode(fz, b), ref)  # the untouched files decode, through decode_files too
    yield fz
    mp.undo()
    torch.set_num_threads(threads)


_U16 = st.one_of(st.sampled_from([0, 1, 2, 3, 63, 64, 65, 128, 8192, 65535]), st.integers(0, 65535))
_HEADER_VALUES = {
    "magic": st.binary(min_size=4, max_size=4), "version": st.integers(0, 255),
    "fingerprint": st.binary(min_size=8, max_size=8), "height": _U16, "width": _U16, "latent_h": _U16,
    "latent_w": _U16, "n_strings": st.integers(0, 255),
}
_FRAME_VALUES = {
    "magic": st.binary(min_size=2, max_size=2), "n_checks": st.integers(0, 65535),
    "length": st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)),
}


@st.composite
def mutation(draw: st.DrawFn, bases: list[bytes]) -> tuple[bytes, bool, str]:
    """(mutated bytes, whether checksums were forged, what was done): one structured mutation of a real file."""
    data = draw(st.sampled_from(bases))
    return draw(st.sampled_from(_OPS))(draw, data, bases)


def _header(draw: st.DrawFn, data: bytes, bases: list[bytes]) -> tuple[bytes, bool, str]:
    fields = draw(st.lists(st.sampled_from(HEADER_FIELDS), min_size=1, max_size=3, unique=True))
    values = {f: draw(_HEADER_VALUES[f]) for f in fields}
    forge = draw(st.booleans())
    return with_header(data, forge=forge, **values), forge, f"header {values}"


def _bomb(draw: st.DrawFn, data: bytes, bases: list[bytes]) -> tuple[bytes, bool, str]:
    """A large image size, with the latent shape it implies or another large one (the issue's files)."""
    h, w = draw(st.sampled_from([64, 1024, 8192, 16384, 65535])), draw(st.sampled_from([64, 4096, 8192, 65535]))
    lh, lw = (-(-h // 64), -(-w // 64)) if draw(st.booleans()) else (draw(_U16), draw(_U16))
    return with_header(data, height=h, width=w, latent_h=lh, latent_w=lw), True, f"bomb {h}×{w}, latent {lh}×{lw}"


def _frame(draw: st.DrawFn, data: bytes, bases: list[bytes]) -> tuple[bytes, bool, str]:
    i = draw(st.integers(0, len(frame_spans(data)) - 1))
    forge = draw(st.booleans())
    what = draw(st.sampled_from((*FRAME_FIELDS, "checks", "payload", "payload bytes")))
    if what in FRAME_FIELDS:
        value = draw(_FRAME_VALUES[what])
        return reframe(data, i, forge=forge, **{what: value}), forge, f"frame {i} {what}={value!r}"
    if what == "checks":
        checks = draw(st.lists(st.integers(0, 2**32 - 1), max_size=3))
        return reframe(data, i, forge=forge, checks=checks), forge, f"frame {i} checks={checks}"
    start, head_end, end = frame_spans(data)[i]
    payload = bytearray(data[head_end:end])
    if what == "payload":
        payload = bytearray(draw(st.binary(max_size=80)))
    else:
        for pos in draw(st.lists(st.integers(0, max(0, len(payload) - 1)), min_size=1, max_size=4)):
            if payload:
                payload[pos] = draw(st.integers(0, 255))
    return reframe(data, i, forge=forge, payload=bytes(payload)), forge, f"frame {i} {what}"


def _cut(draw: st.DrawFn, data: bytes, bases: list[bytes]) -> tuple[bytes, bool, str]:
    n = draw(st.integers(0, len(data) - 1))
    forge = draw(st.booleans())
    return (refresh(data[:n]) if forge else data[:n]), forge, f"cut to {n}"


def _flip(draw: st.DrawFn, data: bytes, bases: list[bytes]) -> tuple[bytes, bool, str]:
    out = bytearray(data)
    flips = draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 7)), min_size=1, max_size=4))
    for pos, bit in flips:
        out[pos] ^= 1 << bit
    forge = draw(st.booleans())
    return (refresh(bytes(out)) if forge else bytes(out)), forge, f"flip {flips}"


def _splice(draw: st.DrawFn, data: bytes, bases: list[bytes]) -> tuple[bytes, bool, str]:
    """Concatenations and splices of the real files (their frames keep valid checksums: counted as forged)."""
    other = draw(st.sampled_from(bases))
    kind = draw(st.sampled_from(("append", "twice", "splice", "insert", "delete")))
    if kind == "append":
        return data + other, True, "append another file"
    if kind == "twice":
        return data + data, True, "the file twice"
    a, b = draw(st.integers(0, len(data))), draw(st.integers(0, len(other)))
    if kind == "splice":
        return data[:a] + other[b:], True, f"splice {a}:{b}"
    if kind == "insert":
        return data[:a] + draw(st.binary(min_size=1, max_size=16)) + data[a:], False, f"insert at {a}"
    return data[:a] + data[a + 1 + b % 16:], False, f"delete at {a}"


_OPS = (_header, _bomb, _frame, _cut, _flip, _splice)


def _check(fz: Fuzz, data: bytes, forged: bool, what: str) -> None:
    out = _decode(fz, data)
    if isinstance(out, BitstreamError):
        return
    if data in fz.bases:
        assert torch.equal(out, fz.refs[fz.bases.index(data)]), what
        return
    assert forged, f"{what}: a file with its checksums intact but other bytes decoded"
    h, w = struct.unpack_from("<HH", data, 13)
    assert out.shape == (3, h, w) and h * w <= MAX_PIXELS, what


@pytest.mark.timeout(120)
@settings(max_examples=80, deadline=3000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzzed_containers_decode_exactly_or_are_refused_naming_the_file(fuzz, data):
    _check(fuzz, *data.draw(mutation(fuzz.bases)))


def test_the_fuzz_allocates_within_the_budget(fuzz):
    """A second, shorter pass, measured: the process's peak RSS grows by less than a budget-sized decode would."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    @settings(max_examples=25, deadline=3000, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        _check(fuzz, *data.draw(mutation(fuzz.bases)))

    run()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < 256 * MiB, f"peak RSS grew by {grown / MiB:.0f} MiB"


def _with_fingerprint(data: bytes, fingerprint: bytes) -> bytes:
    """A corpus file addressed to this decoder's weights (its header crc32 recomputed only if it was valid)."""
    if len(data) < HEAD_END or data[:4] != b"LICC":
        return data
    valid = crc32(data[:_CONT_HEAD.size]) == struct.unpack_from("<I", data, _CONT_HEAD.size)[0]
    out = data[:5] + fingerprint + data[13:]
    return with_header(out) if valid else out


@pytest.mark.parametrize("max_pixels", [MAX_PIXELS, 2**32], ids=["fuzz-budget", "no-pixel-budget"])
@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.liccs")), ids=lambda p: p.stem)
def test_the_corpus_is_refused(fuzz, path, max_pixels):
    """Inputs the fuzzer found before the decoder checked its headers (``segv-…``: a segmentation fault, the
    entropy decoder reading past its string; ``traceback-…``: an exception from torch; ``slow-…``, ``rss-…``:
    seconds of work and 100+ MiB for a refusal): each is now refused in one line naming the file, quickly, also
    with the pixel budget lifted (then the latent shape, the memory estimate or the strings' capacity refuse it)."""
    fingerprint = DeployedCodec.on_engine(load_codec(CODEC, WEIGHTS), "torch").fingerprint
    t0 = time.perf_counter()
    out = _decode(fuzz, _with_fingerprint(path.read_bytes(), fingerprint), path.stem, max_pixels)
    assert isinstance(out, BitstreamError), f"{path.name} decoded"
    assert time.perf_counter() - t0 < 5.0
