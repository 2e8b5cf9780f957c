"""Where liccs finds the shared data and keeps its cache (both overridable by environment variables)."""

from __future__ import annotations

import os
from pathlib import Path

import torch.hub

#: The project's root when liccs runs from a checkout (flat layout: liccs/ sits in the root).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The shared image data: ``$LICCS_DATA``, else ``../shared/data`` beside the project root."""
    env = os.environ.get("LICCS_DATA")
    if env:
        return Path(env).expanduser()
    candidates = [PROJECT_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]


def where_data(path: str | os.PathLike[str]) -> str:
    """For an error about a missing ``path`` inside the shared data: where liccs looked, and how to point it at the
    data (empty when ``path`` is not under :func:`data_dir`)."""
    base = data_dir()
    if not Path(path).resolve().is_relative_to(base.resolve()):
        return ""
    how = (f"LICCS_DATA={os.environ['LICCS_DATA']}" if os.environ.get("LICCS_DATA")
           else f"LICCS_DATA is unset, and the checkout's ../shared/data ({PROJECT_ROOT.parent / 'shared' / 'data'}) "
                "was tried")
    return f" ({how}): set LICCS_DATA to the folder that holds kodak/, imagenet-samples/ and cifar10-*.zip"


def cache_dir() -> Path:
    """liccs's own cache (exports, engines, trained models): ``$LICCS_CACHE``, else ``~/.cache/liccs``."""
    env = os.environ.get("LICCS_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "liccs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def hub_checkpoint_dir() -> Path:
    """torch hub's checkpoints folder, where pretrained weights are looked for and downloaded to."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def offline() -> bool:
    """True when ``LICCS_OFFLINE=1``: never try to download."""
    return os.environ.get("LICCS_OFFLINE", "0") not in ("", "0", "false", "False")
