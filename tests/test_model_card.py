"""The model card: MACs a person can count by hand, artifact sizes by kind."""

import pytest
import torch
from torch import nn

from liccs.stages.model_card import MIB, artifact_kind, artifact_sizes, macs


def test_macs_of_two_convolutions_match_the_hand_count():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, stride=2, groups=2))
    x = torch.rand(1, 3, 32, 32)
    first = 3 * 8 * 3 * 3 * 32 * 32  # C_in/groups × C_out × k_h × k_w × H_out × W_out
    second = (8 // 2) * 4 * 3 * 3 * 15 * 15
    assert macs(net, x) == first + second
    assert macs(net, torch.rand(2, 3, 32, 32)) == 2 * (first + second)  # per batch


def test_macs_of_a_transposed_convolution():
    net = nn.ConvTranspose2d(8, 4, 5, stride=2, padding=2, output_padding=1)
    assert macs(net, torch.rand(1, 8, 16, 16)) == 8 * 4 * 5 * 5 * 16 * 16  # C_in × C_out × k² × H_in × W_in


def test_artifact_sizes_by_kind(tmp_path):
    onnx, int8, xml, bin_ = (tmp_path / n for n in ("a.onnx", "a.int8.onnx", "a.int8.xml", "a.int8.bin"))
    for p, size in ((onnx, MIB), (int8, MIB // 4), (xml, 1024), (bin_, MIB // 2)):
        p.write_bytes(b"\0" * size)
    assert artifact_kind("ort-cpu-int8", int8) == "onnx_int8"
    sizes = artifact_sizes([("ort-cpu", onnx), ("ov-cpu", onnx), ("ort-cpu-int8", int8), ("ov-cpu-int8", xml),
                            ("ov-cpu-int8", bin_)])
    assert sizes["onnx_fp32"] == pytest.approx(1.0)  # counted once though two engines read it
    assert sizes["onnx_int8"] == pytest.approx(0.25)
    assert sizes["openvino_ir"] == pytest.approx((1024 + MIB // 2) / MIB)
    assert sizes["tensorrt_plan"] == 0


def test_a_plan_s_recorded_build_time_is_read_from_its_sidecar(tmp_path):
    import json

    from liccs.export.cache import ArtifactCache
    from liccs.stages.model_card import recorded_build_s

    plan = tmp_path / "g_a.plan"
    plan.write_bytes(b"plan")
    assert recorded_build_s(plan) is None
    ArtifactCache.sidecar(plan).write_text(json.dumps({"meta": {"build_s": 12.5}}))
    assert recorded_build_s(plan) == 12.5


def test_runner_files_of_a_path_take_an_ir_s_weights_along(tmp_path):
    from liccs.stages.model_card import runner_files

    xml = tmp_path / "g_s.int8.xml"
    xml.write_text("<net/>")
    assert runner_files(str(xml)) == [xml]
    xml.with_suffix(".bin").write_bytes(b"w")
    assert runner_files(str(xml)) == [xml, xml.with_suffix(".bin")]
    assert runner_files("") == [] and runner_files(None) == []


def test_codec_macs_grow_with_the_padded_pixels_exactly():
    from compressai.models import ScaleHyperprior

    from liccs.stages.model_card import codec_macs, padded_pixels

    codec = ScaleHyperprior(N=8, M=12).eval()
    small, large, odd = (sum(codec_macs(codec, hw).values()) for hw in ((64, 64), (128, 192), (100, 60)))
    assert large == small * padded_pixels((128, 192)) // padded_pixels((64, 64)) == 6 * small
    assert odd == 2 * small and padded_pixels((100, 60)) == 128 * 64  # padded to multiples of 64, as the coder does
