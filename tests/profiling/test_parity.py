"""Parity: metrics and tolerances, the registry-wide acceptance on ort-cpu, int8's larger error shown, the
parity.json records, and ``liccs export``/``liccs check``."""

from __future__ import annotations

import json
import math

import pytest
import torch

from liccs.checks.parity import (
    ParityRecord,
    Tolerance,
    check_deployed,
    check_graph,
    compare,
    judge,
)
from liccs.cli import main
from liccs.data import kodak, to_float
from liccs.export.cache import ArtifactCache
from liccs.export.graphs import codec_graphs, stage_feeds
from liccs.families import family_of
from liccs.jobs.export import format_table, write_parity
from tests.engines.helpers import SMALL, codec, lowest_highest


def test_metrics_and_judgement():
    ref = torch.zeros(2, 3, 4, 4)
    out = ref.clone()
    out[0, 0, 0, 0] = 0.1
    m = compare([out], [ref], "image")
    assert m["max_abs_err"] == pytest.approx(0.1) and m["mean_abs_err"] == pytest.approx(0.1 / ref.numel())
    assert m["psnr_db"] == pytest.approx(10 * math.log10(48 / 0.01), rel=1e-4)  # worst image: one pixel off
    assert judge(m, Tolerance(max_abs_err=0.2)) == []
    assert judge(m, Tolerance(max_abs_err=0.01)) == ["max abs err 0.1 > 0.01"]
    assert "PSNR" in judge(m, Tolerance(max_abs_err=1, min_psnr_db=40))[0]
    logits = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    m = compare([logits.flip(1)], [logits], "logits")
    assert m["top1_agreement"] == 0.0 and "top-1" in judge(m, Tolerance(max_abs_err=10))[0]


@pytest.fixture(scope="module")
def sweep_cache(tmp_path_factory):
    return ArtifactCache(tmp_path_factory.mktemp("sweep"))


@pytest.mark.slow
@pytest.mark.parametrize("name", lowest_highest())
def test_every_codec_passes_parity_on_ort_cpu(name, kodak_crop, sweep_cache):
    """Acceptance: x̂ max abs error ≤ 1e-3 on ort-cpu for a Kodak crop of 75×117 (not multiples of 64): the
    ``reconstruct`` graph, or, for autoregressive models, the deployed codec (their decoder is a loop)."""
    model = codec(name)
    tol = Tolerance(max_abs_err=1e-3)
    if family_of(model).is_sequential:
        (rec,) = check_deployed(model, ["ort-cpu"], [kodak_crop], tolerance=tol, cache=sweep_cache,
                                exporter="torchscript")
    else:
        graph = codec_graphs(model)[0]["reconstruct"]
        (rec,) = check_graph(graph, ["ort-cpu"], [{"x": kodak_crop}], tolerance=tol, cache=sweep_cache,
                             exporter="torchscript")
    assert rec.status == "ok", rec.reason
    assert rec.passed, format_table([rec])
    assert rec.shapes[0][-2:] == [75, 117]
    if rec.stage == "codec":  # the deployed autoregressive loop writes CompressAI's own bytes
        assert rec.extra["payload_bytes"] == rec.extra["compressai_bytes"]


def test_int8_error_is_larger_and_reported(kodak_crop, shared_data, tmp_path):
    model = codec("bmshj2018-hyperprior@q1")
    graphs, _ = codec_graphs(model)
    calib_img = to_float(kodak(shared_data / "kodak").read(7))[None, :, :128, :128].contiguous()
    calib = [{k: v.numpy() for k, v in stage_feeds(model, calib_img)["g_a"].items()}]
    feeds = [{"x": torch.nn.functional.pad(kodak_crop, (0, 11, 0, 53), mode="replicate")}]
    records = check_graph(graphs["g_a"], ["ort-cpu", "ort-cpu-int8", "ort-cuda"], feeds,
                          tolerance=Tolerance(max_abs_err=1e-4), cache=ArtifactCache(tmp_path),
                          exporter="torchscript", calibration=calib)
    fp32, int8, cuda = records
    assert fp32.passed and int8.max_abs_err > 10 * fp32.max_abs_err
    assert int8.passed == (int8.max_abs_err <= 1e-4) and int8.tolerance["max_abs_err"] == 1e-4
    assert not int8.passed and "max abs err" in int8.failures[0]
    assert cuda.status == "unavailable" and cuda.passed is None and "GPU" in cuda.reason
    loose = check_graph(graphs["g_a"], ["ort-cpu-int8"], feeds, per_engine={"ort-cpu-int8": Tolerance(1.0)},
                        cache=ArtifactCache(tmp_path), exporter="torchscript", calibration=calib)
    assert loose[0].passed and loose[0].max_abs_err == pytest.approx(int8.max_abs_err)
    path = write_parity(records, tmp_path / "parity.json", {"why": "test"})
    data = json.loads(path.read_text())
    assert data["manifest"]["config"] == {"why": "test"} and len(data["records"]) == 3
    for r in data["records"]:
        assert {"model", "stage", "engine", "max_abs_err", "passed", "tolerance"} <= set(r)
    table = format_table(records)
    assert "FAIL max abs err" in table and "UNAVAILABLE" in table and "PASS" in table


def test_record_json_has_no_infinity():
    r = ParityRecord("m", "g_s", "torch", "x_hat", psnr_db=math.inf, passed=True)
    d = r.to_dict()
    assert d["psnr_db"] is None and d["extra"]["identical"] is True


def test_cli_export_then_check(tmp_path, shared_data, capsys):
    out = tmp_path / "out"
    args = ["--codec", SMALL, "--engine", "torch,ort-cpu,ort-cuda", "--weights", "random",
            "--images", str(shared_data / "kodak"), "--out", str(out), "--exporter", "torchscript"]
    assert main(["export", *args]) == 0
    data = json.loads((out / "parity.json").read_text())
    stages = {(r["stage"], r["engine"]) for r in data["records"]}
    assert {("g_a", "ort-cpu"), ("h_s", "ort-cpu"), ("reconstruct", "ort-cpu"), ("codec", "ort-cpu"),
            ("codec", "torch"), ("reconstruct", "ort-cuda")} <= stages
    assert all(r["passed"] for r in data["records"] if r["status"] == "ok")
    assert list((out / "artifacts" / "onnx").glob("*.onnx"))
    assert json.loads((out / "export_report.json").read_text())["records"]
    cross = json.loads((out / "cross_decode.json").read_text())["records"]
    assert {(c["encoder"], c["decoder"]) for c in cross} >= {("torch", "ort-cpu"), ("ort-cpu", "torch")}
    assert "PASS" in capsys.readouterr().out
    check = [*args, "--stages", "reconstruct", "--no-cross-decode", "--max-abs-err", "1e-12"]
    assert main(["check", *check]) == 1  # a tolerance ort-cpu cannot meet: check fails
    assert "FAIL max abs err" in capsys.readouterr().out


def test_export_skips_unreadable_images_and_runs_parity_on_one(tmp_path, shared_data, capsys):
    """A truncated PNG and a text file named .png are skipped and named; parity runs on the one good image."""
    images = tmp_path / "imgs"
    images.mkdir()
    good = (shared_data / "kodak").iterdir().__next__()
    (images / "a_truncated.png").write_bytes(good.read_bytes()[:200])
    (images / "b_notes.png").write_text("not an image")
    (images / "c_good.png").write_bytes(good.read_bytes())
    out = tmp_path / "out"
    assert main(["check", "--codec", SMALL, "--engine", "ort-cpu", "--weights", "random", "--images", str(images),
                 "--out", str(out), "--exporter", "torchscript", "--stages", "reconstruct", "--no-cross-decode"]) == 0
    printed = capsys.readouterr().out
    assert "skipped an unreadable image: a_truncated" in printed and "skipped an unreadable image: b_notes" in printed
    data = json.loads((out / "parity.json").read_text())
    assert len(data["manifest"]["config"]["skipped_images"]) == 2
    rec = [r for r in data["records"] if r["stage"] == "reconstruct"]
    assert rec and all(r["passed"] for r in rec)


def test_export_of_a_folder_without_a_readable_image_is_a_clear_error(tmp_path, capsys):
    images = tmp_path / "empty"
    images.mkdir()
    (images / "notes.png").write_text("not an image")
    assert main(["check", "--codec", SMALL, "--engine", "ort-cpu", "--weights", "random", "--images", str(images),
                 "--out", str(tmp_path / "o")]) == 2
    assert "no readable image" in capsys.readouterr().err
