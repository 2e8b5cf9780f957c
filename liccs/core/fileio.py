"""File helpers every layer shares: content hashes, key digests, atomic writes and output folders.

An atomic write goes to a unique temporary file beside the target (same extension at the end, so tools that
look at it still work), is flushed to disk, then ``os.replace``-d into place: a crash never leaves a
half-written file that looks valid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from liccs.core.errors import InputError

log = logging.getLogger(__name__)


def output_dir(path: str | os.PathLike[str]) -> Path:
    """Make the output folder ``path`` (with its parents); a file in the way, or a folder that cannot be made,
    is an :class:`InputError` naming it."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((q for q in (p, *p.parents) if q.exists() and not q.is_dir()), p)
        raise InputError(f"output folder {p} cannot be made: {blocker} is a file") from None
    except OSError as e:  # a read-only file system, permissions
        raise InputError(f"output folder {p} cannot be made: {e.strerror}") from None
    return p


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


#: the entry of a keyed record that holds the digest of everything else in it (:func:`save_keyed`)
DIGEST = "sha256"


def _digest(obj: Any, h: Any = None) -> str:
    """sha256 over a record's contents: tensors (dtype, shape, bytes), containers in order, other values' reprs."""
    h = hashlib.sha256() if h is None else h
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        h.update(b"D")
        for k in sorted(obj, key=str):
            if k != DIGEST:
                h.update(repr(k).encode())
                _digest(obj[k], h)
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for v in obj:
            _digest(v, h)
    else:
        h.update(f"V{obj!r}".encode())
    return h.hexdigest()


def save_keyed(path: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """``torch.save`` ``record`` (with its ``"key"``) atomically, with the digest :func:`load_keyed` verifies."""
    record = {**record, DIGEST: _digest(record)}
    return atomic_write(path, lambda tmp: torch.save(record, tmp))


def load_keyed(path: str | os.PathLike[str], key: str) -> dict[str, Any] | None:
    """The record :func:`save_keyed` stored at ``path`` under ``key``, else None: how a cached result (adversarial
    images, ...) is found again.

    A cached file is not trusted: one that does not load (truncated, damaged), is not such a record, or whose
    contents do not match their digest (a flipped bit in a tensor loads silently) is named in a warning and
    treated as absent, so that it is recomputed."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        hit = torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001  (a damaged pickle raises anything: UnpicklingError, KeyError, ...)
        log.warning("cached record %s is unreadable (%s: %s); recomputing it", path, type(e).__name__,
                    str(e).splitlines()[0][:200] if str(e) else "")
        return None
    if not isinstance(hit, dict) or hit.get("key") != key:
        return None
    if hit.get(DIGEST) != _digest(hit):
        log.warning("cached record %s does not match its digest (damaged, or written before liccs kept one); "
                    "recomputing it", path)
        return None
    return hit
