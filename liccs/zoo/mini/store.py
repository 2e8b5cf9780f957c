"""Storage of the mini zoo's trained models: a cache keyed by config and code version, with sha256 checks.

Layout: ``cache_dir()/zoo/<name>-<key>/weights.pt`` (a state dict) and ``meta.json`` (the config, the
sha256 of ``weights.pt`` recorded at save time, the training log). A file whose sha256 no longer matches
is never loaded: :func:`cached` warns (:class:`MiniZooWarning`) and reports a miss, so it is retrained.

Committed fp16 weights (``liccs/zoo/weights/``, see :func:`export_fp16`) are the second place looked at,
so the models the default run needs are ready on a fresh machine without training.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import torch

from liccs.core.fileio import atomic_write_bytes, json_digest
from liccs.core.manifest import write_json
from liccs.core.paths import cache_dir
from liccs.zoo.weights import sha256_of

#: Bump when a change to the training code changes what a config trains to (invalidates every cache key).
CODE_VERSION = "mini-zoo-1"
#: Entropy-coder buffers derived from the weights (CompressAI's ``update()``), left out of committed weights.
ENTROPY_TABLES = ("._quantized_cdf", "._offset", "._cdf_length")
#: Committed fp16 weights, shipped as package data.
COMMITTED_DIR = Path(__file__).resolve().parents[1] / "weights"
#: Float tensors with fewer elements than this are committed in fp32.
FP16_MIN_NUMEL = 1024


class MiniZooWarning(UserWarning):
    """A mini-zoo cache entry that was not usable (corrupt, or from another config) and is being retrained."""


def config_key(kind: str, config: Any) -> str:
    """12 hex digits naming a trained model: hash of its kind, config and :data:`CODE_VERSION`."""
    cfg = config.key_fields() if hasattr(config, "key_fields") else asdict(config) if is_dataclass(config) else config
    return json_digest({"kind": kind, "config": cfg, "code": CODE_VERSION}, 12)


def entry_dir(name: str, key: str) -> Path:
    """The cache folder of one trained model (``name`` is e.g. ``mini-bmshj2018-hyperprior@q3``)."""
    return cache_dir() / "zoo" / f"{name.replace('@', '_')}-{key}"


def save(name: str, key: str, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``state`` and its meta (with the sha256 of the written file) atomically; returns the weights path."""
    d = entry_dir(name, key)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "weights.pt"
    buf = io.BytesIO()  # torch.save names its archive after the file: serialize in memory for stable bytes
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, buf)
    atomic_write_bytes(path, buf.getvalue())
    write_json(d / "meta.json", {**meta, "name": name, "key": key, "code_version": CODE_VERSION,
                                 "sha256": sha256_of(path)})
    return path


def read_meta(name: str, key: str) -> dict[str, Any] | None:
    """The meta of a cached model, or None when there is none (or it is unreadable)."""
    p = entry_dir(name, key) / "meta.json"
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def cached(name: str, key: str) -> Path | None:
    """The verified weights of a cached model, or None (with a :class:`MiniZooWarning` when it is corrupt)."""
    d = entry_dir(name, key)
    path = d / "weights.pt"
    if not path.exists() and not (d / "meta.json").exists():
        return None
    meta = read_meta(name, key)
    if not path.is_file() or meta is None or meta.get("sha256") != sha256_of(path):
        warnings.warn(f"mini-zoo cache entry {d} is corrupt or incomplete (its sha256 does not match the one "
                      f"recorded when it was saved); it will not be loaded and is being retrained", MiniZooWarning,
                      stacklevel=3)
        return None
    return path


def committed(name: str, key: str) -> Path | None:
    """Committed fp16 weights of ``name`` for this exact config key, verified against ``index.json``."""
    index_path = COMMITTED_DIR / "index.json"
    if not index_path.is_file():
        return None
    rec = json.loads(index_path.read_text()).get(name)
    if rec is None or rec.get("key") != key:
        return None
    path = COMMITTED_DIR / rec["file"]
    if not path.is_file() or sha256_of(path) != rec["sha256"]:
        warnings.warn(f"committed mini-zoo weights {path} do not match the sha256 in {index_path}; "
                      "they will not be loaded", MiniZooWarning, stacklevel=3)
        return None
    return path


@dataclass(frozen=True)
class Found:
    """Where a mini-zoo model's bytes are, each verified: the shipped (committed) file and the liccs cache's."""

    shipped: Path | None
    cached: Path | None


def locate(name: str, key: str) -> Found:
    """One lookup of ``name`` under recipe ``key`` in both stores (:func:`committed`, :func:`cached`)."""
    return Found(committed(name, key), cached(name, key))


def fp16_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What a cached (fp32) state dict is shipped as.

    Small float tensors (bounds such as the 1e-9 likelihood floor, quantiles, GDN beta) stay fp32: fp16 would flush
    some of them to zero. Large ones (conv weights) become fp16. The entropy coder's CDF tables are stored empty:
    every load rebuilds them from the weights (``update(force=True)``).
    """
    return {k: (v.new_empty(0) if k.endswith(ENTROPY_TABLES) else
                v.half() if v.is_floating_point() and v.numel() >= FP16_MIN_NUMEL else v)
            for k, v in state.items()}


def same_training(cached_path: Path, shipped_path: Path) -> bool:
    """Whether a cached checkpoint is the one a shipped file was exported from (equal tensors after
    :func:`fp16_state`)."""
    a = fp16_state(torch.load(cached_path, map_location="cpu", weights_only=True))
    b = torch.load(shipped_path, map_location="cpu", weights_only=True)
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and
                                        torch.equal(a[k], b[k]) for k in a)


def shipped_entries(names_keys: list[tuple[str, str]]) -> dict[str, Path]:
    """The shipped (committed) file of each (name, key) that has one, verified."""
    return {n: p for n, k in names_keys if (p := committed(n, k)) is not None}


def export_fp16(names_keys: list[tuple[str, str]], out_dir: Path = COMMITTED_DIR,
                replace: bool = False) -> dict[str, Any]:
    """Copy cached models as fp16 state dicts (small and integer tensors unchanged) into ``out_dir`` with
    ``index.json``.
    ``replace``: the index holds exactly these models afterwards; the files of the others are removed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "index.json"
    index: dict[str, Any] = json.loads(index_path.read_text()) if index_path.is_file() else {}
    if replace:
        keep = {name for name, _ in names_keys}
        stale = {name: rec for name, rec in index.items() if name not in keep}
        index = {name: rec for name, rec in index.items() if name in keep}
    for name, key in names_keys:
        src = cached(name, key)
        if src is None:
            raise FileNotFoundError(f"{name} ({key}) is not in the mini-zoo cache; train it first")
        half = fp16_state(torch.load(src, map_location="cpu", weights_only=True))
        fname = f"{name.replace('@', '_')}.pt"
        torch.save(half, out_dir / fname)
        index[name] = {"file": fname, "key": key, "sha256": sha256_of(out_dir / fname),
                       "bytes": (out_dir / fname).stat().st_size}
    write_json(index_path, dict(sorted(index.items())))
    for rec in stale.values() if replace else ():
        (out_dir / rec["file"]).unlink(missing_ok=True)
    return index
