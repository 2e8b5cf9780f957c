"""The environment a result came from: versions, device, commit. Written beside every table."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from liccs.core import isa
from liccs.core.fileio import write_json  # noqa: F401  (re-exported: liccs.core.manifest.write_json)
from liccs.core.paths import PROJECT_ROOT

PACKAGES = ("liccs", "torch", "torchvision", "compressai", "onnx", "onnxruntime", "onnxruntime-gpu",
            "tensorrt", "numpy", "pandas")


def package_versions() -> dict[str, str | None]:
    """Installed version of each package that shapes a result (None when absent)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(root: Path = PROJECT_ROOT) -> str | None:
    """The checkout's commit (with ``-dirty`` when tracked files changed), or None outside git.

    ``$LICCS_COMMIT`` stands in where the tree was copied without its ``.git`` (a remote GPU machine).
    """
    if os.environ.get("LICCS_COMMIT"):
        return os.environ["LICCS_COMMIT"]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str | None:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else None: latencies and float results depend on it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return None


def device_info(engines: bool = True) -> dict[str, Any]:
    """CPU (architecture, model and ISA: features, native precisions, ONNX Runtime's int8 weight bits;
    :mod:`liccs.core.isa`), with ``engines`` what the engines report of it (OpenVINO's optimization capabilities,
    ONNX Runtime's providers), core count and (when present) the GPU, CUDA version and compute capability."""
    import torch

    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        **isa.this_cpu().as_dict(),
        **(isa.engine_fields() if engines else {}),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1),
                    compute_capability=f"{p.major}.{p.minor}", cuda=torch.version.cuda)
    return info


def manifest(config: dict[str, Any] | None = None, *, started_at: str | None = None, **extra: Any) -> dict[str, Any]:
    """Everything needed to know where a number came from. ``started_at``: the commit when a long job started
    (:func:`git_commit` then); it becomes ``commit``, and the one now is kept as ``commit_at_end`` if it moved."""
    now = git_commit()
    moved = {"commit_at_end": now} if started_at is not None and now != started_at else {}
    return {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "commit": started_at if started_at is not None else now,
        **moved,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "device": device_info(),
        "config": config or {},
        **extra,
    }
