"""The deployed codec in reduced precision: bf16 transforms with the hyper path in fp32 write streams that fp32
decoders read bit for bit; emulated bf16 computes bf16 numerics and is never timed; a per-stage choice holds
reduced-precision stages to a rate-distortion budget."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from liccs.core.errors import InputError
from liccs.engines import ENGINES
from liccs.engines.bf16_emulation import Bf16Emulation, to_bf16
from liccs.engines.bitstream import unframe
from liccs.engines.codec import TABLE_STAGES, DeployedCodec, engine_forms
from liccs.export.cache import ArtifactCache
from liccs.profiling.choose import choose_stage_engines
from liccs.profiling.timer import TimerConfig
from liccs.zoo import load_codec

FAST = TimerConfig(warmup=1, min_iters=2, min_duration_s=0.0)
TINY = ["mini-tiny-bmshj2018-hyperprior@q6", "mini-tiny-mbt2018-mean@q6"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ArtifactCache(tmp_path_factory.mktemp("precision"))


def _bf16_valued(t: torch.Tensor) -> bool:
    return torch.equal(t, to_bf16(t))


def test_emulation_is_a_convolution_of_bf16_operands() -> None:
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(1, 8, 9, 9, generator=g), torch.randn(4, 8, 3, 3, generator=g), torch.randn(4, generator=g)
    with Bf16Emulation():
        y = F.conv2d(x, w, b, padding=1)
        t = F.conv_transpose2d(x, w.transpose(0, 1), stride=2)
        z = torch.sqrt(x.abs())  # element-wise: left in fp32
    assert torch.equal(y, to_bf16(F.conv2d(to_bf16(x), to_bf16(w), to_bf16(b), padding=1)))
    assert _bf16_valued(y) and _bf16_valued(t) and not _bf16_valued(z)
    assert not torch.equal(y, F.conv2d(x, w, b, padding=1))  # it does change the numbers


def test_bf16_engines_declare_twin_and_form() -> None:
    for name in ("ov-cpu-bf16", "torch-cpu-bf16", "torch-cpu-bf16-emu"):
        spec = ENGINES.get(name)
        assert spec.precision == "bf16" and ENGINES.get(spec.fp32_twin).precision == "fp32"
    stages = ("g_a", "h_a", "h_s", "g_s")
    # OpenVINO has no bf16 transposed convolution: its bf16 transforms run four-phase, its fp32 twin natively
    forms = engine_forms({"default": "ov-cpu-bf16", "h_a": "ov-cpu", "h_s": "ov-cpu"}, stages)
    assert forms == {"g_a": "four-phase", "h_a": "native", "h_s": "native", "g_s": "four-phase"}
    assert set(engine_forms({"default": "torch-cpu-bf16-emu"}, stages).values()) == {"native"}
    assert ENGINES.get("torch-cpu-bf16-emu").emulated and not ENGINES.get("torch-cpu-bf16").emulated


@pytest.mark.parametrize("name", TINY)
def test_bf16_transforms_decode_bit_exact_on_fp32(name, kodak_crop, cache) -> None:
    codec = load_codec(name)
    with DeployedCodec.on_engine(codec, "torch-cpu-bf16-emu", cache) as d16, \
            DeployedCodec.on_engine(codec, "torch", cache) as d32:
        heads = {s: r.name.split(":")[0] for s, r in d16.runners.items()}
        assert all(heads[s] == ("torch" if s in TABLE_STAGES else "torch-cpu-bf16-emu") for s in heads)
        y16 = d16.run_stage("g_a", "x", kodak_crop)
        assert not torch.equal(y16, d32.run_stage("g_a", "x", kodak_crop))  # g_a did run in bf16
        out = d16.compress(kodak_crop)
        parsed = [[unframe(s, "test") for s in lst] for lst in out["strings"]]
        shape = tuple(out["shape"])
        y_hat16, match16 = d16.coder.decode(d16, parsed, shape, "raise")
        y_hat32, match32 = d32.coder.decode(d32, parsed, shape, "raise")  # the fp32 decoder picks the same tables
        assert torch.equal(y_hat16, y_hat32) and all(match16) and all(match32)
        x16 = d16.decompress(**out)["x_hat"]
        x32 = d32.decompress(**out)["x_hat"]  # fp32 g_s on the same symbols: close, not equal
        assert 0 < (x16 - x32).abs().max().item() < 0.05


def test_choice_skips_emulated_and_holds_reduced_precision_to_budget(tmp_path, kodak_crop, cache) -> None:
    codec = load_codec(TINY[0])
    x = kodak_crop[..., :64, :64]
    emu = choose_stage_engines(codec, ["torch", "torch-cpu-bf16-emu"], x, cache=cache, config=FAST,
                               store=tmp_path / "a", rd_budget=0.01)
    assert "torch-cpu-bf16-emu" in emu["skipped"] and set(emu["engines"].values()) == {"torch"}
    with pytest.raises(InputError, match="rd_budget"):
        choose_stage_engines(codec, ["torch", "ort-cpu-int8"], x, cache=cache, config=FAST, store=tmp_path / "b")
    with pytest.raises(InputError, match="fp32"):
        choose_stage_engines(codec, ["ort-cpu-int8"], x, cache=cache, config=FAST, store=tmp_path / "b",
                             rd_budget=0.01)
    for budget, store in ((0.0, "c"), (10.0, "d")):
        c = choose_stage_engines(codec, ["torch", "ort-cpu-int8"], x, cache=cache, config=FAST,
                                 store=tmp_path / store, rd_budget=budget, calibration_images=x)
        assert all(c["engines"][s] == "torch" for s in TABLE_STAGES if s in c["engines"])  # tables stay fp32
        int8 = [s for s, e in c["engines"].items() if e == "ort-cpu-int8"]
        assert all(c["precision"][s] == ENGINES.get(e).precision for s, e in c["engines"].items())
        assert all(c["rd_cost"][s] <= budget for s in int8)  # a reduced stage wins only within the budget,
        assert len(int8) < 2 or c["rd_cost"]["all"] <= budget  # and several only where they stay in it together
        assert set(c["rd_cost"]) - {"all"} == {s for s, t in c["p50_ms"].items()
                                                if min(t, key=t.get) == "ort-cpu-int8"}
