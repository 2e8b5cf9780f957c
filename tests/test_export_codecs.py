"""export.codecs: the export stage deploys a subset of the run's codecs, checked before any work."""

from __future__ import annotations

import pytest

from liccs.config import ConfigError, from_dict
from liccs.stages.export import check_exported, exported

CODECS = ["mini-tiny-bmshj2018-hyperprior@q1", "mini-tiny-bmshj2018-hyperprior@q6", "mini-tiny-mbt2018-mean@q6"]
OFF = {s: {"enabled": False} for s in ("profile", "attack", "robustness", "transfer")}


def _cfg(codecs: list[str], **sections: dict) -> object:
    return from_dict({"models": {"codecs": CODECS}, **OFF, "export": {"codecs": codecs}, **sections})


def test_empty_exports_every_codec_and_a_subset_keeps_the_runs_order():
    assert exported(_cfg([]), CODECS) == CODECS
    cfg = _cfg([CODECS[2], CODECS[0]])
    check_exported(cfg)
    assert exported(cfg, CODECS) == [CODECS[0], CODECS[2]]


@pytest.mark.parametrize("codecs, sections, named", [
    (["mini-tiny-mbt2018-mean@q1"], {}, r"export\.codecs\[0\]"),
    ([CODECS[0], CODECS[0]], {}, "listed twice"),
    ([CODECS[0]], {"profile": {"enabled": True}}, "profile"),
    ([CODECS[0]], {"transfer": {"enabled": True}}, "transfer"),
])
def test_a_bad_subset_is_refused_naming_the_key(codecs, sections, named):
    with pytest.raises(ConfigError, match=named):
        check_exported(_cfg(codecs, **sections))
