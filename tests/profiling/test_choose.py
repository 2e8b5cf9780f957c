"""The fastest engine per codec stage: measured once, cached under the model and machine, usable as a codec."""

from __future__ import annotations

import json

import torch

from liccs.engines.codec import DeployedCodec
from liccs.export.cache import ArtifactCache
from liccs.profiling.choose import choose_stage_engines
from liccs.profiling.timer import TimerConfig
from liccs.zoo import load_codec

FAST = TimerConfig(warmup=1, min_iters=2, min_duration_s=0.0)


def test_auto_choice_is_measured_cached_and_deploys(tmp_path, kodak_crop) -> None:
    codec = load_codec("mini-tiny-bmshj2018-hyperprior@q1", "random")
    x = torch.nn.functional.interpolate(kodak_crop, size=(64, 64), mode="bilinear").clamp(0, 1)
    cache, store = ArtifactCache(tmp_path / "a"), tmp_path / "choices"
    forms = ("native", "four-phase")
    first = choose_stage_engines(codec, ["torch", "ort-cpu", "ort-cuda"], x, cache=cache, config=FAST, store=store,
                                 forms=forms, exporter="torchscript")
    assert not first["cached"] and "ort-cuda" in first["skipped"]  # cannot run here: said, not fatal
    assert set(first["engines"]) >= {"g_a", "h_a", "h_s", "g_s"}
    assert "ort-cpu/four-phase" in first["p50_ms"]["g_s"] and "ort-cpu/four-phase" not in first["p50_ms"]["g_a"]
    for stage, engine in first["engines"].items():  # the fastest measured candidate, engine and form
        best = min(first["p50_ms"][stage], key=first["p50_ms"][stage].get)
        form = first["transposed"][stage]
        assert best == (engine if form == "native" else f"{engine}/{form}")
    again = choose_stage_engines(codec, ["torch", "ort-cpu", "ort-cuda"], x, cache=cache, config=FAST, store=store,
                                 forms=forms, exporter="torchscript")
    assert again["cached"] and again["engines"] == first["engines"]
    other = choose_stage_engines(codec, ["torch"], x, cache=cache, config=FAST, store=store, exporter="torchscript")
    assert not other["cached"]  # other candidates, another key
    mixed = DeployedCodec.on_engine(codec, first["engines"], cache, transposed=first["transposed"],
                                    exporter="torchscript")
    assert mixed.transposed == {s: first["transposed"].get(s, "native") for s in mixed.transposed}
    ref = DeployedCodec.on_engine(codec, "torch", cache, exporter="torchscript")
    out = ref.decompress(**mixed.compress(x))  # the fp32 decoder reads the mixed encoder's streams
    assert all(out["tables_match"]) and out["x_hat"].shape == x.shape


def test_a_split_engine_is_a_candidate_like_any_other(tmp_path, kodak_crop) -> None:
    """'A>B' (a stage on A, its output layer on B) is measured on every stage and, when fastest, deploys as chosen."""
    codec = load_codec("mini-tiny-bmshj2018-hyperprior@q1", "random")
    x = torch.nn.functional.interpolate(kodak_crop, size=(64, 64), mode="bilinear").clamp(0, 1)
    cache = ArtifactCache(tmp_path / "a")
    choice = choose_stage_engines(codec, ["torch", "ort-cpu>torch"], x, cache=cache, config=FAST,
                                  store=tmp_path / "choices", exporter="torchscript")
    assert all("ort-cpu>torch" in choice["p50_ms"][s] for s in ("g_a", "h_a", "h_s", "g_s"))
    forced = {s: "ort-cpu>torch" for s in choice["engines"]}  # whatever was fastest, the split deploys
    d = DeployedCodec.on_engine(codec, forced, cache, exporter="torchscript")
    out = DeployedCodec.on_engine(codec, "torch", cache, exporter="torchscript").decompress(**d.compress(x))
    assert all(out["tables_match"]) and out["x_hat"].shape == x.shape


def test_a_damaged_cached_choice_is_named_and_measured_again(tmp_path, kodak_crop, caplog) -> None:
    codec = load_codec("mini-tiny-bmshj2018-hyperprior@q1", "random")
    x = torch.nn.functional.interpolate(kodak_crop, size=(64, 64), mode="bilinear").clamp(0, 1)
    cache, store = ArtifactCache(tmp_path / "a"), tmp_path / "choices"
    first = choose_stage_engines(codec, ["torch"], x, cache=cache, config=FAST, store=store)
    (path,) = store.glob("*.json")
    record = json.loads(path.read_text())
    for damaged in (path.read_text()[:40], json.dumps(record | {"engines": {"g_s": "trt-fp16"}})):
        path.write_text(damaged)
        caplog.clear()
        again = choose_stage_engines(codec, ["torch"], x, cache=cache, config=FAST, store=store)
        assert not again["cached"] and again["engines"] == first["engines"]
        assert str(path) in caplog.text and "measuring again" in caplog.text
