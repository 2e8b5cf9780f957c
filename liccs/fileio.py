"""File helpers every layer shares: content hashes, key digests and atomic writes.

An atomic write goes to a unique temporary file beside the target (same extension at the end, so tools that
look at it still work), is flushed to disk, then ``os.replace``-d into place: a crash never leaves a
half-written file that looks valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def json_digest(obj: Any, length: int | None = None) -> str:
    """Hex sha256 of ``obj`` as JSON with sorted keys (a stable cache key); first ``length`` digits if given."""
    blob = json.dumps(obj, sort_keys=True, default=str)  # the keys of committed weights depend on this form
    digest = hashlib.sha256(blob.encode()).hexdigest()
    return digest[:length] if length else digest


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place (all or nothing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".part{path.suffix}")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(bytes(data)))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def load_keyed(path: str | os.PathLike[str], key: str) -> dict[str, Any] | None:
    """The ``torch.save``-d record at ``path`` when it was stored under ``key`` (its ``"key"`` entry), else None:
    how a cached result (adversarial images, ...) is found again."""
    path = Path(path)
    hit = torch.load(path, weights_only=True) if path.is_file() else None
    return hit if hit is not None and hit.get("key") == key else None
