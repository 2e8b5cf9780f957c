import hashlib
import json

import pytest
import torch

from liccs.core import fileio


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


def test_a_keyed_record_is_found_only_when_intact(tmp_path, caplog):
    path = tmp_path / "adv.pt"
    record = {"key": "k1", "images": [torch.rand(1, 3, 8, 8)], "names": ["a"]}
    fileio.save_keyed(path, record)
    hit = fileio.load_keyed(path, "k1")
    assert hit is not None and torch.equal(hit["images"][0], record["images"][0])
    assert fileio.load_keyed(path, "k2") is None and fileio.load_keyed(tmp_path / "none.pt", "k1") is None
    data = path.read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "garbage": b"not a torch file"}
    # a flipped bit inside the tensor's bytes loads silently: only the digest sees it
    start = data.index(record["images"][0].numpy().tobytes()[:16])
    damaged["flipped"] = data[:start + 5] + bytes([data[start + 5] ^ 0x04]) + data[start + 6:]
    for name, bad in damaged.items():
        path.write_bytes(bad)
        caplog.clear()
        assert fileio.load_keyed(path, "k1") is None, name
        assert str(path) in caplog.text and "recomputing" in caplog.text, name
    torch.save(record, path)  # written without a digest (by hand, or by an older liccs): not trusted either
    assert fileio.load_keyed(path, "k1") is None
