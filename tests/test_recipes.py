"""The extension recipes of docs/architecture.md, followed to the letter in a module outside liccs: a run stage
with its own config section, and an attack, registered from that module and run by `liccs run --quick`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from liccs.attack.base import ATTACKS
from liccs.cli import main
from liccs.config import ConfigError, load_config
from liccs.config.sections import EXTENSION_SECTIONS
from liccs.stage import STAGES

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "liccs" / "configs" / "quick-cpu.toml"

EXTENSION = '''
from dataclasses import dataclass

import pandas as pd

from liccs.attack.base import register_attack
from liccs.attack.pgd import PGD
from liccs.config import register_section
from liccs.stage import StageBase, StageResult, TableSpec, register


@dataclass
class ToySection:
    enabled: bool = False
    label: str = "toy"


register_section("toy", ToySection)


class ToyStage(StageBase):
    name, section, order = "toy", "toy", 95
    tables = (TableSpec("toy_codecs", "A toy stage: the run's codecs and the section's label."),)

    def run(self, ctx, results):
        label = ctx.cfg.section("toy").label
        return StageResult(tables={"toy_codecs": pd.DataFrame({"codec": ctx.names.codecs, "label": label})})


register(ToyStage())


@register_attack("toy-pgd")
class ToyPGD(PGD):
    """PGD under another name (a new attack only declares what differs)."""
'''


@pytest.fixture
def extension(tmp_path: Path):
    path = tmp_path / "liccs_toy_extension.py"
    path.write_text(EXTENSION)
    spec = importlib.util.spec_from_file_location("liccs_toy_extension", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)
    for registry, name in ((STAGES, "toy"), (ATTACKS, "toy-pgd")):
        registry._entries.pop(name, None)
    EXTENSION_SECTIONS.pop("toy", None)


def test_a_stage_with_its_own_section_and_an_attack_run_from_outside_liccs(extension, tmp_path: Path,
                                                                         shared_data: Path) -> None:
    out = tmp_path / "run"
    args = ["run", str(QUICK), "--quick", "--no-progress", "--out", str(out), "--set", "toy.enabled=true",
            "--set", 'toy.label="from the config"', "--set", 'attack.name="toy-pgd"',
            "--set", "profile.enabled=false", "--set", "robustness.enabled=false"]
    assert main(args) == 0
    toy = pd.read_csv(out / "tables" / "toy_codecs.csv")
    cfg = load_config(QUICK, quick=True)
    assert list(toy["codec"]) == cfg.models.codecs and set(toy["label"]) == {"from the config"}
    assert "toy-pgd" in (out / "manifest.json").read_text()
    assert "A toy stage" in (out / "report.md").read_text()


def test_an_extension_section_is_checked_as_liccs_own(extension) -> None:
    with pytest.raises(ConfigError, match=r"toy\.nope.*Valid keys of \[toy\]: enabled, label"):
        load_config(QUICK, overrides=["toy.nope=1"])
    with pytest.raises(ConfigError, match=r"toy\.enabled: expected bool"):
        load_config(QUICK, overrides=['toy.enabled="yes"'])
    assert load_config(QUICK).section("toy").enabled is False  # its defaults where the config does not set it
