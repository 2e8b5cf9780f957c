"""Run config: the shipped TOML files load; unknown keys and wrong types are refused, naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liccs.config import ConfigError, RunConfig, apply_overrides, from_dict, load_config, parse_override, with_quick

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "liccs" / "configs").glob("*.toml"))


def test_the_four_configs_exist():
    assert {p.stem for p in CONFIGS} >= {"quick-cpu", "gpu", "paper-a", "paper-b"}


# ids: the file name, not the bare stem: "gpu" would be read as the gpu marker
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_with_and_without_quick_and_round_trips(path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig) and cfg.run.name == path.stem
    quick = load_config(path, quick=True)
    assert quick.data.images <= cfg.data.images and quick.quick == cfg.quick
    again = from_dict(json.loads(cfg.to_json()))
    assert again == cfg


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(("text", "named", "lists"), [
    ("[profile]\nmin_iter = 3\n", "profile.min_iter", "min_iters"),
    ("[profil]\nmin_iters = 3\n", "profil", "profile"),
    ("[attack]\neps = 0.1\nwarmup = 1\n", "attack.warmup", "step_size"),
    ("[quick.data]\nimagez = 2\n", "data.imagez", "images"),
])
def test_unknown_key_is_refused_naming_it_and_listing_valid_keys(tmp_path, text, named, lists):
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, text))
    assert repr(named) in str(e.value) and lists in str(e.value) and "c.toml" in str(e.value)


@pytest.mark.parametrize(("text", "named"), [
    ('[profile]\nmin_iters = "10"\n', "profile.min_iters: expected int, got str"),
    ("[profile]\nmin_iters = true\n", "profile.min_iters: expected int, got bool"),
    ('[profile]\nresolutions = [[256, "x"]]\n', "profile.resolutions[0][1]"),
    ('[models]\ncodecs = "bmshj2018-hyperprior@q1"\n', "models.codecs: expected a list"),
    ('[attack]\nnorm = "l1"\n', "attack.norm: must be one of"),
    ('[attack]\neps = "8/0"\n', "attack.eps: expected float"),
    ("[data]\nimages = 0\n", "data.images: must be > 0"),
    ("data = 3\n", "data: expected a table"),
    ('[quick]\n"profile.warmup" = -1\n', "[quick] override: profile.warmup"),
])
def test_wrong_type_or_range_is_refused_naming_the_key(tmp_path, text, named):
    with pytest.raises(ConfigError, match=None) as e:
        load_config(_write(tmp_path, text))
    assert named in str(e.value)


def test_fractions_overrides_and_bad_toml(tmp_path):
    cfg = load_config(_write(tmp_path, '[attack]\neps = "8/255"\nstep_size = 0.5\n[quick]\n"attack.steps" = 1\n'),
                      overrides=["profile.batch_sizes=[1, 8]", "run.out=reports/x y"])
    assert cfg.attack.eps == pytest.approx(8 / 255) and cfg.attack.step_size == 0.5
    assert cfg.profile.batch_sizes == [1, 8] and cfg.run.out == "reports/x y" and cfg.attack.steps == 10
    assert with_quick(cfg).attack.steps == 1
    assert parse_override("data.images=4") == ("data.images", 4)
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("data.images")
    with pytest.raises(ConfigError, match="unknown section 'foo.bar'"):
        apply_overrides(cfg, {"foo.bar": 1})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[run\n"))
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "missing.toml")
    damaged = tmp_path / "damaged.toml"
    damaged.write_bytes(b"[run]\nout = \xff\xfe\x00")  # not UTF-8: named, no traceback
    with pytest.raises(ConfigError, match=f"config {damaged} cannot be read"):
        load_config(damaged)
