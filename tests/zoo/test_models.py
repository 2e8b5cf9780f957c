"""Every registry entry builds and runs (random weights); weights resolve and load back."""

import time

import pytest
import torch

from liccs.core.errors import UnknownNameError, WeightsError
from liccs.pipeline import codec_forward
from liccs.zoo import CLASSIFIERS, CODECS, load_classifier, load_codec
from liccs.zoo.codecs import COMPRESSAI_ARCHS
from liccs.zoo.weights import sha256_of

EXTREMES = [f"{a}@q{q}" for a in COMPRESSAI_ARCHS for q in (min(CODECS.get(a).qualities), max(CODECS.get(a).qualities))]


@pytest.mark.parametrize("name", EXTREMES)
def test_codec_builds_and_runs_forward_at_lowest_and_highest_quality(name):
    codec = load_codec(name, "random")
    assert not codec.training and codec.liccs_name == name and codec.liccs_weights.source == "random"
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = codec(x)  # CompressAI's own forward
        ours = codec_forward(codec, x, "hard")
    assert out["x_hat"].shape == x.shape and ours.x_hat.shape == x.shape
    assert torch.isfinite(ours.x_hat).all()
    assert set(ours.likelihoods) == set(out["likelihoods"])


@pytest.mark.parametrize("name", CLASSIFIERS.names())
def test_classifier_runs_on_one_image(name):
    clf = load_classifier(name, "random")
    x = torch.rand(1, 3, 231, 250)  # not the crop size: the entry's own resize and crop run
    with torch.no_grad():
        logits = clf(x)
    assert logits.shape == (1, CLASSIFIERS.get(name).num_classes)
    assert torch.isfinite(logits).all()


def test_unknown_classifier_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="resnet50"):
        load_classifier("resnet5O", "random")


def test_codec_checkpoint_loads_back_and_reproduces_outputs(tmp_path, kodak_crop):
    a = load_codec("mbt2018-mean@q1", "random", seed=7)
    path = tmp_path / "codec.pth.tar"
    torch.save(a.state_dict(), path)
    b = load_codec("mbt2018-mean@q1", path)
    assert b.liccs_weights.source == "checkpoint" and b.liccs_weights.sha256 == sha256_of(path)
    x = torch.nn.functional.pad(kodak_crop, (0, 11, 0, 53))[..., :128, :128]
    with torch.no_grad():
        sa, sb = a.compress(x), b.compress(x)
        assert sa["strings"] == sb["strings"]
        torch.testing.assert_close(codec_forward(a, x, "hard").x_hat, codec_forward(b, x, "hard").x_hat)


def test_classifier_checkpoint_loads_back_and_reproduces_outputs(tmp_path):
    a = load_classifier("resnet18", "random", seed=3)
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": a.net.state_dict()}, path)
    b = load_classifier("resnet18", path)
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))


def test_entropy_tables_are_rebuilt_after_loading(tmp_path):
    """A checkpoint whose stored CDF tables are stale must not be used as is: load_codec calls update()."""
    m = load_codec("bmshj2018-factorized@q1", "random", seed=1)
    with torch.no_grad():
        for p in m.entropy_bottleneck.parameters():
            p.add_(0.5)  # weights change after update(): the stored tables are now stale
    path = tmp_path / "stale.pth"
    torch.save(m.state_dict(), path)
    loaded = load_codec("bmshj2018-factorized@q1", path)
    ref = load_codec("bmshj2018-factorized@q1", path)
    ref.update(force=True)
    stale = torch.load(path)["entropy_bottleneck._quantized_cdf"]
    assert torch.equal(loaded.entropy_bottleneck._quantized_cdf, ref.entropy_bottleneck._quantized_cdf)
    assert not torch.equal(loaded.entropy_bottleneck._quantized_cdf, stale)


def test_pretrained_from_the_hub_cache(tmp_cache):
    """A file placed where the error message says is picked up as pretrained weights."""
    from pathlib import Path

    from compressai.zoo.image import model_urls

    from liccs.core.paths import hub_checkpoint_dir

    url = model_urls["bmshj2018-factorized"]["mse"][1]
    dst = hub_checkpoint_dir() / Path(url).name
    dst.parent.mkdir(parents=True)
    torch.save(load_codec("bmshj2018-factorized@q1", "random", seed=5).state_dict(), dst)
    m = load_codec("bmshj2018-factorized@q1", "pretrained")
    assert m.liccs_weights.source == "pretrained" and m.liccs_weights.path == str(dst)


@pytest.mark.parametrize("offline", ["1", "0"])
def test_pretrained_offline_fails_fast_with_the_file_and_where_to_put_it(tmp_cache, monkeypatch, offline):
    import urllib.error

    import liccs.zoo.weights as w

    monkeypatch.setenv("LICCS_OFFLINE", offline)

    def no_network(url, dst, timeout=w.DOWNLOAD_TIMEOUT_S):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(w, "download", no_network)
    t = time.perf_counter()
    with pytest.raises(WeightsError, match=r"bmshj2018-hyperprior-2-93677231\.pth\.tar.*place it at .*checkpoints"):
        load_codec("bmshj2018-hyperprior@q2", "pretrained")
    with pytest.raises(WeightsError, match=r"resnet18-.*\.pth"):
        load_classifier("resnet18", "pretrained")
    assert time.perf_counter() - t < 5


def test_missing_corrupt_and_mismatched_checkpoints_name_the_file(tmp_path):
    with pytest.raises(WeightsError, match="nope.pth"):
        load_codec("mbt2018@q1", tmp_path / "nope.pth")
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"\x80\x02not a checkpoint" * 10)
    with pytest.raises(WeightsError, match="corrupt.pth.*cannot be read"):
        load_codec("mbt2018@q1", bad)
    other = tmp_path / "other.pth"
    torch.save(load_codec("bmshj2018-factorized@q1", "random").state_dict(), other)
    with pytest.raises(WeightsError, match="other.pth does not fit mbt2018-mean@q1"):
        load_codec("mbt2018-mean@q1", other)
