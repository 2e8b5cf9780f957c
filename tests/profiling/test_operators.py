"""Per-operator profiles: tables that add up (or say why not), Chrome traces Perfetto opens, FLOPs per call."""

import importlib.util
import json

import pytest
import torch
from torch import nn

from liccs.core.errors import InputError
from liccs.engines.base import Runner
from liccs.profiling.op_runner import profile_runner
from liccs.profiling.op_tables import coverage, operator_table, shape_flops, trace_of
from liccs.profiling.operators import (
    OperatorProfile,
    OperatorProfileUnavailable,
    profile_openvino,
    profile_ort,
    profile_torch,
)
from liccs.profiling.trace import OpEvent, check_trace, write_trace

X = torch.rand(1, 3, 16, 16)
#: the net below: conv 3→8 3×3 same (16×16 out), ReLU, transposed conv 8→4 3×3 stride 2 (on 16×16 in)
HAND_FLOPS = 2 * (8 * 16 * 16 * 3 * 9) + 2 * (8 * 16 * 16 * 4 * 9)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(8, 4, 3, stride=2)).eval()


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ops") / "net.onnx"
    torch.onnx.export(_net(), X, str(path), dynamo=False, input_names=["x"], output_names=["y"])
    return path


def _profile(events: int, per_call_us: float, wall_ms: float, iterations: int = 2) -> OperatorProfile:
    evs = [OpEvent(f"n{i % events}", "Conv", ts_us=i * per_call_us, dur_us=per_call_us, iteration=i // events)
           for i in range(events * iterations)]
    return OperatorProfile("ort-cpu", evs, [(0.0, wall_ms * 1e3)] * iterations, [wall_ms] * iterations)


def test_operator_sum_far_from_the_stage_is_flagged_with_what_is_missing():
    prof = _profile(events=4, per_call_us=250.0, wall_ms=1.05)  # operators: 1.0 ms per run
    ok = coverage(prof, stage_ms=1.05)
    assert not ok["flagged"] and ok["missing"] == "" and ok["ops_ms"] == pytest.approx(1.0)
    assert ok["ops_over_profiled_wall"] == pytest.approx(1 / 1.05)  # run by run, against the runs' own wall time
    far = coverage(prof, stage_ms=2.0)
    assert far["flagged"] and far["ops_over_stage"] == pytest.approx(0.5)
    assert far["missing"].startswith("operators sum to 50% of the stage's timed p50 (1 of 2 ms per run), less")
    assert "the profiled runs themselves took 1.05 ms against the timed 2 ms" in far["missing"]
    assert "0.05 ms of the profiled run is in no operator's counter" in far["missing"]
    over = coverage(prof, stage_ms=0.5)
    assert over["flagged"] and "more than the stage" in over["missing"]


def test_operator_table_adds_calls_and_shares():
    table = operator_table(_profile(events=4, per_call_us=250.0, wall_ms=1.0, iterations=3), stage_ms=2.0)
    assert list(table["calls"]) == [3] * 4
    assert table["mean_ms"].tolist() == pytest.approx([0.25] * 4)
    assert table["share"].sum() == pytest.approx(0.5)


@pytest.mark.parametrize("engine", ["ort", "openvino", "torch"])
def test_trace_is_chrome_json_with_one_event_per_operator_call(engine, onnx_file, tmp_path):
    if engine == "openvino" and importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed")
    run = {"ort": lambda: profile_ort(onnx_file, {"x": X}, iterations=3, warmup=1),
           "openvino": lambda: profile_openvino(onnx_file, {"x": X}, iterations=3, warmup=1),
           "torch": lambda: profile_torch(_net(), [X], iterations=3, warmup=1)}[engine]
    prof = run()
    table = operator_table(prof)
    path = write_trace(tmp_path / "t.json", trace_of(prof, engine))
    trace = json.loads(path.read_text())
    ops = check_trace(trace)
    assert len(ops) == table["calls"].sum() == len(prof.events) > 0
    assert all(e["ph"] == "X" and isinstance(e["ts"], float) and e["dur"] >= 0 for e in ops)
    assert {e["args"]["iteration"] for e in ops} == {0, 1, 2}
    assert sum(1 for e in trace["traceEvents"] if e.get("cat") == "iteration") == 3
    # every call counted once: FLOPs per run match the hand count (conv + transposed conv)
    assert (table["gflop"].fillna(0) * table["calls"]).sum() * 1e9 / 3 == pytest.approx(HAND_FLOPS)
    assert set(table["precision"]) - {""} <= {"fp32"}


def test_check_trace_refuses_an_event_without_duration():
    with pytest.raises(InputError, match="lacks"):
        check_trace({"traceEvents": [{"name": "a", "ph": "X", "ts": 0.0, "pid": 1, "tid": 1}]})


def test_shape_flops_of_convolutions_and_matmuls():
    assert shape_flops("Conv", [[1, 3, 8, 8], [16, 3, 3, 3]], [[1, 16, 8, 8]]) == 2 * 16 * 64 * 27
    assert shape_flops("ConvTranspose", [[1, 8, 4, 4], [8, 2, 5, 5]], [[1, 2, 8, 8]]) == 2 * 8 * 16 * 50
    assert shape_flops("MatMul", [[2, 5, 7], [7, 3]], [[2, 5, 3]]) == 2 * 30 * 7
    assert shape_flops("Relu", [[1, 8, 4, 4]], [[1, 8, 4, 4]]) == 0


class _Other(Runner):
    def activate_impl(self):
        raise AssertionError("never activated: refused before")

    def get_input_metadata_impl(self):
        return {}

    def infer_impl(self, feed):
        return {}


def test_a_runner_without_profiler_says_why():
    with pytest.raises(OperatorProfileUnavailable, match="no per-operator profiler for a _Other"):
        profile_runner(_Other("a>b:g_s"), {"x": X})


def test_int8_onnx_runtime_reports_the_precision_each_kernel_ran_in(onnx_file, tmp_path):
    from liccs.export.cache import ArtifactCache
    from liccs.export.quantize import Int8OnnxFromOnnx

    feeds = [{"x": torch.rand(1, 3, 16, 16).numpy()} for _ in range(2)]
    int8 = Int8OnnxFromOnnx(onnx_file, feeds, ArtifactCache(tmp_path))()
    table = operator_table(profile_ort(int8.path, {"x": X}, iterations=2, engine="ort-cpu-int8"))
    conv = table[table["op_type"] == "QLinearConv"]
    assert len(conv) == 1 and conv["precision"].iloc[0] == "u8"
    # the fused kernel's pre-packed weight is found in the Q/DQ graph: FLOPs still match the hand count
    assert (table["gflop"].fillna(0) * table["calls"]).sum() * 1e9 / 2 == pytest.approx(HAND_FLOPS)


HAVE_TRT = all(importlib.util.find_spec(m) is not None for m in ("tensorrt", "polygraphy"))


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(not (HAVE_TRT and torch.cuda.is_available()), reason="needs tensorrt, polygraphy and a CUDA GPU")
def test_tensorrt_layer_profile_is_a_trace_with_one_event_per_layer_call(onnx_file, tmp_path):
    from liccs.engines import ENGINES
    from liccs.export.cache import ArtifactCache

    profile = {"x": [(1, 3, 16, 16)] * 3}
    with ENGINES.get("trt-fp32").make_runner(onnx_file, profile=profile, cache=ArtifactCache(tmp_path)) as runner:
        prof = profile_runner(runner, {"x": X.numpy()}, iterations=3, engine="trt-fp32")
        assert runner.is_active  # the stage's runner is left as it was
    ops = check_trace(trace_of(prof, "trt"))
    assert len(ops) == operator_table(prof)["calls"].sum() > 0
    assert {e["args"]["iteration"] for e in ops} == {0, 1, 2}


@pytest.mark.parametrize("engine", ["torch", "ort-cpu"])
def test_profile_runner_reads_the_runner_s_own_graph_and_leaves_it_as_it_was(engine, tmp_cache):
    from liccs.engines import runner_for
    from liccs.export.graphs import GraphSpec, TensorSpec

    graph = GraphSpec("tiny", "net", _net(), (TensorSpec("x", 3),), ("y",), source_hash="tiny-net")
    with runner_for(engine, graph) as runner:
        before = runner.infer({"x": X})["y"]
        prof = profile_runner(runner, {"x": X}, iterations=2, engine=engine)
        assert runner.is_active
        torch.testing.assert_close(runner.infer({"x": X})["y"], before)
    table = operator_table(prof)
    assert prof.engine == engine and table["calls"].sum() == len(prof.events) > 0
    assert (table["gflop"].fillna(0) * table["calls"]).sum() * 1e9 / 2 == pytest.approx(HAND_FLOPS)
