"""``[export.deployments]``: deployed codecs whose stages run on different engines, checked before any work, built
as the config says (a choice measured once and then read from the cache), and readable by every fp32 decoder."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from liccs.config import ConfigError, RunConfig
from liccs.engines.codec import DeployedCodec
from liccs.export.cache import ArtifactCache
from liccs.profiling.timer import TimerConfig
from liccs.stages.deployments import (
    build_deployments,
    classifier_engine,
    device_engine,
    emulated_engine,
    parse_deployments,
)
from liccs.zoo import load_codec

FAST = TimerConfig(warmup=1, min_iters=2, min_duration_s=0.0)


def _cfg(deployments: dict, engines: tuple[str, ...] = ("torch", "ort-cpu", "ort-cpu-int8")) -> RunConfig:
    cfg = RunConfig()
    cfg.export.engines, cfg.export.deployments = list(engines), deployments
    return cfg


@pytest.mark.parametrize("deployments, key", [
    ({"ort-cpu": "auto"}, "export.deployments.ort-cpu"),  # an engine's name
    ({"2fast": "auto"}, "export.deployments.2fast"),
    ({"fast": {"g_x": "torch"}}, "export.deployments.fast.g_x"),
    ({"fast": {"g_s": "ort-cpu>nope"}}, "export.deployments.fast.g_s"),
    ({"fast": {"g_s": "a>b>c"}}, "export.deployments.fast.g_s"),
    ({"fast": {"classifier": "torch>ort-cpu"}}, "export.deployments.fast.classifier"),
    ({"fast": {"g_s": "ov-cpu/sub-pixel"}}, "export.deployments.fast.g_s: unknown transposed form.*sub-pixel-output"),
    ({"fast": {"g_s": "ov-gpu/four-phase"}}, "export.deployments.fast.g_s: unknown engine"),
    ({"fast": {"classifier": "ort-cpu/four-phase"}}, "export.deployments.fast.classifier: .*only a stage"),
    ({"fast": ["ort-cpu/four-phase"]}, r"export.deployments.fast\[0\]: .*only a stage"),
    ({"fast": ["torch", "ort-gpu"]}, r"export.deployments.fast\[1\]"),
    ({"fast": []}, "export.deployments.fast"),
    ({"fast": 3}, "export.deployments.fast"),
    ({"fast": "fastest"}, "export.deployments.fast"),
])
def test_a_bad_deployment_is_refused_naming_its_key(deployments: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        parse_deployments(_cfg(deployments))


def test_auto_chooses_among_the_fp32_export_engines() -> None:
    cfg = _cfg({"fast": "auto", "mine": {"g_s": "ov-cpu>ort-cpu", "classifier": "ort-cpu"}, "among": ["torch"]})
    assert parse_deployments(cfg) == {"fast": ["torch", "ort-cpu"], "mine": {"g_s": "ov-cpu>ort-cpu",
                                                                            "classifier": "ort-cpu"},
                                      "among": ["torch"]}
    assert classifier_engine(cfg, "mine") == "ort-cpu" and classifier_engine(cfg, "fast") == "torch"
    assert classifier_engine(cfg, "ort-cpu") == "ort-cpu" and device_engine(cfg, "mine") == "ov-cpu"
    assert device_engine(_cfg({"p": {"g_s": "ov-cpu/sub-pixel-output"}}), "p") == "ov-cpu"  # the form set aside
    with pytest.raises(ConfigError, match="no|none"):
        parse_deployments(_cfg({"fast": "auto"}, engines=("ort-cpu-int8",)))


def test_deployments_are_built_as_configured_and_decode_anywhere(tmp_path, kodak_crop) -> None:
    codecs = {n: load_codec(n, "random") for n in ("mini-tiny-bmshj2018-hyperprior@q1", "mini-bmshj2018-factorized@q1")}
    x = torch.nn.functional.interpolate(kodak_crop, size=(64, 64), mode="bilinear").clamp(0, 1)
    cache = ArtifactCache(tmp_path / "a")
    # h_a names a stage the factorized codec lacks: another codec's entry, not an error for this one
    cfg = _cfg({"fast": ["torch", "ort-cpu"], "mine": {"g_s": "ort-cpu>torch", "h_a": "ort-cpu"},
                "pinned": {"g_s": "ort-cpu/sub-pixel-output", "default": "ort-cpu"}})
    deployed, table, failed = build_deployments(cfg, codecs, x, cache, exporter="torchscript", timer=FAST)
    assert not failed and set(deployed) == {"fast", "mine", "pinned"}
    mine = table[table["deployment"] == "mine"].set_index(["codec", "stage"])["engine"]
    hyper = "mini-tiny-bmshj2018-hyperprior@q1"
    assert mine[(hyper, "g_s")] == "ort-cpu>torch" and mine[(hyper, "h_a")] == "ort-cpu"
    assert mine[(hyper, "g_a")] == "torch"  # left out, no default: torch
    assert set(table[table["deployment"] == "mine"]["chosen"]) == {"config"}
    pinned = table[table["deployment"] == "pinned"].set_index(["codec", "stage"])
    for name in codecs:  # the pinned form on g_s only (both codecs have a 3-channel output layer)
        assert pinned.loc[(name, "g_s"), "transposed"] == "sub-pixel-output"
        assert pinned.loc[(name, "g_s"), "engine"] == "ort-cpu" and pinned.loc[(name, "g_a"), "transposed"] == "native"
    fast = table[table["deployment"] == "fast"]
    assert set(fast["chosen"]) == {"measured"} and fast["p50_ms"].notna().all()
    for _, row in fast.iterrows():  # each stage on its fastest candidate (g_s: in either form), the times beside it
        times = pd.read_json(pd.io.common.StringIO(row["candidates_p50_ms"]), typ="series")
        forms = {"", "/sub-pixel-output"} if row["stage"] == "g_s" else {""}
        assert set(times.index) == {e + f for e in ("torch", "ort-cpu") for f in forms}
        engine, _, form = times.idxmin().partition("/")
        assert row["engine"] == engine and row["transposed"] == (form or "native")
    again = build_deployments(cfg, codecs, x, cache, exporter="torchscript", timer=FAST)[1]
    assert set(again[again["deployment"] == "fast"]["chosen"]) == {"cached"}
    for name, codec in codecs.items():  # every deployment's streams decode on the plain fp32 decoder
        ref = DeployedCodec.on_engine(codec, "ort-cpu", cache, exporter="torchscript")
        for d in (deployed["fast"][name], deployed["mine"][name], deployed["pinned"][name]):
            out = ref.decompress(**d.compress(x))
            assert all(out["tables_match"]) and out["x_hat"].shape == x.shape


def test_emulated_engines_and_deployments_on_them_are_named_for_the_profiles() -> None:
    cfg = _cfg({"mixed": {"g_a": "torch-cpu-bf16-emu", "default": "ort-cpu"}, "plain": {"default": "ort-cpu"},
                "fast": "auto"}, engines=("torch", "ort-cpu", "torch-cpu-bf16-emu"))
    assert emulated_engine(cfg, "torch-cpu-bf16-emu") == "torch-cpu-bf16-emu"
    assert emulated_engine(cfg, "mixed") == "torch-cpu-bf16-emu"
    assert emulated_engine(cfg, "plain") is None and emulated_engine(cfg, "ort-cpu") is None
    assert emulated_engine(cfg, "fast") is None  # auto chooses among fp32 engines only


def test_auto_over_precisions_is_declared_and_checked() -> None:
    engines = ("torch", "ort-cpu", "ort-cpu-int8", "torch-cpu-bf16-emu")
    cfg = _cfg({"fast": "auto"}, engines=engines)
    assert parse_deployments(cfg)["fast"] == ["torch", "ort-cpu"]  # fp32 only unless asked
    cfg.export.auto_precisions = ["fp32", "int8", "bf16"]
    assert parse_deployments(cfg)["fast"] == ["torch", "ort-cpu", "ort-cpu-int8"]  # never the emulated one
    cfg.export.auto_precisions = ["fp33"]
    with pytest.raises(ConfigError, match=r"export.auto_precisions\[0\].*fp33.*valid: bf16, fp16, fp32, int8"):
        parse_deployments(cfg)
    cfg.export.auto_precisions, cfg.export.auto_rd_budget = ["fp32"], -0.1
    with pytest.raises(ConfigError, match="export.auto_rd_budget"):
        parse_deployments(cfg)
