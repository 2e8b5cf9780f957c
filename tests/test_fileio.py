import hashlib
import json

import pytest

from liccs import fileio


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "engine.bin"
    fileio.atomic_write_bytes(target, b"old contents")
    assert target.read_bytes() == b"old contents"

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        fileio.atomic_write_bytes(target, b"new contents that never land")
    assert target.read_bytes() == b"old contents"
    assert sorted(p.name for p in target.parent.iterdir()) == ["engine.bin"]


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "report.json"
    fileio.write_json(target, {"a": 1})

    def half(tmp):
        tmp.write_text('{"a": ')
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        fileio.atomic_write(target, half)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_digests(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"liccs" * 1000)
    assert fileio.sha256_file(f) == hashlib.sha256(b"liccs" * 1000).hexdigest()
    assert fileio.json_digest({"b": 1, "a": [1, 2]}) == fileio.json_digest({"a": [1, 2], "b": 1})
    assert fileio.json_digest({"a": 1}) != fileio.json_digest({"a": 2})
    assert len(fileio.json_digest({"a": 1}, 12)) == 12
