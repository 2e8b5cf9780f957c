"""The run-stage contract: every stage registered once, its tables declared once, the layering enforced."""

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import liccs.jobs.run  # noqa: F401  (registers every generic stage)
from liccs import papers
from liccs.config import RunConfig
from liccs.stage import STAGES, Results, RunError, StageBase, StageResult, TableSpec, ordered

ROOT = Path(__file__).resolve().parents[1]
papers.load()  # the paper drivers register their stages when imported (a run imports those it enables)


def test_the_stages_run_in_the_documented_order():
    assert [s.name for s in ordered()] == ["export", "profile", "operators", "model_card", "attack", "robustness",
                                           "transfer", "paper-a", "paper-b", "pictures"]


@pytest.mark.parametrize("name", STAGES.names())
def test_each_stage_has_a_config_section_and_declares_its_tables(name):
    stage = STAGES.get(name)
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    assert stage.section in fields, f"{name}: no [{stage.section}] in RunConfig"
    assert stage.tables and all(isinstance(t, TableSpec) for t in stage.tables)


def test_a_table_name_is_declared_by_one_stage_only():
    names = [t.name for s in ordered() for t in s.tables]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_transfer_runs_only_with_the_attack():
    cfg = RunConfig()
    transfer = STAGES.get("transfer")
    cfg.attack.enabled, cfg.transfer.enabled = False, True
    assert not transfer.enabled(cfg)
    cfg.attack.enabled = True
    assert transfer.enabled(cfg)


class _Toy(StageBase):
    name, section, order = "toy", "attack", 99
    tables = (TableSpec("toy", "a toy table"),)


def test_results_refuse_a_table_the_stage_did_not_declare():
    res = Results()
    res.add(_Toy(), StageResult({"toy": pd.DataFrame({"a": [1]})}, notes=["n"], skipped={"e": "why"}))
    assert list(res.tables) == ["toy"] and res.skipped == {"e": "why"}
    with pytest.raises(RunError, match="does not declare.*renamed"):
        res.add(_Toy(), StageResult({"renamed": pd.DataFrame()}))


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed (the dev extra)")
def test_an_upward_import_breaks_the_layer_contract(tmp_path):
    """The contract CI checks can fail: the core importing the run job is refused."""
    shutil.copytree(ROOT / "liccs", tmp_path / "liccs", ignore=shutil.ignore_patterns("__pycache__", "weights"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    ok = subprocess.run(["lint-imports"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout[-2000:]
    images = tmp_path / "liccs" / "core" / "images.py"
    images.write_text(images.read_text() + "\nimport liccs.jobs.run  # noqa\n")
    broken = subprocess.run(["lint-imports"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert broken.returncode != 0 and "liccs.core.images" in broken.stdout
