"""Image sources (folder, ImageNet-style CSV, Kodak, CIFAR-10 zip) and pixel conversions.

Images are uint8 ``[3, H, W]`` RGB tensors as read; :func:`to_float` maps them to [0, 1] and
:func:`to_uint8` rounds back (never truncates). Codecs need sides that are multiples of 64:
:func:`pad_to_multiple` pads and :func:`crop_to` takes the exact original back.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from liccs.core import resize_center_crop
from liccs.core.errors import ImageReadError, InputError
from liccs.core.paths import data_dir, where_data
from liccs.core.progress import tqdm

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# --- pixels -------------------------------------------------------------------------------------


def pil_to_tensor(img: Image.Image) -> Tensor:
    """Any PIL image (L, LA, P, RGBA, CMYK, I;16, ...) → uint8 RGB ``[3, H, W]``.

    16-bit images (``I;16*``, and ``I`` with values above 255, as 16-bit PPM/PGM open) are scaled to 8 bits
    (``round(v / 257)``); Pillow's own conversion would clip every value above 255 to white."""
    if img.mode.startswith("I;16") or (img.mode == "I" and (img.getextrema()[1] or 0) > 255):
        wide = np.asarray(img, dtype=np.float64).clip(0, 65535)
        img = Image.fromarray(np.rint(wide / 257.0).astype(np.uint8), mode="L")
    if img.mode != "RGB":
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            # alpha composited over white, the way viewers show it
            rgba = img.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(bg, rgba)
        img = img.convert("RGB")
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def read_image(path: str | Path) -> Tensor:
    """Read an image file as uint8 RGB ``[3, H, W]``; unreadable files raise :class:`ImageReadError`."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            return pil_to_tensor(img)
    except FileNotFoundError:
        raise ImageReadError(f"image {path} does not exist") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"image {path} is too large to read: {e}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(f"image {path} cannot be read: {e}") from None


def to_float(x: Tensor) -> Tensor:
    """uint8 → float32 in [0, 1]."""
    if x.dtype != torch.uint8:
        raise InputError(f"to_float expects a uint8 tensor, got {x.dtype}")
    return x.float().div_(255.0)


def to_uint8(x: Tensor) -> Tensor:
    """float in [0, 1] → uint8, rounded to nearest (not truncated); values are clamped first."""
    if not x.is_floating_point():
        raise InputError(f"to_uint8 expects a float tensor, got {x.dtype}")
    return x.detach().clamp(0, 1).mul(255.0).round().to(torch.uint8)


def prepare(image: Tensor, resize: int | None, crop: int | None, interpolation: str = "bilinear") -> Tensor:
    """uint8 or float image → float [0, 1] at a classifier's input geometry (shorter side, centre crop)."""
    x = to_float(image) if image.dtype == torch.uint8 else image
    if crop is None:
        return x
    # antialiased resampling can round a hair past 1.0 (seen: a Kodak image at resnet50's 232 → 224), and
    # every consumer (the deployed codec, the attacks) refuses images outside [0, 1]
    return resize_center_crop(x.unsqueeze(0), resize or crop, crop, interpolation).squeeze(0).clamp_(0, 1)


# --- sources ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One image of a source: a name (file stem, unique within the source), the pixels, the label."""

    name: str
    image: Tensor
    label: int | None


class ImageSource:
    """A sequence of images addressed by index; ``load(i)`` reads pixels, ``describe(i)`` does not."""

    def __len__(self) -> int:
        raise NotImplementedError

    def describe(self, i: int) -> tuple[str, str, int | None]:
        """(name, location, label) of image ``i`` without reading it."""
        raise NotImplementedError

    def read(self, i: int) -> Tensor:
        """The pixels of image ``i`` as uint8 RGB ``[3, H, W]``; subclasses implement it."""
        raise NotImplementedError

    def load(self, i: int) -> Sample:
        """Image ``i`` read: its name, pixels and label."""
        name, _, label = self.describe(i)
        return Sample(name, self.read(i), label)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self.load(i)


class FolderSource(ImageSource):
    """Every image file directly in a folder (sorted); labels come from ``labels`` if given."""

    def __init__(self, root: str | Path, labels: dict[str, int] | None = None) -> None:
        self.root = Path(root)
        if self.root.is_file():
            raise ImageReadError(f"image folder {self.root} is a file, not a folder")
        if not self.root.is_dir():
            raise ImageReadError(f"image folder {self.root} does not exist{where_data(self.root)}")
        self.files = sorted(p for p in self.root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        seen: dict[str, Path] = {}
        for p in self.files:  # a name addresses one image (outputs, labels, attacked images are by stem)
            if p.stem in seen:
                raise InputError(f"image folder {self.root} has two images named {p.stem!r} ({seen[p.stem].name} "
                                 f"and {p.name}): an image's name is its file stem; rename one")
            seen[p.stem] = p
        self.labels = labels or {}

    def __len__(self) -> int:
        return len(self.files)

    def describe(self, i: int) -> tuple[str, str, int | None]:
        """(file stem, file path, label from ``labels`` or None) of image ``i``."""
        p = self.files[i]
        return p.stem, str(p), self.labels.get(p.stem)

    def read(self, i: int) -> Tensor:
        """The pixels of image ``i`` (:func:`read_image`)."""
        return read_image(self.files[i])


class CsvSource(ImageSource):
    """ImageNet-style CSV with columns ``file, class_index`` (and optionally ``wnid, name``)."""

    def __init__(self, csv_path: str | Path, root: str | Path | None = None) -> None:
        self.csv_path = Path(csv_path)
        if not self.csv_path.is_file():
            raise ImageReadError(f"CSV {self.csv_path} does not exist{where_data(self.csv_path)}")
        self.root = Path(root) if root else self.csv_path.with_suffix("")
        with open(self.csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        missing = {"file", "class_index"} - set(rows[0] if rows else {})
        if missing:
            raise InputError(f"CSV {self.csv_path} lacks column(s) {sorted(missing)}")
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def describe(self, i: int) -> tuple[str, str, int | None]:
        """(file stem, path under the root, ``class_index``) of row ``i``."""
        r = self.rows[i]
        return Path(r["file"]).stem, str(self.root / r["file"]), int(r["class_index"])

    def read(self, i: int) -> Tensor:
        """The pixels of row ``i``'s file under the root (:func:`read_image`)."""
        return read_image(self.root / self.rows[i]["file"])


class CifarZipSource(ImageSource):
    """CIFAR-10 read straight from its zip: members ``<split>/<class>/NNNN.jpg``, labels by sorted class."""

    def __init__(self, zip_path: str | Path, split: str | None = None, limit_per_class: int | None = None) -> None:
        self.zip_path = Path(zip_path)
        if not self.zip_path.is_file():
            raise ImageReadError(f"CIFAR zip {self.zip_path} does not exist{where_data(self.zip_path)}")
        self._zip: zipfile.ZipFile | None = None
        members = [n for n in self._open().namelist() if n.lower().endswith((".jpg", ".jpeg", ".png"))]
        entries: list[tuple[str, int]] = []
        counts: dict[int, int] = {}
        for n in sorted(members):
            parts = n.split("/")
            if len(parts) < 3 or (split and parts[-3] != split):
                continue
            if parts[-2] not in CIFAR10_CLASSES:
                raise InputError(f"{self.zip_path}: member {n} is in unknown class folder {parts[-2]!r}")
            label = CIFAR10_CLASSES.index(parts[-2])
            if limit_per_class is not None and counts.get(label, 0) >= limit_per_class:
                continue
            counts[label] = counts.get(label, 0) + 1
            entries.append((n, label))
        self.entries = entries

    def _open(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.zip_path)
        return self._zip

    def __getstate__(self) -> dict:  # zip handles do not pickle (DataLoader workers)
        return {**self.__dict__, "_zip": None}

    def __len__(self) -> int:
        return len(self.entries)

    def describe(self, i: int) -> tuple[str, str, int | None]:
        """(member path with ``/`` as ``_``, ``zip!member``, class index) of image ``i``."""
        n, label = self.entries[i]
        return n.rsplit(".", 1)[0].replace("/", "_"), f"{self.zip_path}!{n}", label

    def read(self, i: int) -> Tensor:
        """The pixels of image ``i``, decoded from the zip; an unreadable member raises :class:`ImageReadError`."""
        n, _ = self.entries[i]
        try:
            with Image.open(io.BytesIO(self._open().read(n))) as img:
                img.load()
                return pil_to_tensor(img)
        except (UnidentifiedImageError, OSError, ValueError, zipfile.BadZipFile, Image.DecompressionBombError) as e:
            raise ImageReadError(f"image {self.zip_path}!{n} cannot be read: {e}") from None


def kodak(root: str | Path | None = None) -> FolderSource:
    """The 24 Kodak images (``$LICCS_DATA/kodak``)."""
    return FolderSource(Path(root) if root else data_dir() / "kodak")


def imagenet_samples(root: str | Path | None = None) -> CsvSource:
    """One image per ImageNet-1k class, labels from the CSV's ``class_index``."""
    base = Path(root) if root else data_dir()
    return CsvSource(base / "imagenet-samples.csv", base / "imagenet-samples")


def cifar10(split: str = "test", root: str | Path | None = None, limit_per_class: int | None = None) -> CifarZipSource:
    """CIFAR-10 ``train`` or ``test`` split from ``cifar10-<split>.zip``."""
    if split not in ("train", "test"):
        raise InputError(f"CIFAR-10 split must be 'train' or 'test', got {split!r}")
    base = Path(root) if root else data_dir()
    return CifarZipSource(base / f"cifar10-{split}.zip", split, limit_per_class)


SOURCES = {"kodak": kodak, "imagenet-samples": imagenet_samples, "cifar10-test": lambda: cifar10("test"),
           "cifar10-train": lambda: cifar10("train")}


def open_source(spec: str | Path) -> ImageSource:
    """A source by name (``kodak``, ``imagenet-samples``, ``cifar10-test``...), CSV path, or folder path."""
    if isinstance(spec, str) and spec in SOURCES:
        return SOURCES[spec]()
    path = Path(spec)
    if path.suffix.lower() == ".csv":
        return CsvSource(path)
    if path.is_dir():
        return FolderSource(path)
    raise InputError(f"image source {str(spec)!r} is neither a folder, a CSV, nor one of {sorted(SOURCES)}")


@dataclass
class Batch:
    """Images that loaded (a stacked float tensor when they share a size, else a list) and failures."""

    images: Tensor | list[Tensor]
    names: list[str]
    labels: list[int | None]
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def label_tensor(self) -> Tensor:
        """The labels as a long tensor ``[B]``; refused when an image has no label."""
        if any(v is None for v in self.labels):
            raise InputError("some images of this batch have no label")
        return torch.tensor(self.labels, dtype=torch.long)


def load_batch(
    source: ImageSource,
    indices: Sequence[int] | None = None,
    *,
    resize: int | None = None,
    crop: int | None = None,
    interpolation: str = "bilinear",
    progress: bool = False,
) -> Batch:
    """Load images as float [0, 1]; unreadable ones are skipped and counted in ``failures``.

    With ``crop`` the images are resized (shorter side ``resize``) and centre-cropped to one size
    and stacked into ``[N, 3, crop, crop]``; otherwise they are stacked only if they share a size.
    """
    idx = list(range(len(source))) if indices is None else list(indices)
    images: list[Tensor] = []
    names: list[str] = []
    labels: list[int | None] = []
    failures: list[tuple[str, str]] = []
    for i in tqdm(idx, desc="loading images", disable=not progress, leave=False):
        name, where, label = source.describe(i)
        try:
            img = source.read(i)
        except ImageReadError as e:
            failures.append((where, str(e)))
            continue
        images.append(prepare(img, resize, crop, interpolation))
        names.append(name)
        labels.append(label)
    same = len({tuple(x.shape) for x in images}) == 1
    return Batch(torch.stack(images) if images and same else images, names, labels, failures)
