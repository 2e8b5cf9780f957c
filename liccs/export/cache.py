"""The artifact cache: every built file (ONNX, int8 ONNX, AOTInductor package, ...) under a key.

The key is a dict (source hash of weights + code, precision, shapes, library versions, device); its
sha256 names the file. A file is written to a temporary name in the same folder and moved into place
with ``os.replace``; its sidecar ``<file>.json`` (key, size, sha256) is written the same way *after* it,
so a crash at any point leaves either no entry or a complete one. A lookup checks the sidecar's key,
size and sha256; a file that fails the check is rebuilt (and the reason logged).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liccs.core.fileio import atomic_write, json_digest, sha256_file  # noqa: F401  (atomic_write re-exported)
from liccs.core.paths import cache_dir

log = logging.getLogger(__name__)


def key_digest(key: Mapping[str, Any]) -> str:
    """sha256 of a key (JSON with sorted keys)."""
    return json_digest(key)


file_sha256 = sha256_file


@dataclass
class Artifact:
    """A built file, its key and what the build recorded (exporter, timings, ...); ``cached``: a hit."""

    path: Path
    key: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    cached: bool = False


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._+-]+", "_", text)[:80]


class ArtifactCache:
    """Files under ``root/<kind>/<label>-<digest>.<suffix>`` (default root: ``$LICCS_CACHE/artifacts``)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "artifacts"

    def path_for(self, kind: str, label: str, key: Mapping[str, Any], suffix: str) -> Path:
        """Where the artifact of ``key`` lives: ``root/<kind>/<label>-<digest[:16]><suffix>``."""
        return self.root / kind / f"{_slug(label)}-{key_digest(key)[:16]}{suffix}"

    @staticmethod
    def sidecar(path: Path) -> Path:
        """The JSON sidecar beside an artifact: ``<name>.json``."""
        return path.with_name(path.name + ".json")

    def lookup(self, path: Path, key: Mapping[str, Any]) -> Artifact | None:
        """The artifact at ``path`` if its sidecar matches ``key`` and the file its size and sha256."""
        side = self.sidecar(path)
        if not path.is_file() or not side.is_file():
            return None
        try:
            rec = json.loads(side.read_text())
        except (OSError, json.JSONDecodeError) as e:
            log.warning("cache sidecar %s unreadable (%s); rebuilding", side, e)
            return None
        if rec.get("key_digest") != key_digest(key):
            return None
        if path.stat().st_size != rec.get("size") or file_sha256(path) != rec.get("sha256"):
            log.warning("cached artifact %s does not match its sidecar (truncated or changed); rebuilding", path)
            return None
        return Artifact(path, dict(key), rec.get("meta", {}), cached=True)

    def get_or_build(self, kind: str, label: str, key: Mapping[str, Any], suffix: str,
                     build: Callable[[Path], Mapping[str, Any]]) -> Artifact:
        """The cached artifact of ``key``, or ``build(tmp_path) → meta`` written atomically and recorded."""
        path = self.path_for(kind, label, key, suffix)
        hit = self.lookup(path, key)
        if hit is not None:
            return hit
        meta: dict[str, Any] = {}

        def write(tmp: Path) -> None:
            meta.update(build(tmp))

        atomic_write(path, write)
        rec = {"key": dict(key), "key_digest": key_digest(key), "size": path.stat().st_size,
               "sha256": file_sha256(path), "meta": meta}
        atomic_write(self.sidecar(path), lambda tmp: tmp.write_text(json.dumps(rec, indent=2, default=str)))
        return Artifact(path, dict(key), meta, cached=False)
