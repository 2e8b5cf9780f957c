"""The offline mini zoo on its tiny variant: deterministic training, cache reuse, corruption handling."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from liccs.core.errors import WeightsError
from liccs.zoo import load_classifier, load_codec
from liccs.zoo import mini as mini_mod
from liccs.zoo.mini import CLASSIFIER_CONFIGS, LADDER_CONFIGS, resolve, store, training
from liccs.zoo.mini.train_classifier import ClassifierTrainConfig, accuracy, train_classifier
from liccs.zoo.mini.train_codec import LadderConfig, batches, build_codec, train_quality
from liccs.zoo.weights import sha256_of

TINY_CLF = "mini-tiny-cifar-resnet"
TINY_CODEC = "mini-tiny-bmshj2018-hyperprior"


@pytest.fixture(scope="module")
def zoo_cache(tmp_path_factory, shared_data):
    """One liccs cache for the module, so the tiny models train once."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("mini-cache")
    mp.setenv("LICCS_CACHE", str(path))
    mp.setattr(store, "COMMITTED_DIR", path / "no-committed-weights")
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def cifar_small(zoo_cache):
    from liccs.zoo.mini.train_data import cifar10_tensors

    return cifar10_tensors("train", 20, progress=False)


def test_classifier_training_is_deterministic_with_a_seed(cifar_small):
    x, y = cifar_small
    cfg = ClassifierTrainConfig(width=4, epochs=1, batch_size=50, train_per_class=20, bf16=False, seed=3)
    _, a = train_classifier(cfg, x, y, progress=False, max_steps=3)
    _, b = train_classifier(cfg, x, y, progress=False, max_steps=3)
    assert [r["loss"] for r in a] == [r["loss"] for r in b]


def test_codec_training_is_deterministic_with_a_seed(cifar_small):
    x, _ = cifar_small
    cfg = LadderConfig("mbt2018-mean", N=8, M=8, data="cifar10-64", qualities=(3,), base_steps=10,
                       finetune_steps=1, batch_size=2)

    def run() -> list[float]:
        torch.manual_seed(0)
        model = build_codec(cfg.arch, cfg.N, cfg.M)
        log = train_quality(model, cfg, 3, 10, batches(x, cfg, torch.Generator().manual_seed(0)), progress=False)
        return [r["loss"] for r in log]

    assert run() == run()


def test_tiny_classifier_trains_on_demand_and_beats_chance(zoo_cache):
    from liccs.zoo.mini.train_data import cifar10_tensors

    clf = load_classifier(TINY_CLF)
    assert clf.liccs_weights.source == "mini-zoo"
    x, y = cifar10_tensors("test", 50, progress=False)  # 50 test images per class
    assert accuracy(clf, x, y) > 0.15  # chance is 0.10


def test_trained_entries_reload_from_the_cache_without_training(zoo_cache, monkeypatch):
    first = load_codec(f"{TINY_CODEC}@q1")
    load_classifier(TINY_CLF)

    def fail(*a, **k):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(resolve, "train_mini_ladder", fail)
    monkeypatch.setattr(resolve, "train_mini_classifier", fail)
    again = load_codec(f"{TINY_CODEC}@q1")
    assert again.liccs_weights == first.liccs_weights and again.liccs_weights.source == "mini-zoo"
    assert load_codec(f"{TINY_CODEC}@q6").liccs_weights.source == "mini-zoo"  # the chain trained both
    assert load_classifier(TINY_CLF).liccs_weights.source == "mini-zoo"


def test_corrupt_cache_entry_is_detected_and_retrained_with_a_warning(zoo_cache):
    ml = LADDER_CONFIGS[TINY_CODEC]
    name = ml.entry_name(1)
    good = load_codec(f"{TINY_CODEC}@q1").liccs_weights
    path = store.entry_dir(name, ml.key) / "weights.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: still a readable zip, wrong weights
    path.write_bytes(bytes(data))
    with pytest.warns(store.MiniZooWarning, match="corrupt"):
        retrained = load_codec(f"{TINY_CODEC}@q1")
    meta = json.loads((path.parent / "meta.json").read_text())
    assert meta["sha256"] == sha256_of(path) == retrained.liccs_weights.sha256
    assert retrained.liccs_weights.sha256 == good.sha256  # seeded CPU training reproduces the same file


def test_committed_fp16_weights_are_verified(zoo_cache, monkeypatch, tmp_path):
    mc = CLASSIFIER_CONFIGS[TINY_CLF]
    load_classifier(TINY_CLF)
    index = store.export_fp16([(TINY_CLF, mc.key)], tmp_path)
    monkeypatch.setattr(store, "COMMITTED_DIR", tmp_path)
    monkeypatch.setattr(store, "cached", lambda name, key: None)  # as on a fresh machine
    clf = load_classifier(TINY_CLF)
    assert clf.liccs_weights.path == str(tmp_path / index[TINY_CLF]["file"])
    assert any(v.dtype == torch.float16 for v in torch.load(clf.liccs_weights.path, weights_only=True).values())
    (tmp_path / index[TINY_CLF]["file"]).write_bytes(b"not the committed file")

    def reached_training(*a, **k):
        raise _ReachedTraining

    monkeypatch.setattr(resolve, "train_mini_classifier", reached_training)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(_ReachedTraining):  # the tampered file is not loaded: training is next
            load_classifier(TINY_CLF)
    assert any(issubclass(w.category, store.MiniZooWarning) for w in caught)


def test_committed_codec_weights_leave_out_the_entropy_tables(zoo_cache, monkeypatch, tmp_path):
    """Committed codec weights store the CDF tables empty; a load rebuilds them and the codec round-trips."""
    from liccs.pipeline import codec_roundtrip

    ml = LADDER_CONFIGS[TINY_CODEC]
    name = f"{TINY_CODEC}@q6"
    full = load_codec(name)
    index = store.export_fp16([(name, ml.key)], tmp_path)
    saved = torch.load(tmp_path / index[name]["file"], weights_only=True)
    tables = [k for k in saved if k.endswith(store.ENTROPY_TABLES)]
    assert tables and all(saved[k].numel() == 0 for k in tables)
    monkeypatch.setattr(store, "COMMITTED_DIR", tmp_path)
    monkeypatch.setattr(store, "cached", lambda name, key: None)  # as on a fresh machine
    codec = load_codec(name)
    assert codec.liccs_weights.path == str(tmp_path / index[name]["file"])
    state = codec.state_dict()
    assert all(state[k].numel() > 0 for k in tables)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    x_hat, nbytes = codec_roundtrip(codec, x)
    ref_hat, _ = codec_roundtrip(full, x)
    assert all(n > 0 for n in nbytes) and (x_hat - ref_hat).abs().max() < 0.05  # fp16 weights: close, not equal


class _ReachedTraining(Exception):
    """Raised by a stand-in for training, to show that resolution got that far."""


def _default_run_models() -> list[str]:
    import tomllib

    cfg = tomllib.loads((Path(__file__).parents[2] / "liccs" / "configs" / "quick-cpu.toml").read_text())
    return [*cfg["models"]["codecs"], cfg["models"]["classifier"]]


def test_the_default_run_needs_only_committed_models():
    from liccs.zoo.mini.zoo_train import COMMITTED

    index = json.loads((Path(store.__file__).parents[1] / "weights" / "index.json").read_text())
    assert set(_default_run_models()) <= set(COMMITTED) == set(index)


@pytest.mark.parametrize("name", _default_run_models())
def test_committed_weights_load_on_an_empty_cache_without_training(name, tmp_path, monkeypatch):
    """The committed fp16 weights are found by their config key: a change of the key form must not make a
    fresh machine retrain (it once did, after the key's JSON formatting changed)."""
    from liccs.zoo import load_classifier, load_codec

    monkeypatch.setenv("LICCS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(store, "COMMITTED_DIR", Path(store.__file__).parents[1] / "weights")  # the package's own

    def no_training(*args, **kwargs):
        raise AssertionError(f"{name} was trained instead of loaded from the committed weights")

    monkeypatch.setattr(resolve, "train_mini_classifier", no_training)
    monkeypatch.setattr(resolve, "train_mini_ladder", no_training)
    model = load_classifier(name) if "@" not in name else load_codec(name)
    assert model.liccs_weights.source == "mini-zoo" and model.liccs_weights.sha256


def test_ladder_chain_grows_outward_from_a_base_in_the_middle():
    cfg = LadderConfig("bmshj2018-hyperprior", N=8, M=8, data="cifar10-64-nearest", qualities=(1, 2, 3, 4, 5),
                       base_steps=1, finetune_steps=1, batch_size=1, base_quality=3)
    assert [cfg.parent(q) for q in (1, 2, 3, 4, 5)] == [2, 3, None, 3, 4]
    assert cfg.chain(5) == [3, 4, 5] and cfg.chain(1) == [3, 2, 1] and cfg.chain(3) == [3]
    order = cfg.order()
    assert sorted(order) == [1, 2, 3, 4, 5] and all(order.index(cfg.parent(q)) < order.index(q) for q in (1, 2, 4, 5))
    top = LadderConfig(**{**cfg.__dict__, "base_quality": None})
    assert top.base == 5 and top.chain(1) == [5, 4, 3, 2, 1]
    with pytest.raises(ValueError, match="base_quality 7"):
        LadderConfig(**{**cfg.__dict__, "base_quality": 7})


def test_ladder_trains_only_the_chain_asked_for_and_resumes_from_cached_parents(zoo_cache, monkeypatch):
    from dataclasses import replace

    ml = mini_mod.MiniLadder("mini-test-middle", replace(LADDER_CONFIGS[TINY_CODEC].config, qualities=(1, 3, 6),
                                                         base_quality=3), "test ladder")
    trained: list[int] = []
    real = training.train_ladder

    def spy(cfg, *a, only=None, **k):
        trained.extend(sorted(only))
        return real(cfg, *a, only=only, **k)

    monkeypatch.setattr(training, "train_ladder", spy)
    paths = mini_mod.train_mini_ladder(ml, progress=False, only=1)
    assert trained == [1, 3] and set(paths) == {1, 3}  # q6 is not on q1's chain
    meta = store.read_meta(ml.entry_name(1), ml.key)
    assert meta is not None and meta["parent"] == 3
    trained.clear()
    paths = mini_mod.train_mini_ladder(ml, progress=False)
    assert trained == [6] and set(paths) == {1, 3, 6}  # fine-tuned from the cached base
    trained.clear()
    mini_mod.train_mini_ladder(ml, progress=False)
    assert trained == []


def test_export_makes_the_committed_set_exactly_the_entries_asked_for(zoo_cache, tmp_path):
    from liccs.core.errors import UnknownNameError
    from liccs.zoo.mini.zoo_train import export_committed

    export_committed([TINY_CLF, f"{TINY_CODEC}@q6"], tmp_path)
    first = json.loads((tmp_path / "index.json").read_text())
    assert set(first) == {TINY_CLF, f"{TINY_CODEC}@q6"}
    index = export_committed([f"{TINY_CODEC}@q1"], tmp_path)
    assert set(index) == {f"{TINY_CODEC}@q1"}
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == [index[f"{TINY_CODEC}@q1"]["file"]]
    with pytest.raises(UnknownNameError, match="q1, q6"):
        export_committed([f"{TINY_CODEC}@q3"], tmp_path)


@pytest.mark.parametrize("h,w", [(333, 400), (150, 128), (1000, 129), (100, 90), (127, 300)])
def test_crop_rescale_never_falls_below_the_crop_size(h, w):
    from liccs.zoo.mini.train_data import rescale

    img = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))
    s = 128 / min(h, w) - 1e-9  # the smallest scale natural_crops draws, minus rounding: floor gives 127
    out = rescale(img, s, 128)
    assert min(out.shape[-2:]) == 128 and out.shape[0] == 3
    far = rescale(img, 0.9, 64)  # far from the edge: exactly what scale_factor gives
    assert far.shape[-2:] == (int(h * 0.9), int(w * 0.9))


# --- one set of bytes per name and source --------------------------------------------------------------------


def _other_training(name: str, key: str, path: Path) -> Path:
    """A cache entry under ``name`` whose weights differ from ``path``'s (another training, as on another machine)."""
    state = torch.load(path, weights_only=True)
    other = {k: v + 0.01 if v.is_floating_point() and v.numel() >= store.FP16_MIN_NUMEL else v
             for k, v in state.items()}
    return store.save(name, key, other, {"kind": "test"})


def test_a_cached_checkpoint_under_a_shipped_name_is_named_not_used(zoo_cache, monkeypatch, tmp_path):
    mc = CLASSIFIER_CONFIGS[TINY_CLF]
    load_classifier(TINY_CLF)
    index = store.export_fp16([(TINY_CLF, mc.key)], tmp_path)
    shipped = tmp_path / index[TINY_CLF]["file"]
    monkeypatch.setattr(store, "COMMITTED_DIR", tmp_path)
    assert load_classifier(TINY_CLF).liccs_weights.note is None  # the cache holds the shipped file's own training
    own = torch.load(store.cached(TINY_CLF, mc.key), weights_only=True)
    try:
        cached = _other_training(TINY_CLF, mc.key, store.cached(TINY_CLF, mc.key))
        with pytest.warns(store.MiniZooWarning) as caught:
            clf = load_classifier(TINY_CLF)
        message = " ".join(str(w.message) for w in caught)
        assert str(cached) in message and str(shipped) in message  # the warning names both files
        info = clf.liccs_weights
        assert (info.origin, info.path, info.sha256) == ("shipped", str(shipped), sha256_of(shipped))
        assert str(cached) in info.note and info.to_dict()["note"] == info.note  # recorded with the result
        monkeypatch.setenv(mini_mod.SOURCE_ENV, "cache")  # asked for explicitly: the cache's, and said so
        info = load_classifier(TINY_CLF).liccs_weights
        assert (info.origin, info.path) == ("cache", str(cached)) and str(shipped) in info.note
    finally:
        store.save(TINY_CLF, mc.key, own, {"kind": "classifier"})  # the module's cache as it was


def test_a_ladder_comes_whole_from_one_source(zoo_cache, monkeypatch, tmp_path):
    ml = LADDER_CONFIGS[TINY_CODEC]
    q1, q6 = f"{TINY_CODEC}@q1", f"{TINY_CODEC}@q6"
    load_codec(q1), load_codec(q6)
    store.export_fp16([(q1, ml.key)], tmp_path)  # the package ships q1 only
    monkeypatch.setattr(store, "COMMITTED_DIR", tmp_path)
    alone = mini_mod.resolve_models([q1])
    assert alone[q1].origin == "shipped"
    together = mini_mod.resolve_models([q1, q6])
    assert {w.origin for w in together.values()} == {"cache"}  # never shipped q1 beside a cache-trained q6
    assert "one training" in together[q1].note and together[q1].path == store.cached(q1, ml.key)
    from liccs.zoo import load_codecs

    assert [m.liccs_weights.origin for m in load_codecs([q1, q6])] == ["cache", "cache"]
    monkeypatch.setenv(mini_mod.SOURCE_ENV, "shipped")
    with pytest.raises(WeightsError, match=rf"ships no weights for {q6}"):
        mini_mod.resolve_models([q1, q6])
    monkeypatch.setenv(mini_mod.SOURCE_ENV, "newest")
    with pytest.raises(WeightsError, match="LICCS_MINI_WEIGHTS='newest'.*valid: auto, shipped, cache"):
        mini_mod.resolve_models([q1])


def test_the_zoo_report_evaluates_a_ladder_from_one_source_and_records_each_model_s_sha256(zoo_cache, monkeypatch,
                                                                                            tmp_path):
    """A ladder of which the package ships one quality is evaluated whole from the cache (as every run loads it), and
    the manifest names the origin and sha256 of every model evaluated."""
    from liccs.zoo.mini.report import write_report

    load_classifier(TINY_CLF)
    clf, lad = CLASSIFIER_CONFIGS[TINY_CLF], LADDER_CONFIGS[TINY_CODEC]
    q = min(lad.config.qualities)
    load_codec(lad.entry_name(q))  # with its chain from the base
    monkeypatch.setattr(store, "COMMITTED_DIR", tmp_path / "shipped")
    store.export_fp16([(lad.entry_name(q), lad.key)], tmp_path / "shipped", replace=True)
    assert store.committed(lad.entry_name(q), lad.key) is not None
    write_report([clf, lad], tmp_path / "report", {}, eval_images=20, progress=False)
    weights = json.loads((tmp_path / "report" / "manifest.json").read_text())["weights"]
    cached = [q for q in lad.config.qualities if store.cached(lad.entry_name(q), lad.key) is not None]
    assert sorted(weights) == sorted([TINY_CLF, *(lad.entry_name(q) for q in cached)]) and len(cached) > 1
    for name, rec in weights.items():
        key = clf.key if name == TINY_CLF else lad.key
        assert rec == {"origin": "cache", "sha256": sha256_of(store.cached(name, key))}, name
