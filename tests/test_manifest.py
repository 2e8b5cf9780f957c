"""The manifest written beside every result: where a number came from."""

from __future__ import annotations

import builtins
import io
from typing import Any

import pytest

from liccs.core import manifest as mf


def test_manifest_names_config_versions_device_and_commit() -> None:
    m = mf.manifest({"a": 1}, command="x")
    assert m["config"] == {"a": 1} and m["command"] == "x"
    assert m["packages"]["torch"] and "liccs" in m["packages"]
    assert {"cpu", "cpu_model", "cpu_count", "torch_threads", "cuda_available"} <= set(m["device"])


def test_cpu_model_read_from_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\n"
    real_open = builtins.open

    def fake_open(path: Any, *a: Any, **k: Any) -> Any:
        return io.StringIO(text) if str(path) == "/proc/cpuinfo" else real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", fake_open)
    assert mf.cpu_model() == "AMD EPYC 9B14"


def test_cpu_model_is_none_without_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_file(path: Any, *a: Any, **k: Any) -> Any:
        raise FileNotFoundError(path)

    monkeypatch.setattr(builtins, "open", no_file)
    assert mf.cpu_model() is None
