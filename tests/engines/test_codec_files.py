"""``liccs encode`` / ``liccs decode``: image files ↔ .liccs files through the deployed codec, bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from liccs.cli import main
from liccs.data import read_image, to_float, to_uint8
from liccs.engines.codec import DeployedCodec
from liccs.export.cache import ArtifactCache
from liccs.zoo import load_codec
from tests.engines.helpers import SMALL


@pytest.fixture()
def crops(tmp_path: Path, kodak_crop: torch.Tensor) -> list[Path]:
    """Two Kodak crops as PNG files (sides that are not multiples of 64)."""
    paths = []
    for i, (h, w) in enumerate([(75, 117), (66, 130)]):
        arr = to_uint8(kodak_crop[0, :, :h, :w]).permute(1, 2, 0).numpy()
        paths.append(tmp_path / f"crop{i}.png")
        Image.fromarray(arr).save(paths[-1])
    return paths


def test_encode_then_decode_matches_the_deployed_codec_bit_for_bit(crops, tmp_path, capsys):
    enc, dec = tmp_path / "enc", tmp_path / "dec"
    assert main(["encode", "--codec", SMALL, "--engine", "ort-cpu", *map(str, crops), "-o", str(enc)]) == 0
    printed = capsys.readouterr().out
    assert "crop0.liccs" in printed and "bpp" in printed
    files = sorted(enc.glob("*.liccs"))
    assert [f.stem for f in files] == ["crop0", "crop1"]
    assert main(["decode", "--codec", SMALL, "--engine", "ort-cpu", *map(str, files), "-o", str(dec)]) == 0
    d = DeployedCodec.on_engine(load_codec(SMALL, "pretrained"), "ort-cpu", ArtifactCache())
    for src, f in zip(crops, files, strict=True):
        x = to_float(read_image(src))[None]
        (data,) = d.encode(x)
        assert f.read_bytes() == data  # the CLI's file is the deployed codec's container
        ref = to_uint8(d.decode(data)["x_hat"][0])
        assert torch.equal(read_image(dec / f"{f.stem}.png"), ref)
    # another fp32 engine picks the same entropy tables: its decode is accepted
    assert main(["decode", "--codec", SMALL, "--engine", "torch", *map(str, files), "-o", str(tmp_path / "t")]) == 0
    assert "OTHER entropy tables" not in capsys.readouterr().out


def test_a_flipped_byte_is_refused_naming_the_file(crops, tmp_path, capsys):
    enc = tmp_path / "enc"
    assert main(["encode", "--codec", SMALL, "--engine", "torch", str(crops[0]), "-o", str(enc)]) == 0
    f = enc / "crop0.liccs"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["decode", "--codec", SMALL, "--engine", "torch", str(f), "-o", str(tmp_path / "dec")]) == 2
    err = capsys.readouterr().err
    assert "liccs: error:" in err and str(f) in err


def test_a_file_from_other_weights_is_refused(crops, tmp_path, capsys):
    enc = tmp_path / "enc"
    assert main(["encode", "--codec", SMALL, "--weights", "random", "--engine", "torch", str(crops[0]),
                 "-o", str(enc)]) == 0
    assert "RANDOM WEIGHTS" in capsys.readouterr().out
    assert main(["decode", "--codec", SMALL, "--engine", "torch", str(enc / "crop0.liccs"),
                 "-o", str(tmp_path / "dec")]) == 2
    assert "written by another model" in capsys.readouterr().err


def test_decode_refuses_two_files_of_one_stem_and_an_output_that_is_a_file(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "x.liccs").write_bytes(b"LICC")
    files = [str(tmp_path / d / "x.liccs") for d in ("a", "b")]
    assert main(["decode", "--codec", SMALL, "--engine", "torch", *files, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "would both be decoded to x.png" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "blocker").write_text("a file")
    assert main(["decode", "--codec", SMALL, "--engine", "torch", files[0], "-o", str(tmp_path / "blocker")]) == 2
    assert "is a file" in capsys.readouterr().err
