"""A ``.liccs`` file is untrusted input: a header that asks for more than the codec would write, or than the pixel
and memory budgets allow, is refused in one line before any network runs (:mod:`liccs.engines.limits`); a string
too short for its symbols is refused before the entropy decoder runs (:mod:`liccs.engines.coder`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import torch
from PIL import Image

from liccs.cli import main
from liccs.data import kodak, to_uint8
from liccs.engines import limits
from liccs.engines.bitstream import BitstreamError
from liccs.engines.codec import DeployedCodec
from liccs.engines.coder import coder_tables, decode_bottleneck, decode_symbols, min_stream_bytes, min_symbol_bits
from liccs.export.cache import ArtifactCache
from liccs.zoo import load_codec
from tests.engines.forge import reframe, with_header
from tests.engines.helpers import SMALL

#: the issue's model and image: a 128×192 image through mini-bmshj2018-hyperprior@q4 (a ~1.6 KB file)
ISSUE_CODEC = "mini-bmshj2018-hyperprior@q4"
#: the two files of the issue: (image H, W), (latent h, w) written into a real file's header, crc32 recomputed
CRAFTED = {"8k": ((8192, 8192), (512, 512)), "64k": ((65535, 65535), (4096, 4096))}
MiB = 2**20


@pytest.fixture(scope="module")
def issue_file(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """The issue's file: a 128×192 Kodak crop encoded by ``liccs encode`` (ort-cpu)."""
    folder = tmp_path_factory.mktemp("issue")
    img = kodak(shared_data / "kodak").read(0)[:, 200:328, 300:492]
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / "kodim.png")
    assert main(["encode", "--codec", ISSUE_CODEC, "--engine", "ort-cpu", str(folder / "kodim.png"),
                 "-o", str(folder)]) == 0
    return folder / "kodim.liccs"


def crafted(path: Path, name: str) -> Path:
    """The issue's crafted file ``name`` made from the real file at ``path``."""
    (h, w), (lh, lw) = CRAFTED[name]
    out = path.with_name(f"crafted-{name}.liccs")
    out.write_bytes(with_header(path.read_bytes(), height=h, width=w, latent_h=lh, latent_w=lw))
    return out


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_the_crafted_files_are_refused_in_one_line_fast_and_small(issue_file, name, tmp_path, capsys):
    bad = crafted(issue_file, name)
    assert 1000 < issue_file.stat().st_size < 4000
    assert main(["decode", "--codec", ISSUE_CODEC, "--engine", "ort-cpu", str(bad), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("liccs: error:") and str(bad) in err and "'latent shape'" in err
    d = DeployedCodec.on_engine(load_codec(ISSUE_CODEC, "pretrained"), "ort-cpu", ArtifactCache())
    data = bad.read_bytes()
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(BitstreamError, match="latent shape"):
        d.decode(data, where=str(bad))
    elapsed, peak = time.perf_counter() - t0, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 4 * MiB


@pytest.mark.slow
def test_decoding_the_crafted_files_allocates_no_more_than_a_real_decode(issue_file, tmp_path):
    """Peak RSS (``ru_maxrss``) of a fresh process that decodes the real file, then tries both crafted files."""
    files = [str(issue_file)] + [str(crafted(issue_file, n)) for n in sorted(CRAFTED)]
    script = (
        "import json, resource, sys\n"
        "from liccs.core.errors import LiccsError\n"
        "from liccs.jobs.codec_files import decode_files\n"
        "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "out, rows = sys.argv[2], {}\n"
        "for f in json.loads(sys.argv[1]):\n"
        "    try:\n"
        f"        decode_files({ISSUE_CODEC!r}, 'pretrained', 'ort-cpu', [f], out)\n"
        "        rows[f] = ['decoded', peak()]\n"
        "    except LiccsError as e:\n"
        "        rows[f] = [str(e), peak()]\n"
        "print(json.dumps(rows))\n")
    res = subprocess.run([sys.executable, "-c", script, json.dumps(files), str(tmp_path)], capture_output=True,
                         text=True, timeout=300, check=True)
    rows = json.loads(res.stdout.strip().splitlines()[-1])
    assert rows[files[0]][0] == "decoded"
    real = rows[files[0]][1]
    for f in files[1:]:
        assert "latent shape" in rows[f][0]
        assert rows[f][1] - real < 16 * MiB, f"{f}: peak RSS grew by {(rows[f][1] - real) / MiB:.1f} MiB"
    print(f"peak RSS: real decode {real / MiB:.0f} MiB; after the crafted files "
          f"{max(rows[f][1] for f in files[1:]) / MiB:.0f} MiB")


@pytest.fixture(scope="module")
def small_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40×56 image through the tiny codec (random weights), on torch."""
    folder = tmp_path_factory.mktemp("small")
    Image.fromarray(to_uint8(torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(0)))
                    .permute(1, 2, 0).numpy()).save(folder / "img.png")
    assert main(["encode", "--codec", SMALL, "--weights", "random", "--engine", "torch", str(folder / "img.png"),
                 "-o", str(folder)]) == 0
    return folder / "img.liccs"


def _decode(path: Path, out: Path, *extra: str) -> int:
    return main(["decode", "--codec", SMALL, "--weights", "random", "--engine", "torch", str(path), "-o", str(out),
                 *extra])


def test_the_pixel_budget_is_a_flag_and_an_environment_variable(small_file, tmp_path, capsys, monkeypatch):
    assert _decode(small_file, tmp_path, "--max-pixels", "1000") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(small_file) in err and "'image size'" in err
    assert "--max-pixels" in err and limits.MAX_PIXELS_ENV in err and "estimated peak memory" in err
    assert _decode(small_file, tmp_path, "--max-pixels", str(40 * 56)) == 0  # exactly at the limit: decoded
    monkeypatch.setenv(limits.MAX_PIXELS_ENV, "1000")
    assert _decode(small_file, tmp_path) == 2
    assert "'image size'" in capsys.readouterr().err
    assert _decode(small_file, tmp_path, "--max-pixels", "5000") == 0  # the flag wins over the environment
    monkeypatch.setenv(limits.MAX_PIXELS_ENV, "lots")
    assert _decode(small_file, tmp_path) == 2
    assert limits.MAX_PIXELS_ENV in capsys.readouterr().err


def test_a_consistent_header_above_the_default_budget_is_refused(small_file, tmp_path, capsys):
    big = tmp_path / "big.liccs"
    big.write_bytes(with_header(small_file.read_bytes(), height=16384, width=16384, latent_h=256, latent_w=256))
    assert _decode(big, tmp_path) == 2
    err = capsys.readouterr().err
    assert "268,435,456 pixels" in err and "67,108,864" in err and "--max-pixels" in err


def test_a_consistent_header_whose_strings_cannot_hold_it_is_refused(issue_file, monkeypatch):
    """8192×8192 with the latent that size gives: the pixel budget allows it (and, here, the memory), the z
    string's few hundred bytes cannot hold 48×128×128 symbols."""
    monkeypatch.setattr(limits, "available_memory", lambda: 2**50)
    d = DeployedCodec.on_engine(load_codec(ISSUE_CODEC, "pretrained"), "torch")
    data = with_header(issue_file.read_bytes(), height=8192, width=8192, latent_h=128, latent_w=128)
    t0 = time.perf_counter()
    with pytest.raises(BitstreamError, match=r"crafted: .*latent z of image 0: \d+ bytes cannot hold its 786,432"):
        d.decode(data, where="crafted")
    assert time.perf_counter() - t0 < 1.0


def test_a_decode_above_the_available_memory_is_refused(small_file, monkeypatch):
    d = DeployedCodec.on_engine(load_codec(SMALL, "random"), "torch")
    monkeypatch.setattr(limits, "available_memory", lambda: 1000)
    with pytest.raises(BitstreamError, match=r"f: decoding this 40×56 image needs about .* MiB of memory \(estimated "
                                             r"from its header\); this machine has 0\.0 MiB available"):
        d.decode(small_file.read_bytes(), where="f")


@pytest.mark.parametrize("edit, field", [
    ({"height": 0}, "'image size'"),
    ({"height": 65}, "'latent shape' is 1×1, but this codec's z for a 65×56 image is 2×1"),
    ({"latent_w": 2}, "'latent shape'"),
    ({"n_strings": 1}, "'n strings'|unexpected bytes"),
])
def test_header_fields_that_disagree_are_named(small_file, edit, field):
    d = DeployedCodec.on_engine(load_codec(SMALL, "random"), "torch")
    with pytest.raises(BitstreamError, match=field):
        d.decode(with_header(small_file.read_bytes(), **edit), where="f.liccs")


def test_frame_check_counts_are_what_the_family_writes(small_file):
    d = DeployedCodec.on_engine(load_codec(SMALL, "random"), "torch")
    data = small_file.read_bytes()
    for i, checks in ((0, []), (0, [1, 2]), (1, [7])):
        with pytest.raises(BitstreamError, match=rf"f.liccs: string {i} \(latent [yz]\): frame field 'n checks'"):
            d.decode(reframe(data, i, checks=checks), where="f.liccs")


@pytest.mark.parametrize("n", [10, 1000, 100_000])
def test_the_capacity_bound_never_refuses_the_encoders_cheapest_strings(n):
    """The worst case of :func:`min_stream_bytes`: ``n`` copies of the most probable symbol of a table, for the
    most and the least peaked table of each entropy model."""
    m = load_codec(ISSUE_CODEC, "pretrained")
    for em in (m.gaussian_conditional, m.entropy_bottleneck):
        bits = min_symbol_bits(em)
        cdf, lengths, offsets = coder_tables(em)
        for t in (int(bits.argmin()), int(bits.argmax())):
            freq = [cdf[t][s + 1] - cdf[t][s] for s in range(lengths[t] - 1)]
            s = max(range(len(freq)), key=freq.__getitem__)
            out = em.entropy_coder.encode_with_indexes([s + offsets[t]] * n, [t] * n, cdf, lengths, offsets)
            ideal = float(bits[t]) * n
            assert len(out) >= 4 + ideal / 8 * (1 - 2**-14)  # the derivation's bound
            assert len(out) >= min_stream_bytes(ideal)  # what the decoder asks: half of it


@pytest.mark.parametrize("payload", [b"\xff" * 8, b"\x00" * 8, bytes(range(256)) * 2, b"\xf0\xff\xff\xff" * 64])
def test_a_forged_string_keeps_the_entropy_decoder_inside_its_buffer(payload):
    """Strings that announce long bypass runs or far more symbols than they hold (the checks that refuse them
    upstream bypassed): the decoder reads the zeros behind them, never past them (this crashed before)."""
    m = load_codec(ISSUE_CODEC, "pretrained")
    z = decode_bottleneck(m.entropy_bottleneck, [payload], (64, 64))
    assert z.shape == (1, m.entropy_bottleneck.channels, 64, 64)
    indexes = torch.zeros(1, 8, 64, 64, dtype=torch.int32)
    y = decode_symbols(m.gaussian_conditional, [payload], indexes)
    assert y.shape == indexes.shape


def test_the_corpus_segfault_reduced_decodes_zeros_instead():
    """``fuzz_corpus/segv-65535x4096-latent-1024x64`` without the checks in front: 3 million symbols from an
    8-byte string. Before the zero padding the rANS decoder read megabytes past the string (a segmentation fault
    here); now it reads zeros."""
    eb = load_codec(ISSUE_CODEC, "pretrained").entropy_bottleneck
    assert decode_bottleneck(eb, [bytes(8)], (1024, 64)).shape == (1, eb.channels, 1024, 64)


@pytest.mark.parametrize("name", ["bmshj2018-factorized@q1", "mbt2018@q1"])
def test_every_family_writes_the_header_its_decoder_checks(name):
    """The factorized prior (one string, the latent shape is y's, no checks) and the autoregressive family (one
    check per latent row of y) decode their own files and refuse other latent shapes and check counts."""
    d = DeployedCodec.on_engine(load_codec(name, "random"), "torch")
    data = d.encode(torch.rand(1, 3, 40, 70, generator=torch.Generator().manual_seed(0)))[0]
    assert d.decode(data)["x_hat"].shape == (1, 3, 40, 70)
    with pytest.raises(BitstreamError, match="f: header field 'latent shape'"):
        d.decode(with_header(data, latent_w=9), where="f")
    with pytest.raises(BitstreamError, match=r"f: string 0 \(latent y\): frame field 'n checks' is 5"):
        d.decode(reframe(data, 0, checks=[1, 2, 3, 4, 5]), where="f")
