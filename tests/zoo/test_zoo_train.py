"""``liccs zoo train``: a classifier shipped for its recipe is not retrained unless the cache is asked for, and a
recipe that trains in bf16 on a CPU that emulates bf16 is named before hours of training start."""

from __future__ import annotations

from pathlib import Path

import pytest

from liccs.core.isa import parse_flags
from liccs.zoo.mini import CLASSIFIER_CONFIGS, store, zoo_train

SHIPPED = CLASSIFIER_CONFIGS["mini-cifar-resnet"]  # bf16 autocast in its recipe
TINY = CLASSIFIER_CONFIGS["mini-tiny-cifar-resnet"]  # fp32


@pytest.fixture()
def trainings(monkeypatch, tmp_path) -> list[str]:
    """The classifiers train_zoo would train (nothing is trained); an empty cache; SHIPPED shipped."""
    calls: list[str] = []
    monkeypatch.setenv("LICCS_CACHE", str(tmp_path))
    monkeypatch.setattr(zoo_train, "train_mini_classifier", lambda m, *a, **k: calls.append(m.name))
    monkeypatch.setattr(store, "committed", lambda name, key: Path("shipped.pt") if name == SHIPPED.name else None)
    return calls


@pytest.mark.parametrize(("source", "trained"), [("auto", []), ("shipped", []), ("cache", [SHIPPED.name])])
def test_a_shipped_classifier_is_trained_only_when_the_cache_is_asked_for(trainings, monkeypatch, capsys, source,
                                                                          trained):
    monkeypatch.setenv("LICCS_MINI_WEIGHTS", source)
    monkeypatch.setattr(zoo_train, "this_cpu", lambda: parse_flags("avx2 avx512_bf16"))
    zoo_train.train_zoo([SHIPPED, TINY], progress=False)
    assert trainings == [*trained, TINY.name]
    assert ("shipped with the package" in capsys.readouterr().out) == (not trained)


def test_a_bf16_recipe_on_a_cpu_without_native_bf16_is_named_before_training(monkeypatch):
    monkeypatch.setattr(zoo_train, "this_cpu", lambda: parse_flags("avx2 fma", "AMD EPYC"))
    why = zoo_train.emulated_bf16(SHIPPED, "cpu")
    assert why is not None and "AMD EPYC" in why and "bf16" in why and "hours" in why
    assert zoo_train.emulated_bf16(TINY, "cpu") is None  # an fp32 recipe
    assert zoo_train.emulated_bf16(SHIPPED, "cuda") is None
    monkeypatch.setattr(zoo_train, "this_cpu", lambda: parse_flags("avx2 avx512_bf16 amx_bf16"))
    assert zoo_train.emulated_bf16(SHIPPED, "cpu") is None
