"""Saving adversarial images (rounded PNG, same stems, tensors, sidecar) and the attack/defend CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from liccs.attack.io import load_adversarial, save_adversarial
from liccs.cli import main
from liccs.core.errors import InputError
from liccs.data import read_image


def test_png_is_rounded_not_truncated_and_tensors_and_sidecar_are_written(tmp_path):
    x = torch.full((2, 3, 4, 5), 0.5)
    x[0, 0, 0, 0] = 10.6 / 255  # rounds to 11, truncates to 10
    side = save_adversarial(tmp_path, x, ["a", "b"], {"attack": {"attack": "pgd", "eps": 0.1}}, labels=[1, 2])
    px = np.asarray(Image.open(tmp_path / "a.png"))
    assert px.dtype == np.uint8 and px.shape == (4, 5, 3) and px[0, 0, 0] == 11 and px[1, 1, 1] == 128
    imgs, meta = load_adversarial(tmp_path)
    assert torch.equal(imgs["a"], x[0]) and meta["attack"]["eps"] == 0.1
    assert meta["files"]["png"] == ["a.png", "b.png"] and "packages" in meta["manifest"]
    assert side.name == "attack.json"


@pytest.mark.parametrize("names", [["a", "a"], ["a/b", "c"], ["a"], ["", "b"]])
def test_bad_names_are_refused(names, tmp_path):
    with pytest.raises(InputError):
        save_adversarial(tmp_path, torch.zeros(2, 3, 2, 2), names, {})


@pytest.fixture()
def image_dir(tmp_path, cifar4):
    d = tmp_path / "images"
    d.mkdir()
    for i, stem in enumerate(["plane_one", "cat_two", "frog_three"]):
        arr = cifar4[0][i * 50].mul(255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(arr).save(d / f"{stem}.png")
    return d


def test_cli_attack_writes_one_png_per_input_with_its_stem_and_a_sidecar(image_dir, tmp_path, capsys):
    out = tmp_path / "adv"
    rc = main(["attack", "--codec", "bmshj2018-factorized@q1,bmshj2018-factorized@q2", "--classifier",
               "mobilenet_v3_large", "--weights", "random", "--attack", "pgd", "--eps", "8/255", "--steps", "2",
               "--images", str(image_dir), "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "asr" in printed and "bmshj2018-factorized@q2" in printed
    for src in image_dir.iterdir():
        adv = read_image(out / src.name)
        diff = (adv.int() - read_image(src).int()).abs().max().item()
        assert 0 < diff <= 8  # inside 8/255 after rounding, and moved
    side = json.loads((out / "attack.json").read_text())
    a = side["attack"]
    assert a["attack"] == "pgd" and a["eps"] == pytest.approx(8 / 255) and a["steps"] == 2 and a["seed"] == 0
    assert a["surrogates"] == ["ste"] and a["source_models"] == ["bmshj2018-factorized@q1", "bmshj2018-factorized@q2"]
    assert side["labels"] == "predicted" and side["manifest"]["packages"]["torch"]
    assert [r["model"] for r in side["summary"]] == a["source_models"]
    assert sorted(side["files"]["png"]) == sorted(p.name for p in image_dir.iterdir())


def test_cli_defend_table_with_crafted_adaptive_and_given_attacks(image_dir, tmp_path, capsys):
    out = tmp_path / "def"
    rc = main(["defend", "--codec", "bmshj2018-factorized@q1", "--images", str(image_dir), "--k", "1,2",
               "--steps", "1", "--eot", "1", "--limit", "2", "--out", str(out), "--weights", "random"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "k-way K=2" in printed
    assert printed.startswith("RANDOM WEIGHTS: bmshj2018-factorized@q1 is untrained")  # said where it is read
    res = json.loads((out / "defense.json").read_text())
    sets = {(r["set"], r["defense"]) for r in res["summary"]}
    assert {("clean", "none"), ("clean", "k-way K=2"), ("attacked", "k-way K=1"), ("adaptive-k2", "k-way K=2")} <= sets
    rows = res["rows"]
    for img in {r["image"] for r in rows}:
        none = next(r for r in rows if r["image"] == img and r["set"] == "clean" and r["defense"] == "none")
        k1 = next(r for r in rows if r["image"] == img and r["set"] == "clean" and r["defense"] == "k-way K=1")
        assert k1["bpp"] == none["bpp"] and k1["psnr"] == none["psnr"]  # K=1 is the plain codec
        assert none["ms_ssim"] is None  # 32×32 is too small for 5-scale MS-SSIM
    # attacked images given as a folder (e.g. liccs attack --out)
    adv = tmp_path / "given"
    adv.mkdir()
    for p in image_dir.iterdir():
        Image.fromarray((255 - read_image(p)).permute(1, 2, 0).numpy()).save(adv / p.name)
    assert main(["defend", "--codec", "bmshj2018-factorized@q1", "--images", str(image_dir), "--adv", str(adv),
                 "--k", "2", "--limit", "1", "--out", str(out), "--weights", "random"]) == 0
    res = json.loads((out / "defense.json").read_text())
    assert res["attack"] == {"from": str(adv)}


@pytest.mark.parametrize("argv", [
    ["attack", "--codec", "nosuch@q1", "--classifier", "resnet18"],
    ["attack", "--codec", "bmshj2018-factorized@q1", "--classifier", "resnet18", "--eps", "8/0"],
    ["attack", "--codec", "bmshj2018-factorized@q1", "--classifier", "resnet18", "--attack", "cw"],
    ["attack", "--codec", "none", "--classifier", "none"],
    ["defend", "--codec", "bmshj2018-factorized@q1", "--objective", "ce"],
    ["defend", "--codec", "bmshj2018-factorized@q1", "--transforms", "rot45"],
])
def test_cli_errors_are_clear_and_early(argv, tmp_path, capsys):
    assert main([*argv, "--images", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "liccs: error:" in capsys.readouterr().err


def test_cli_attack_on_codecs_alone_reports_rate_and_distortion(image_dir, tmp_path):
    out = tmp_path / "codec"
    assert main(["attack", "--codec", "bmshj2018-factorized@q1", "--classifier", "none", "--objective", "distortion",
                 "--eps", "4/255", "--steps", "2", "--images", str(image_dir), "--out", str(out),
                 "--weights", "random"]) == 0
    side = json.loads((out / "attack.json").read_text())
    assert side["labels"] == "none"
    row = side["summary"][0]
    assert row["model"] == "bmshj2018-factorized@q1" and row["images"] == 3
    assert row["bpp_clean"] > 0 and row["psnr_adv"] < row["psnr_clean"]  # the attack degraded the reconstruction
    assert side["attack"]["objective"] == {"objective": "distortion", "reference": "input", "metric": "mse"}


def test_cli_attack_defaults_to_trained_weights_and_says_nothing_about_random_ones(image_dir, tmp_path, capsys):
    """The default weights are the trained ones (the mini zoo's committed weights here): no banner, and the
    sidecar records where the weights came from."""
    out = tmp_path / "trained"
    assert main(["attack", "--codec", "mini-tiny-bmshj2018-hyperprior@q1", "--classifier", "mini-tiny-cifar-resnet",
                 "--eps", "8/255", "--steps", "1", "--images", str(image_dir), "--out", str(out)]) == 0
    assert "RANDOM WEIGHTS" not in capsys.readouterr().out
    side = json.loads((out / "attack.json").read_text())
    assert side["job"]["weights"] == "pretrained" and side["warning"] is None


def _damage(path, how):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncate" else b"\x80\x04garbage" + data[10:])


@pytest.mark.parametrize("how", ["truncate", "garbage", "nan", "names", "sidecar"])
def test_a_damaged_adversarial_folder_is_named_not_trusted(tmp_path, how):
    save_adversarial(tmp_path, torch.full((2, 3, 4, 5), 0.5), ["a", "b"], {"attack": {}})
    if how in ("truncate", "garbage"):
        _damage(tmp_path / "adversarial.pt", how)
    elif how == "nan":
        torch.save({"names": ["a"], "images": [torch.full((3, 4, 5), float("nan"))]}, tmp_path / "adversarial.pt")
    elif how == "names":
        torch.save({"names": ["a", "b"], "images": [torch.zeros(3, 4, 5)]}, tmp_path / "adversarial.pt")
    else:
        (tmp_path / "attack.json").write_text("{ not json")
    with pytest.raises(InputError, match=r"(adversarial\.pt|attack\.json): "):
        load_adversarial(tmp_path)
