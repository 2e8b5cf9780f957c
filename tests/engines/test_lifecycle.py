"""The runner lifecycle (Polygraphy's contract): inactive until activated, ``with`` activates and deactivates (also
when the block raises), infer on an inactive runner is a clear error, deactivation releases what it held."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from liccs.core.errors import LiccsError, RunnerInactive
from liccs.engines import ENGINES, runner_for
from liccs.engines.codec import DeployedCodec
from liccs.export.cache import ArtifactCache
from liccs.export.graphs import GraphSpec, TensorSpec
from tests.engines.helpers import codec

X = torch.rand(2, 3, 16, 16)
SLOW = {"aoti", "torch-compile"}
#: what each backend holds while active (the session, compiled model, request, module or Polygraphy runner)
HELD = ("_session", "_compiled", "_request", "_fn", "_runner")


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # the input's name, as exporters read it
        return self.body(x)


def _graph() -> GraphSpec:
    return GraphSpec("lifecycle", "net", _Net().eval(), (TensorSpec("x", 3),), ("y",), source_hash="lifecycle-net")


def _held(runner: object) -> list[str]:
    return [a for a in HELD if getattr(runner, a, None) is not None]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> ArtifactCache:
    return ArtifactCache(tmp_path_factory.mktemp("lifecycle"))


def _runner(engine: str, cache: ArtifactCache):
    if not ENGINES.get(engine).available:
        pytest.skip(ENGINES.get(engine).unavailable_reason())
    return runner_for(engine, _graph(), cache, exporter="torchscript", calibration=[{"x": X.numpy()}])


ENGINE_PARAMS = [pytest.param(e, marks=pytest.mark.slow) if e in SLOW else e for e in ENGINES.names()]


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_infer_on_an_inactive_runner_raises_naming_it(engine, cache) -> None:
    runner = _runner(engine, cache)
    assert not runner.is_active
    for call in (lambda: runner.infer({"x": X}), runner.input_metadata, lambda: runner.check_feed({"x": X})):
        with pytest.raises(RunnerInactive, match=f"{runner.name}.*not active") as e:
            call()
        assert isinstance(e.value, LiccsError)
    assert not runner.is_active  # the error activated nothing


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_with_block_activates_then_releases(engine, cache) -> None:
    runner = _runner(engine, cache)
    assert runner.activate_s is None
    with runner as r:
        assert r is runner and runner.is_active and _held(runner)
        built = runner.activate_s  # what loading and building it took
        assert built is not None and built >= 0
        first = runner.infer({"x": X})["y"]
        runner.activate()  # idempotent: a no-op on an active runner
        assert runner.is_active and runner.activate_s == built
    assert not runner.is_active and _held(runner) == []
    with pytest.raises(RunnerInactive):
        runner.infer({"x": X})
    runner.deactivate()  # idempotent: a no-op on an inactive runner
    with runner:  # activated again after a deactivation: the same outputs
        torch.testing.assert_close(runner.infer({"x": X})["y"], first)
    assert not runner.is_active


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_with_block_deactivates_after_an_exception(engine, cache) -> None:
    runner = _runner(engine, cache)
    with pytest.raises(ZeroDivisionError):
        with runner:
            runner.infer({"x": X})
            1 / 0  # noqa: B018
    assert not runner.is_active and _held(runner) == []


def test_a_deployed_codec_as_a_context_manager_releases_its_stage_runners(cache) -> None:
    model = codec("bmshj2018-hyperprior@q1")
    x = torch.rand(1, 3, 64, 64)
    d = DeployedCodec.on_engine(model, "ort-cpu", cache, exporter="torchscript")
    runners = list(d.runners.values())
    assert d.is_active and all(r.is_active for r in runners)  # on_engine hands back an active codec
    with d:
        (blob,) = d.encode(x)
    assert not d.is_active and not any(r.is_active for r in runners) and not any(_held(r) for r in runners)
    with pytest.raises(RunnerInactive, match="g_a"):
        d.encode(x)
    with pytest.raises(KeyError), d:  # activated again, and released when the block raises
        d.decode(blob)
        raise KeyError("boom")
    assert not any(r.is_active for r in runners)
    with d:
        assert d.decode(blob)["x_hat"].shape == x.shape
    d.close()  # idempotent
    assert not d.is_active
