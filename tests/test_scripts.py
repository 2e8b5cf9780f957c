"""The benchmark and report scripts import: a module moved inside liccs breaks a script no other test runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("reports/*/run.py")])
#: Packages a script may need that the dev install does not bring (pyproject's extras name them).
OPTIONAL = {"torchattacks": "bench"}


def test_there_are_scripts() -> None:
    assert any(p.parent.name == "benchmarks" for p in SCRIPTS) and any(p.name == "run.py" for p in SCRIPTS)


@pytest.mark.parametrize("path", SCRIPTS, ids=[str(p.relative_to(ROOT)) for p in SCRIPTS])
def test_script_imports(path: Path) -> None:
    spec = importlib.util.spec_from_file_location(f"script_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)  # runs the imports, not main (guarded by __name__)
    except ModuleNotFoundError as e:
        if e.name not in OPTIONAL:
            raise
        pytest.skip(f"{path.relative_to(ROOT)} needs {e.name}: pip install -e '.[{OPTIONAL[e.name]}]'")
    assert callable(getattr(module, "main", None)), f"{path.relative_to(ROOT)} has no main()"
