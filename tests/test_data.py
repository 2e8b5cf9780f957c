import struct
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from liccs.core import crop_to, pad_to_multiple
from liccs.core.errors import ImageReadError, InputError
from liccs.data import (
    CIFAR10_CLASSES,
    FolderSource,
    cifar10,
    imagenet_samples,
    kodak,
    load_batch,
    open_source,
    read_image,
    to_float,
    to_uint8,
)


def test_all_24_kodak_images_load(shared_data):
    src = kodak()
    assert len(src) == 24
    for s in src:
        assert s.image.dtype == torch.uint8 and s.image.shape[0] == 3
        assert sorted(s.image.shape[1:]) == [512, 768]


def test_greyscale_imagenet_samples_become_rgb(shared_data):
    src = imagenet_samples()
    grey = []
    for i in range(len(src)):
        _, where, _ = src.describe(i)
        with Image.open(where) as im:
            if im.mode == "L":
                grey.append(i)
    assert len(grey) == 23
    for i in grey:
        s = src.load(i)
        assert s.image.shape[0] == 3 and torch.equal(s.image[0], s.image[1])
        assert 0 <= s.label < 1000


def test_imagenet_labels_come_from_the_csv(shared_data):
    src = imagenet_samples()
    assert len(src) == 1000
    assert sorted(src.describe(i)[2] for i in range(len(src))) == list(range(1000))


def test_odd_size_pads_to_64_and_crops_back_exactly():
    x = torch.rand(2, 3, 333, 517)
    xp, size = pad_to_multiple(x, 64)
    assert xp.shape[-2:] == (384, 576) and size == (333, 517)
    assert torch.equal(crop_to(xp, size), x)
    u = to_uint8(x[0])
    up, s = pad_to_multiple(u, 64)
    assert up.dtype == torch.uint8 and torch.equal(crop_to(up, s), u)


def test_uint8_float_round_trip_rounds_not_truncates():
    u = torch.arange(256, dtype=torch.uint8).view(1, 16, 16)
    assert torch.equal(to_uint8(to_float(u)), u)
    x = torch.tensor([0.4, 0.6, 254.4, 254.6]) / 255
    assert to_uint8(x).tolist() == [0, 1, 254, 255]  # truncation would give [0, 0, 254, 254]


def test_rgba_and_palette_images_become_rgb(tmp_path):
    Image.new("RGBA", (5, 7), (10, 20, 30, 0)).save(tmp_path / "a.png")
    Image.new("P", (5, 7)).save(tmp_path / "b.png")
    Image.new("L", (5, 7), 9).save(tmp_path / "c.png")
    for f in ("a", "b", "c"):
        img = read_image(tmp_path / f"{f}.png")
        assert img.shape == (3, 7, 5)
    assert read_image(tmp_path / "a.png").max() == 255  # transparent over white


def test_16_bit_images_are_scaled_to_8_bits_not_clipped(tmp_path):
    wide = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "a.png")  # opens as I;16
    Image.fromarray(wide).save(tmp_path / "b.ppm")  # opens as I
    for f in ("a.png", "b.ppm"):
        img = read_image(tmp_path / f)
        assert img.shape == (3, 3, 4) and img[0].flatten().tolist() == [round(v * 5000 / 257) for v in range(12)]


def test_a_decompression_bomb_is_an_unreadable_image_not_a_crash(tmp_path):
    Image.new("RGB", (1, 1)).save(tmp_path / "bomb.png")
    data = bytearray((tmp_path / "bomb.png").read_bytes())
    data[16:24] = struct.pack(">II", 30000, 30000)  # the header claims 9e8 pixels
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    (tmp_path / "bomb.png").write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="bomb.png is too large"):
        read_image(tmp_path / "bomb.png")


def test_two_images_with_one_stem_are_refused_naming_both(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "x.jpg")
    with pytest.raises(InputError, match="x.jpg and x.png"):
        FolderSource(tmp_path)


def test_cifar_labels_match_the_folder_names(shared_data):
    src = cifar10("test", limit_per_class=3)
    assert len(src) == 30
    with zipfile.ZipFile(shared_data / "cifar10-test.zip") as z:
        assert "test/cat/" in "".join(z.namelist()[:50000])
    for i in range(len(src)):
        name, where, label = src.describe(i)
        folder = where.split("!")[1].split("/")[1]
        assert folder == CIFAR10_CLASSES[label]
        assert src.read(i).shape == (3, 32, 32)


def test_unreadable_image_names_the_file_and_a_batch_goes_on(tmp_path):
    Image.new("RGB", (40, 30), (1, 2, 3)).save(tmp_path / "good.png")
    (tmp_path / "broken.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        read_image(tmp_path / "broken.jpg")
    batch = load_batch(FolderSource(tmp_path), crop=16, resize=20)
    assert batch.names == ["good"] and batch.images.shape == (1, 3, 16, 16)
    assert len(batch.failures) == 1 and "broken.jpg" in batch.failures[0][0]


def test_unknown_source_says_what_is_valid(tmp_path):
    with pytest.raises(InputError, match="kodak"):
        open_source("no-such-source")
    with pytest.raises(InputError, match="split"):
        cifar10("val")


def test_resized_images_stay_inside_the_pixel_box(shared_data):
    """Antialiased resampling rounds a hair past 1.0 at times (a Kodak image at resnet50's 232 → 224 did);
    loaded images are clamped, since the deployed codec and the attacks refuse anything outside [0, 1]."""
    batch = load_batch(kodak(shared_data / "kodak"), range(4), resize=232, crop=224)
    assert batch.images.min() >= 0 and batch.images.max() <= 1
