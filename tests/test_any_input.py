"""Inputs of any shape, never a traceback: property tests of every command that takes images.

Hypothesis draws folders of images of mixed sizes (1×1 up to 2048 px on a side, below every crop and calibration
size the commands use), modes (L, LA, 1, RGBA, P, I;16, CMYK) and broken files (truncated PNG/JPEG, zero bytes,
text named .png, a directory named .png, a header claiming a decompression bomb), and drives ``liccs export``,
``check``, ``encode`` (then ``decode`` of what it wrote), ``attack`` and ``defend`` in-process on the tiny mini-zoo
models with random weights. Each run either succeeds with an output for every image it read, naming every file it
skipped, or exits 2 with one ``liccs: error:`` line naming the offending file; never a traceback. A file counts as
unreadable exactly when :func:`liccs.data.read_image` refuses it. Examples are few and fixed (derandomized) to keep
the file near a minute; plain tests cover names (hidden, repeated), empty folders, an image given as the folder, an
output folder blocked by a file, and out-of-range counts.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
import zlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from liccs.cli import main
from liccs.core.errors import ImageReadError
from liccs.data import read_image

CODEC = "mini-tiny-bmshj2018-hyperprior@q1"
CLASSIFIER = "mini-tiny-cifar-resnet"
BROKEN = ("empty", "text", "directory", "bomb")  # never readable
FORMATS = {"png": ("RGB", "L", "LA", "1", "RGBA", "P", "I;16"), "jpg": ("RGB", "L", "CMYK")}


@dataclass(frozen=True)
class Spec:
    """One file of a drawn folder: ``kind`` is ``ok``, ``truncated`` (readable or not) or one of :data:`BROKEN`."""

    stem: str
    suffix: str
    width: int
    height: int
    mode: str
    kind: str = "ok"
    cut: float = 0.5

    @property
    def name(self) -> str:
        return f"{self.stem}.{self.suffix}"


def _encoded(spec: Spec) -> bytes:
    rng = np.random.default_rng(spec.width * 7919 + spec.height)
    if spec.mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (spec.height, spec.width)).astype(np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8))
        img = img.quantize(16) if spec.mode == "P" else img.convert(spec.mode)
    buf = io.BytesIO()
    img.save(buf, "JPEG" if spec.suffix == "jpg" else "PNG")
    return buf.getvalue()


def _bomb() -> bytes:
    """A valid 1×1 PNG whose header claims 30000×30000 pixels (Pillow refuses it as a decompression bomb)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", 30000, 30000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def write(spec: Spec, folder: Path) -> Path:
    path = folder / spec.name
    if spec.kind == "directory":
        path.mkdir()
    elif spec.kind == "empty":
        path.write_bytes(b"")
    elif spec.kind == "text":
        path.write_text("not an image\n")
    elif spec.kind == "bomb":
        path.write_bytes(_bomb())
    else:
        data = _encoded(spec)
        path.write_bytes(data[: max(1, int(len(data) * spec.cut))] if spec.kind == "truncated" else data)
    return path


def write_folder(specs: list[Spec], root: Path) -> Path:
    folder = root / "images"
    folder.mkdir()
    for s in specs:
        write(s, folder)
    return folder


SIDE = st.one_of(st.integers(1, 40), st.sampled_from([1, 2, 3, 63, 64, 65, 75, 117, 127, 128, 129, 130, 131]))


@st.composite
def specs(draw: st.DrawFn, stem: str) -> Spec:
    suffix = draw(st.sampled_from(sorted(FORMATS)))
    kind = draw(st.sampled_from(("ok",) * 10 + ("truncated", *BROKEN)))  # most folders read; some do not
    return Spec(stem, suffix, draw(SIDE), draw(SIDE), draw(st.sampled_from(FORMATS[suffix])), kind,
                draw(st.floats(0.05, 0.95)))


#: File stems: plain, dotted, spaced, non-ASCII, leading '-', and hidden (leading '.': no attack output name).
STEMS = ("a", "b", "c", "d", "x.y", "with space", "ünï", "-z", ".hidden")


@st.composite
def folders(draw: st.DrawFn, max_files: int = 4) -> list[Spec]:
    stems = draw(st.lists(st.sampled_from(STEMS), min_size=1, max_size=max_files, unique=True))
    return [draw(specs(stem)) for stem in stems]


def _big(w: int, h: int, mode: str = "RGB", stem: str = "big") -> Spec:
    return Spec(stem, "jpg" if mode == "CMYK" else "png", w, h, mode)


def bounded(examples: int) -> settings:
    """Few drawn examples, the same ones every run (derandomized, no database), no shrinking (each example is a
    command run of seconds): the file stays around a minute of CPU time; the deadline catches a hang."""
    return settings(max_examples=examples, derandomize=True, database=None, deadline=timedelta(seconds=300),
                    phases=(Phase.explicit, Phase.generate),
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``liccs ARGV`` in this process: (exit code, stdout, stderr); an exception escaping ``main`` fails the test."""
    capsys.readouterr()
    rc = main(argv)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    if currently_in_test_context():  # the exit codes drawn, in --hypothesis-show-statistics
        event(f"{argv[0]}: exit {rc}")
    return rc, cap.out, cap.err


def error_line(err: str) -> str:
    """The one ``liccs: error:`` line of a refused run (stderr may also hold finished progress bars)."""
    lines = [line for line in err.splitlines() if line.startswith("liccs: error:")]
    assert len(lines) == 1, err
    return lines[0]


def unreadable(folder: Path, drawn: list[Spec]) -> list[Path]:
    """The drawn files that :func:`read_image` refuses: every broken one, no intact one, a truncated one or not."""
    bad = []
    for s in drawn:
        try:
            read_image(folder / s.name)
        except ImageReadError:
            bad.append(folder / s.name)
    assert {p.name for p in bad} >= {s.name for s in drawn if s.kind in BROKEN}
    assert not {p.name for p in bad} & {s.name for s in drawn if s.kind == "ok"}
    return bad


def refused_or_complete(rc: int, out: str, err: str, bad: list[Path]) -> bool:
    """Commands that stop on an unreadable image: exit 2 naming one (True) when there is one, else exit 0 (False)."""
    if bad:
        assert rc == 2 and any(str(p) in error_line(err) for p in bad), (rc, out, err)
        return True
    assert rc == 0, (rc, out, err)
    return False


# --- export and check: unreadable images are skipped and named --------------------------------------------------


@pytest.fixture(scope="module")
def export_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One output folder for every export/check example: the artifacts are exported once and cached there."""
    return tmp_path_factory.mktemp("export")


def check_export(command: list[str], drawn: list[Spec], out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(drawn, Path(tmp))
        (out / "parity.json").unlink(missing_ok=True)
        rc, printed, err = run([*command, "--codec", CODEC, "--weights", "random", "--exporter", "torchscript",
                                "--images", str(folder), "--out", str(out)], capsys)
        bad = unreadable(folder, drawn)
        if len(bad) == len(drawn):  # nothing to run parity on: one line naming every file and its problem
            line = error_line(err)
            assert rc == 2 and str(folder) in line and all(str(p) in line for p in bad), (rc, err)
            return
        assert rc == 0, (rc, printed, err)
        skipped = [line for line in printed.splitlines() if line.startswith("skipped")]
        assert {p for p in folder.iterdir() if any(str(p) in line for line in skipped)} == set(bad), printed
        assert len(json.loads((out / "parity.json").read_text())["manifest"]["config"]["skipped_images"]) \
            == len(skipped)


@bounded(2)
@given(drawn=folders())
@example(drawn=[_big(2048, 2048), Spec("b", "png", 1, 1, "I;16")])
def test_export_any_folder(drawn: list[Spec], export_out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_export(["export", "--engine", "torch,ort-cpu", "--stages", "codec"], drawn, export_out, capsys)


@bounded(4)
@given(drawn=folders())
@example(drawn=[Spec("a", "png", 1, 1, "RGB", "text"), Spec("b", "jpg", 5, 5, "L", "empty")])
def test_check_any_folder(drawn: list[Spec], export_out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_export(["check", "--engine", "torch", "--stages", "codec", "--no-cross-decode"], drawn, export_out, capsys)


# --- encode, then decode what it wrote ----------------------------------------------------------------------------


@bounded(4)
@given(drawn=folders(max_files=3))
@example(drawn=[_big(2048, 2048, "P"), _big(1, 2048, "RGBA", "strip")])
def test_encode_then_decode_any_files(drawn: list[Spec], capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(drawn, Path(tmp))
        files = [folder / s.name for s in drawn]
        enc, dec = Path(tmp) / "enc", Path(tmp) / "dec"
        rc, printed, err = run(["encode", "--codec", CODEC, "--weights", "random", "--engine", "torch",
                                *map(str, files), "-o", str(enc)], capsys)
        if refused_or_complete(rc, printed, err, unreadable(folder, drawn)):
            return
        written = sorted(enc.iterdir())
        assert sorted(p.stem for p in written) == sorted(s.stem for s in drawn), printed
        rc, printed, err = run(["decode", "--codec", CODEC, "--weights", "random", "--engine", "torch",
                                *map(str, written), "-o", str(dec)], capsys)
        assert rc == 0, err
        for s in drawn:
            with Image.open(dec / f"{s.stem}.png") as img, Image.open(folder / s.name) as src:
                assert img.size == src.size and img.mode == "RGB"


# --- attack and defend: every image attacked at its own size, or a refusal naming the file -----------------------


@bounded(6)
@given(drawn=folders(max_files=3))
@example(drawn=[_big(2048, 1), _big(1, 2048, "L", "tall")])
@example(drawn=[Spec(".hidden", "png", 5, 5, "RGB"), Spec("a", "jpg", 3, 3, "L")])
def test_attack_any_folder(drawn: list[Spec], capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(drawn, Path(tmp))
        out = Path(tmp) / "adv"
        rc, printed, err = run(["attack", "--codec", CODEC, "--classifier", CLASSIFIER, "--weights", "random",
                                "--attack", "fgsm", "--images", str(folder), "--out", str(out)], capsys)
        hidden = [folder / s.name for s in drawn if s.stem.startswith(".")]  # no output name: refused, named
        if refused_or_complete(rc, printed, err, unreadable(folder, drawn) + hidden):
            return
        for s in drawn:
            with Image.open(out / f"{s.stem}.png") as adv, Image.open(folder / s.name) as src:
                assert adv.size == src.size


@bounded(3)
@given(drawn=folders(max_files=3))
@example(drawn=[_big(640, 1, "CMYK"), _big(3, 200, "P", "tall")])
def test_defend_any_folder(drawn: list[Spec], capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(drawn, Path(tmp))
        out = Path(tmp) / "def"
        rc, printed, err = run(["defend", "--codec", CODEC, "--weights", "random", "--k", "2", "--steps", "1",
                                "--images", str(folder), "--out", str(out)], capsys)
        if refused_or_complete(rc, printed, err, unreadable(folder, drawn)):
            return
        rows = json.loads((out / "defense.json").read_text())["rows"]
        assert {r["image"] for r in rows} == {s.stem for s in drawn}


@st.composite
def attacked(draw: st.DrawFn) -> tuple[list[Spec], list[Spec | None]]:
    """Readable clean images and, per image, its attacked PNG: the same size, another size, missing, or broken."""
    clean = [Spec(stem, "png", draw(SIDE), draw(SIDE), "RGB") for stem in "abc"[:draw(st.integers(1, 3))]]
    adv: list[Spec | None] = []
    for c in clean:
        kind = draw(st.sampled_from(("same",) * 6 + ("resized", "missing", "truncated", *BROKEN)))
        w, h = (c.width, c.height) if kind != "resized" else (c.width + draw(st.integers(1, 9)), c.height)
        adv.append(None if kind == "missing" else Spec(c.stem, "png", w, h, draw(st.sampled_from(FORMATS["png"])),
                                                       "ok" if kind in ("same", "resized") else kind))
    return clean, adv


@bounded(4)
@given(pair=attacked())
def test_defend_given_attacked_images(pair: tuple[list[Spec], list[Spec | None]],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    clean, adv = pair
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(clean, Path(tmp))
        adv_dir = Path(tmp) / "adv"
        adv_dir.mkdir()
        for a in filter(None, adv):
            write(a, adv_dir)
        rc, printed, err = run(["defend", "--codec", CODEC, "--weights", "random", "--k", "2", "--adv", str(adv_dir),
                                "--images", str(folder), "--out", str(Path(tmp) / "def")], capsys)
        given = [a for a in adv if a is not None]
        wrong = {adv_dir / f"{c.stem}.png" for c, a in zip(clean, adv) if a is None or a.width != c.width}
        refused_or_complete(rc, printed, err, sorted(wrong | set(unreadable(adv_dir, given))))


# --- names: two files with one stem --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["attack", "defend", "check"])
def test_two_images_with_one_name_are_refused_before_any_work(command: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_folder([Spec("a", "png", 4, 4, "RGB"), Spec("a", "jpg", 4, 4, "RGB")], tmp_path)
    argv = {"attack": ["attack", "--classifier", CLASSIFIER], "defend": ["defend"], "check": ["check"]}[command]
    rc, _, err = run([*argv, "--codec", CODEC, "--weights", "random", "--images", str(folder),
                      "--out", str(tmp_path / "out")], capsys)
    assert rc == 2 and "a.png" in error_line(err) and "a.jpg" in error_line(err)


def test_encode_refuses_two_images_with_one_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, two = tmp_path / "x", tmp_path / "y"
    one.mkdir(), two.mkdir()
    files = [write(Spec("a", "png", 4, 4, "RGB"), one), write(Spec("a", "png", 5, 5, "L"), two)]
    rc, _, err = run(["encode", "--codec", CODEC, "--weights", "random", *map(str, files),
                      "-o", str(tmp_path / "enc")], capsys)
    assert rc == 2 and str(files[0]) in error_line(err) and str(files[1]) in error_line(err)
    assert not (tmp_path / "enc").exists() or not any((tmp_path / "enc").iterdir())


@pytest.mark.parametrize("command", ["attack", "defend", "check"])
def test_a_folder_without_images_is_refused_naming_it(command: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("no images here\n")
    argv = {"attack": ["attack", "--classifier", CLASSIFIER], "defend": ["defend"], "check": ["check"]}[command]
    rc, _, err = run([*argv, "--codec", CODEC, "--weights", "random", "--images", str(tmp_path),
                      "--out", str(tmp_path / "out")], capsys)
    assert rc == 2 and str(tmp_path) in error_line(err)


def test_export_refuses_zero_calibration_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_folder([Spec("a", "png", 4, 4, "RGB")], tmp_path)
    rc, _, err = run(["check", "--codec", CODEC, "--weights", "random", "--calibration-images", "0",
                      "--images", str(folder), "--out", str(tmp_path / "out")], capsys)
    assert rc == 2 and "calibration images" in error_line(err)


@pytest.mark.parametrize("command", ["attack", "defend", "check"])
def test_one_image_given_as_the_folder_is_refused_naming_it(command: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    image = write(Spec("a", "png", 4, 4, "RGB"), tmp_path)
    argv = {"attack": ["attack", "--classifier", CLASSIFIER], "defend": ["defend"], "check": ["check"]}[command]
    rc, _, err = run([*argv, "--codec", CODEC, "--weights", "random", "--images", str(image),
                      "--out", str(tmp_path / "out")], capsys)
    assert rc == 2 and str(image) in error_line(err)


def test_defend_refuses_a_limit_below_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_folder([Spec("a", "png", 4, 4, "RGB")], tmp_path)
    rc, _, err = run(["defend", "--codec", CODEC, "--weights", "random", "--limit", "0", "--images", str(folder),
                      "--out", str(tmp_path / "out")], capsys)
    assert rc == 2 and "limit" in error_line(err)


@pytest.mark.parametrize("command", ["attack", "defend", "check", "encode"])
def test_an_output_folder_that_is_a_file_is_refused_naming_it(command: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_folder([Spec("a", "png", 4, 4, "RGB")], tmp_path)
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the output folder should go\n")
    argv = {"attack": ["attack", "--classifier", CLASSIFIER, "--images", str(folder)],
            "defend": ["defend", "--images", str(folder)], "check": ["check", "--images", str(folder)],
            "encode": ["encode", str(folder / "a.png")]}[command]
    rc, _, err = run([*argv, "--codec", CODEC, "--weights", "random", "--out", str(blocker / "sub")], capsys)
    assert rc == 2 and f"{blocker} is a file" in error_line(err)
