"""Which code made a report: the manifest's code record, and ``liccs reports status`` against the code now."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liccs.cli import main
from liccs.core import provenance
from liccs.core.errors import InputError
from liccs.core.provenance import code_record, staleness
from liccs.jobs.reports import STANDING, _judged, record_standing, reports_status


def _report(folder: Path, code: dict | None, commit: str = "0" * 40) -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"commit": commit, **({"code": code} if code else {})}))
    return folder


def test_the_record_holds_every_imported_liccs_module_with_its_hash():
    rec = code_record()
    assert "liccs/core/provenance.py" in rec["files"] and "liccs/cli.py" in rec["files"]  # imported by this test
    p = Path(provenance.__file__)
    assert rec["files"]["liccs/core/provenance.py"] == provenance.source_hash(p) and len(rec["all"]) == 64


@pytest.fixture()
def checkout(tmp_path) -> tuple[Path, Path, Path, Path]:
    """(checkout root, its liccs/a.py, its liccs/b.py, a report whose code record holds both as they are now)."""
    root = tmp_path / "checkout"
    (root / "liccs").mkdir(parents=True)
    a, b = root / "liccs" / "a.py", root / "liccs" / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    record = {"method": provenance.METHOD,
              "files": {"liccs/a.py": provenance.source_hash(a), "liccs/b.py": provenance.source_hash(b)}}
    return root, a, b, _report(tmp_path / "reports" / "run", record)


def test_a_changed_or_removed_module_makes_a_report_stale_and_names_it(checkout):
    root, a, b, rep = checkout
    assert staleness(rep, root).status == "current"
    a.write_text('"""Documented now."""\n\n# a comment\nx  =  1\n')  # documentation and layout: still current
    assert staleness(rep, root).status == "current"
    a.write_text("x = 3\n")
    b.unlink()
    s = staleness(rep, root)
    assert s.status == "stale" and s.changed == ("liccs/a.py", "liccs/b.py (removed)") and "2 of 2" in s.why


def test_a_report_without_a_record_or_a_known_commit_is_unknown_with_its_reason(tmp_path, capsys):
    _report(tmp_path / "reports" / "old", None, commit="f" * 40)
    (tmp_path / "reports" / "broken").mkdir()
    (tmp_path / "reports" / "broken" / "manifest.json").write_text("{ not json")
    (tmp_path / "reports" / "bare").mkdir()  # results without any manifest
    rows = reports_status(tmp_path / "reports")
    assert [r.status for r in rows] == ["unknown"] * 3 and all(r.why for r in rows)
    assert "holds no manifest.json" in rows[0].why and "not a readable manifest" in rows[1].why
    assert "no commit this checkout has" in rows[2].why
    assert main(["reports", "status", str(tmp_path / "reports")]) == 0
    assert "0 current, 3 stale or unknown" in capsys.readouterr().out
    assert main(["reports", "status", str(tmp_path / "reports"), "--fail-on-stale"]) == 1


def test_every_committed_report_is_current_or_says_why_not():
    rows = reports_status(Path(__file__).parents[1] / "reports")
    assert rows and all(r.status == "current" or (r.status in ("stale", "stands", "unknown") and r.why) for r in rows)
    assert all(r.changed for r in rows if r.status in ("stale", "stands"))


def test_a_stale_report_judged_to_stand_stays_so_until_its_modules_change_again(checkout):
    root, a, b, rep = checkout
    with pytest.raises(InputError, match="current.*only a stale report"):
        record_standing(rep, "nothing changed", root)
    a.write_text("x = 3\n")
    with pytest.raises(InputError, match="--why is empty"):
        record_standing(rep, " ", root)
    row = record_standing(rep, "a refactor: the same results", root)
    assert row.status == "stands" and "judged to stand: a refactor" in row.why and (rep / STANDING).is_file()
    b.write_text("y = 4\n")  # another module changes after the judgement: stale again, naming it
    row = _judged(provenance.staleness(rep, root), root)
    assert row.status == "stale" and "predates changes to liccs/b.py" in row.why
