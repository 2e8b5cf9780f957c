"""Attack names and parameters come from the registry: the run's config, its overrides and the CLI jobs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from liccs.attack import ATTACKS
from liccs.attack.base import attack_params, check_attack
from liccs.config import ConfigError, load_config
from liccs.core.errors import InputError
from liccs.jobs.run_setup import check_names

QUICK = Path(__file__).resolve().parents[2] / "liccs" / "configs" / "quick-cpu.toml"


def quick(*overrides: str):
    return load_config(QUICK, quick=True, overrides=overrides)


@pytest.mark.parametrize("name", sorted(ATTACKS.names()))
def test_every_registered_attack_is_accepted_by_the_run(name, shared_data):
    cfg = quick(f"attack.name={name}")
    assert cfg.attack.name == name
    check_names(cfg)


def test_an_unknown_attack_is_refused_naming_the_key_and_listing_the_valid_ones(shared_data):
    with pytest.raises(ConfigError) as e:
        check_names(quick("attack.name=nosuch"))
    assert "attack.name" in str(e.value) and "ifgsm" in str(e.value) and "apgd" in str(e.value)


def test_attack_params_from_toml_and_from_dotted_overrides(tmp_path, shared_data):
    cfg = quick("attack.name=mifgsm", "attack.params.decay=0.5", "attack.params.restarts=2")
    assert cfg.attack.params == {"decay": 0.5, "restarts": 2}
    check_names(cfg)
    toml = tmp_path / "c.toml"
    toml.write_text(QUICK.read_text().replace('name = "pgd"', 'name = "apgd"\nparams = { rho = 0.5 }'))
    assert load_config(toml).attack.params == {"rho": 0.5}


@pytest.mark.parametrize(("overrides", "named", "lists"), [
    (["attack.name=mifgsm", "attack.params.rho=0.5"], "attack.params.rho", "decay"),
    (["attack.name=apgd", "attack.params.restarts=1.5"], "attack.params.restarts", "int"),
    (["attack.name=apgd", "attack.params.rho=2"], "attack.params", "rho"),
    (["attack.name=fgsm", "attack.params.decay=1"], "attack.params.decay", "none"),
])
def test_an_unknown_or_bad_parameter_is_refused_before_any_work(overrides, named, lists, shared_data):
    with pytest.raises(ConfigError) as e:
        check_names(quick(*overrides))
    assert named in str(e.value) and lists in str(e.value)


def test_params_are_derived_from_the_attack_classes():
    assert attack_params("mifgsm")["decay"] == 1.0
    assert {"restarts", "rho", "momentum"} <= set(attack_params("apgd"))
    assert attack_params("fgsm") == {}
    with pytest.raises(InputError, match="has no parameter"):
        check_attack("pgd", {"decay": 1.0})


def test_liccs_run_refuses_an_unknown_attack_before_any_work(tmp_path, shared_data):
    r = subprocess.run([shutil.which("liccs") or "liccs", "run", str(QUICK), "--quick", "--set", "attack.name=nosuch",
                        "--set", f"run.out={tmp_path / 'out'}"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "attack.name" in r.stderr + r.stdout and "ifgsm" in r.stderr + r.stdout
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.pt"))


@pytest.fixture()
def image_dir(tmp_path, cifar4):
    from PIL import Image

    d = tmp_path / "images"
    d.mkdir()
    for i, stem in enumerate(["plane", "cat"]):
        Image.fromarray(cifar4[0][i * 50].mul(255).round().byte().permute(1, 2, 0).numpy()).save(d / f"{stem}.png")
    return d


@pytest.mark.parametrize("name,param", [("ifgsm", "restarts=2"), ("mifgsm", "decay=0.5"), ("apgd", "rho=0.5")])
def test_cli_attack_takes_any_registered_attack_and_its_parameters(name, param, image_dir, tmp_path):
    import json

    from liccs.cli import main

    out = tmp_path / name
    assert main(["attack", "--codec", "none", "--classifier", "mini-tiny-cifar-resnet", "--attack", name,
                 "--attack-param", param, "--eps", "4/255", "--steps", "2", "--images", str(image_dir),
                 "--out", str(out)]) == 0
    a = json.loads((out / "attack.json").read_text())["attack"]
    key, value = param.split("=")
    assert a["attack"] == name and a[key] == float(value)


@pytest.mark.parametrize("argv", [
    ["attack", "--codec", "none", "--classifier", "resnet18", "--attack", "nosuch"],
    ["attack", "--codec", "none", "--classifier", "resnet18", "--attack", "pgd", "--attack-param", "decay=1"],
    ["defend", "--codec", "bmshj2018-factorized@q1", "--attack", "apgd", "--attack-param", "decay=1"],
    ["defend", "--codec", "bmshj2018-factorized@q1", "--attack", "nosuch"],
])
def test_cli_refuses_an_unknown_attack_or_parameter_before_any_work(argv, tmp_path, capsys):
    from liccs.cli import main

    assert main([*argv, "--images", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "liccs: error:" in err and ("valid" in err.lower() or "parameters:" in err)
