"""The documentation site: its generated reference pages cover the code, it builds with ``mkdocs build --strict``,
and the runnable examples in ``examples/`` run."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOOK = ROOT / "docs" / "_hooks" / "gen_pages.py"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("liccs_docs_gen_pages", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_reference_has_every_key(gen):
    from liccs.config import RunConfig

    text = gen.config_reference()
    hints = typing.get_type_hints(RunConfig)
    for section in dataclasses.fields(RunConfig):
        assert f"## `[{section.name}]`" in text
        if dataclasses.is_dataclass(hints[section.name]):
            for f in dataclasses.fields(hints[section.name]):
                assert f"| `{f.name}` |" in text, f"{section.name}.{f.name} missing from the config reference"
    assert '| `eps` | <code>float</code> | <code>"4/255"</code> | > 0 |' in text  # type, default as TOML, range check
    assert '<code>"cpu" &#124; "cuda"</code>' in text  # a Literal, with the table-safe pipe
    assert "torch intra-op threads" in text  # the comment beside run.threads


def test_commands_page_has_every_subcommand(gen):
    from liccs.cli import build_parser

    text = gen.commands()
    names = []
    for name, _, sub in gen._subparsers(build_parser()):
        names.append(f"liccs {name}")
        names += [f"liccs {name} {n}" for n, _, _ in gen._subparsers(sub)]
    assert "liccs zoo train" in names and "liccs run" in names
    for name in names:
        assert f"`{name}`" in text, f"{name} missing from the command reference"
    assert "--max-pixels" in text and "--fail-on" in text


def test_registry_tables_list_every_entry(gen):
    from liccs.attack import ATTACKS, OBJECTIVES
    from liccs.engines import ENGINES

    for table, registry in ((gen.engines(), ENGINES), (gen.attacks(), ATTACKS), (gen.objectives(), OBJECTIVES)):
        for name in registry.names():
            assert f"| `{name}` |" in table


def test_unknown_marker_fails(gen):
    assert gen.expand("a\n<!-- liccs:engines -->\nb").count("`ort-cpu`") == 1
    with pytest.raises(KeyError, match="unknown generated block"):
        gen.expand("<!-- liccs:no-such-table -->", "page.md")


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    reference = (site / "run" / "reference" / "index.html").read_text(encoding="utf-8")
    assert "min_iters" in reference and "calibration_images" in reference
    assert "max-pixels" in (site / "commands" / "index.html").read_text(encoding="utf-8")
    assert "DeployedCodec" in (site / "api" / "engines" / "index.html").read_text(encoding="utf-8")
    examples = (site / "examples" / "index.html").read_text(encoding="utf-8")
    assert all(f"liccs-{name}-" in examples for name in ("compare", "transfer", "files"))  # each script is included


EXAMPLES = {
    "compare_engines.py": ["bitstreams byte-equal across engines: 4/4", "decoded on torch"],
    "attack_transfer.py": ["transfer gap (uint8)", "reconstruct graph + host resize + classifier graph"],
    "codec_files.py": ["entropy tables match: True", "refused: ", "crc32 mismatch"],
}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_runs(script, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--out", str(tmp_path / "out")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for line in EXAMPLES[script]:
        assert line in proc.stdout, f"{script}: expected {line!r} in its output:\n{proc.stdout[-4000:]}"
    if script == "compare_engines.py":
        rows = [ln for ln in proc.stdout.splitlines() if ln.rstrip().endswith(("True", "False")) and "e-" in ln]
        assert rows and all(ln.rstrip().endswith("True") for ln in rows), proc.stdout
