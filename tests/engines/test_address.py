"""EngineAddress: ``ENGINE[>TAIL][/FORM][:LABEL]`` parsed once, printed back as written."""

from __future__ import annotations

import pytest

from liccs.core.errors import InputError
from liccs.engines.address import EngineAddress, parse_split


@pytest.mark.parametrize("text, head, tail, form, label", [
    ("ort-cpu", "ort-cpu", "", "native", ""),
    ("ov-cpu>ort-cpu", "ov-cpu", "ort-cpu", "native", ""),
    ("ov-cpu/sub-pixel-output", "ov-cpu", "", "sub-pixel-output", ""),
    ("ov-cpu>ort-cpu/four-phase", "ov-cpu", "ort-cpu", "four-phase", ""),
    ("ort-cpu-int8:g_a", "ort-cpu-int8", "", "native", "g_a"),
    ("ov-cpu>ort-cpu:g_s", "ov-cpu", "ort-cpu", "native", "g_s"),
])
def test_an_address_parses_into_its_parts_and_prints_as_written(text, head, tail, form, label):
    a = EngineAddress.parse(text)
    assert (a.head, a.tail, a.form, a.label) == (head, tail, form, label)
    assert str(a) == text and a.split is bool(tail)
    assert a.engines == ((head, tail) if tail else (head,)) and a.engine == text.split("/")[0].split(":")[0]
    assert parse_split(a.engine) == ((head, tail) if tail else None)


@pytest.mark.parametrize("bad", ["ov-cpu>", ">ort-cpu", "a>b>c"])
def test_a_malformed_split_is_refused_naming_it(bad):
    with pytest.raises(InputError, match=r"HEAD>TAIL.*" + bad.replace(">", ">")):
        EngineAddress.parse(bad)
