"""Engines: the registry, unavailability reasons, every engine that runs here, bad feeds."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from liccs.core.errors import InputError
from liccs.core.paths import PROJECT_ROOT
from liccs.engines import ENGINES, EngineUnavailable, available_engines, get_engine, runner_for
from liccs.export.cache import ArtifactCache
from liccs.export.graphs import codec_graphs, stage_feeds
from tests.engines.helpers import codec

ISSUE_ENGINES = {"torch", "torch-fp16", "torch-bf16", "torch-compile", "aoti", "ort-cpu", "ort-cpu-int8", "ort-cuda",
                 "ort-cuda-fp16", "ort-trt-fp16", "ov-cpu", "ov-cpu-int8"}
#: engines that compile C++ on first use (tens of seconds on this CPU): one small graph only
SLOW = {"aoti", "torch-compile"}


def test_every_engine_of_the_issue_is_registered():
    assert ISSUE_ENGINES <= set(ENGINES.names())


@pytest.mark.parametrize("name", ENGINES.names())
def test_unavailable_engines_say_why_and_what_to_install(name):
    spec = ENGINES.get(name)
    if spec.available:
        assert get_engine(name) is spec
        return
    reason = spec.unavailable_reason()
    assert name in reason and ("install" in reason or "GPU" in reason or "is skipped: this CPU" in reason)
    with pytest.raises(EngineUnavailable, match=name):
        get_engine(name)


def test_import_needs_no_optional_library():
    code = ("import sys, liccs.engines as e; assert len(e.ENGINES) >= 10; "
            "print(sorted(m for m in ('tensorrt', 'pycuda') if m in sys.modules))")  # torch itself imports 'cuda'
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_cpu_engines_are_available_here():
    assert {"torch", "torch-compile", "aoti", "ort-cpu", "ort-cpu-int8"} <= set(available_engines())


@pytest.fixture(scope="module")
def stage(tmp_path_factory, kodak_crop, shared_data):
    """h_s of the smallest hyperprior, its real inputs at two sizes, a cache."""
    model = codec("bmshj2018-hyperprior@q1")
    graph = codec_graphs(model, with_reconstruct=False)[0]["h_s"]
    from liccs.data import kodak, to_float

    other = to_float(kodak(shared_data / "kodak").read(5))[None, :, :130, :200].repeat(2, 1, 1, 1)
    feeds = [stage_feeds(model, kodak_crop)["h_s"], stage_feeds(model, other)["h_s"]]
    return graph, feeds, ArtifactCache(tmp_path_factory.mktemp("engines"))


@pytest.mark.parametrize("engine", [pytest.param(e, marks=pytest.mark.slow) if e in SLOW else e
                                    for e in sorted(ISSUE_ENGINES)])
def test_engine_runs_two_sizes_through_one_artifact(engine, stage):
    """Each engine this machine can run: two input sizes (and batch sizes) through one dynamic artifact."""
    if not ENGINES.get(engine).available:
        pytest.skip(ENGINES.get(engine).unavailable_reason())
    graph, feeds, cache = stage
    calib = [{k: v.numpy() for k, v in feeds[0].items()}]
    runner = runner_for(engine, graph, cache, exporter="torchscript", calibration=calib)
    tol = 5e-2 if engine.endswith("int8") else 1e-4
    with runner:
        for feed in feeds:
            ref = graph.reference(*feed.values())
            out = runner.infer(feed)["params"]
            assert isinstance(out, torch.Tensor) and out.shape == ref.shape
            assert (out - ref).abs().max().item() <= tol
            out_np = runner.infer({k: v.numpy() for k, v in feed.items()})["params"]
            assert isinstance(out_np, np.ndarray) and out_np.shape == tuple(ref.shape)


@pytest.mark.parametrize("engine", ["torch", "ort-cpu", "ov-cpu"])
def test_bad_feeds_name_the_tensor(engine, tmp_path):
    if not ENGINES.get(engine).available:
        pytest.skip(ENGINES.get(engine).unavailable_reason())
    model = codec("bmshj2018-hyperprior@q1")
    graph = codec_graphs(model)[0]["reconstruct"]
    x = torch.rand(1, 3, 70, 90)
    with runner_for(engine, graph, ArtifactCache(tmp_path), exporter="torchscript") as r:
        for bad, msg in [(x.double(), "must be float32"), (x[0], "must have rank 4"),
                         (x[:, :2], "dimension 1 must be 3"), (x * 255, r"must lie in \[0, 1\]"),
                         (x.masked_fill(x > 0.5, float("nan")), "NaN")]:
            with pytest.raises(InputError, match=f"'x'.*{msg}|{msg}"):
                r.infer({"x": bad})
        with pytest.raises(InputError, match="missing"):
            r.infer({"image": x})
