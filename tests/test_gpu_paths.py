"""The GPU-only paths (skipped without CUDA): PyTorch engines on the GPU (fp32, fp16/bf16 autocast) against the
CPU, a runner never moving the shared (loaded) model, attacks on a GPU model from CPU images, and a tiny
``liccs run`` with ``run.device = "cuda"`` whose attacks run on the GPU and whose transfer covers the GPU
engines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from liccs.attack import PGD
from liccs.attack.threat import ThreatModel
from liccs.cli import main
from liccs.engines import runner_for
from liccs.export.cache import ArtifactCache
from liccs.export.graphs import codec_graphs
from liccs.pipeline import psnr
from liccs.zoo import load_codec

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def codec() -> torch.nn.Module:
    return load_codec("bmshj2018-hyperprior@q1", "random", seed=0)


@pytest.mark.parametrize("engine,min_psnr", [("torch", 60.0), ("torch-fp16", 30.0), ("torch-bf16", 25.0)])
def test_torch_engines_on_the_gpu_match_the_cpu(codec, tmp_path, engine, min_psnr):
    graph = codec_graphs(codec)[0]["reconstruct"]
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = graph.module(x)
    with runner_for(engine, graph, ArtifactCache(tmp_path)) as r:
        out = torch.as_tensor(next(iter(r.infer({"x": x.numpy()}).values())))
    assert out.shape == ref.shape and np.isfinite(out.numpy()).all()
    assert psnr(out.clamp(0, 1), ref.clamp(0, 1)).min().item() >= min_psnr
    # the runner worked on a copy: the loaded model (shared with the attacks and the exports) stays on the CPU
    assert next(codec.parameters()).device.type == "cpu"


def test_attack_on_a_gpu_model_takes_and_returns_cpu_images():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 16 * 16, 10)).cuda().eval()
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3])
    adv = PGD(model, eps=8 / 255, alpha=2 / 255, steps=3, random_start=True, seed=0)(x, y)
    assert adv.device.type == "cpu" and (adv - x).abs().max() <= 8 / 255 + 1e-6
    # the random start is drawn on the CPU generator: the same on every device
    t = ThreatModel("linf", 8 / 255)
    a = t.random_delta(x, torch.Generator().manual_seed(3))
    b = t.random_delta(x.cuda(), torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b.cpu())


def test_small_run_on_the_gpu(tmp_path, shared_data):
    """The default config's committed mini-zoo models (no training: a GPU machine may lack the training zips),
    a few images, every torch engine."""
    out = tmp_path / "run"
    engines = '["torch", "torch-fp16", "torch-bf16"]'
    rc = main(["run", str(ROOT / "liccs" / "configs" / "quick-cpu.toml"), "--no-progress", "--out", str(out),
               "--set", 'run.device="cuda"', "--set", f"export.engines={engines}",
               "--set", f"transfer.engines={engines}", "--set", "profile.cuda_graph=true",
               "--set", "data.images=8", "--set", "data.batch_size=8", "--set", "attack.steps=2",
               "--set", "profile.batch_sizes=[1]", "--set", "profile.resolutions=[[64, 64]]"])
    assert rc == 0
    transfer = (out / "tables" / "transfer.csv").read_text()
    for e in ("torch-fp16", "torch-bf16"):
        assert e in transfer
    assert (out / "tables" / "copy_compute.csv").is_file()
    man = json.loads((out / "manifest.json").read_text())
    assert man["device"]["cuda_available"] is True
