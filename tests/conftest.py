"""Shared fixtures: real images from ../shared/data (or $LICCS_DATA), small and cached per session."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

from liccs.core.paths import data_dir
from liccs.data import kodak, to_float

os.environ.setdefault("LICCS_OFFLINE", "1")  # tests never download
# Every test session starts from an empty liccs cache: no state left by earlier runs, nothing written to the
# user's own cache, and the suite's time is a fresh machine's.
os.environ["LICCS_CACHE"] = tempfile.mkdtemp(prefix="liccs-test-cache-")
# Under pytest-xdist the cores are shared among its workers: each takes its share, at most 2 threads.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _WORKERS)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cuda = torch.cuda.is_available()
    try:
        import tensorrt  # noqa: F401

        trt = hasattr(tensorrt, "Builder")
    except ImportError:
        trt = False
    for item in items:
        if item.get_closest_marker("gpu") and not cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; none is visible on this machine"))
        if item.get_closest_marker("tensorrt") and not trt:
            item.add_marker(pytest.mark.skip(
                reason="needs TensorRT with its builder (pip install 'liccs[tensorrt]' from NVIDIA's index); "
                       "not installable on this machine"))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: a worker per core, at most 4 (each imports torch and holds its own models and cache)."""
    return max(1, min(4, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_data():
    d = data_dir()
    if not (d / "kodak").is_dir():
        pytest.skip(f"shared data not found at {d} (set LICCS_DATA)")
    return d


@pytest.fixture(scope="session")
def kodak_crop(shared_data) -> torch.Tensor:
    """A real Kodak crop, [1, 3, 75, 117]: sides that are not multiples of 64."""
    img = to_float(kodak(shared_data / "kodak").read(0))
    return img[None, :, 200:275, 300:417].contiguous()


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch):
    """An empty liccs cache and torch hub folder for one test."""
    monkeypatch.setenv("LICCS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import torch.hub

    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for every Ray test of the session: its start, and its workers' imports of liccs,
    torch and the models, are paid once (about 10 s each time on 2 cores). Shut down when the session ends."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'liccs[distributed]')")
    from liccs.core.executor import RayExecutor

    RayExecutor(num_cpus=2).start()
    yield ray
    ray.shutdown()

