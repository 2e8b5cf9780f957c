"""Weight resolution: explicit checkpoint → local cache (torch hub) → download → a clear error.

Every loaded model carries a :class:`WeightsInfo` (``model.liccs_weights``) so that results record
which weights produced them.
"""

from __future__ import annotations

import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from liccs.core.errors import WeightsError
from liccs.core.fileio import sha256_file as sha256_of
from liccs.core.paths import hub_checkpoint_dir, offline

WeightsSource = Literal["random", "pretrained", "checkpoint", "mini-zoo"]
#: How long a download may wait for the server before liccs gives up (seconds).
DOWNLOAD_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class WeightsInfo:
    """Which weights a model carries: ``source`` plus the file and its sha256 (None for random).

    ``origin`` says where under that source the file came from (the mini zoo: ``shipped`` with the package, or the
    liccs ``cache``, trained on this machine by the model's recipe); ``note`` says why, when another file existed
    under the same name.
    """

    source: WeightsSource
    path: str | None = None
    sha256: str | None = None
    origin: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field as a dict."""
        return asdict(self)

    def __str__(self) -> str:
        if self.path is None:
            return self.source
        where = f"{self.source}/{self.origin}" if self.origin else self.source
        return f"{where}:{self.path} (sha256 {self.sha256[:12] if self.sha256 else '?'})"


@dataclass(frozen=True)
class ResolvedWeights:
    """A checkpoint chosen by a zoo's resolution: the file, where it came from, and why (when it matters)."""

    path: Path
    origin: str
    note: str | None = None


def _hash_prefix(filename: str) -> str | None:
    """torch hub's convention: ``name-<sha256 prefix>.ext``."""
    m = re.search(r"-([a-f0-9]{6,})\.", filename)
    return m.group(1) if m else None


def download(url: str, dst: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download ``url`` to ``dst`` atomically, checking torch hub's hash prefix when the name has one."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=dst.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
        prefix = _hash_prefix(dst.name)
        if prefix and not sha256_of(Path(tmp)).startswith(prefix):
            raise WeightsError(f"downloaded {url} does not match the hash in its name ({prefix})")
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dst


def resolve_pretrained(url: str, what: str) -> Path:
    """The local file of pretrained weights at ``url``: the hub cache, else a download, else an error.

    The error comes within seconds on a machine without network, and names the file and where to put it.
    """
    cached = hub_checkpoint_dir() / Path(url).name
    if cached.is_file():
        return cached
    how = (
        f"pretrained weights for {what} are not in the local cache. Download {url} on a machine with "
        f"network access and place it at {cached} (or pass weights=PATH to an explicit checkpoint)"
    )
    if offline():
        raise WeightsError(f"{how}; LICCS_OFFLINE is set, so no download was tried")
    try:
        return download(url, cached)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
        raise WeightsError(f"{how}; download failed: {e}") from None


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` (raw, or under a ``state_dict``/``model`` key), with clear errors."""
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} is not a file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a truncated or foreign file
        raise WeightsError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"checkpoint {path} does not hold a state dict of tensors")
    return obj


def load_state(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """``model.load_state_dict`` with an error that names the file and the mismatching keys."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        first = str(e).splitlines()
        detail = " ".join(line.strip() for line in first[:4])
        raise WeightsError(f"checkpoint {path} does not fit {what}: {detail}") from None


def random_weights_banner(models: Mapping[str, nn.Module]) -> str | None:
    """A line to print above any result computed with a model on random weights (None when every model is trained)."""
    names = [n for n, m in models.items() if getattr(getattr(m, "liccs_weights", None), "source", None) == "random"]
    if not names:
        return None
    return (f"RANDOM WEIGHTS: {', '.join(names)} {'is' if len(names) == 1 else 'are'} untrained; these numbers say "
            "nothing about trained models")
