import pytest
import torch

from liccs.core.errors import UnknownNameError
from liccs.core.rounding import SURROGATES
from liccs.pipeline import LICCS, codec_roundtrip
from liccs.zoo import load_classifier, load_codec

GRADIENT_SURROGATES = [s for s in SURROGATES if s != "hard"]


@pytest.fixture(scope="module")
def small_classifier():
    return load_classifier("resnet18", "random")


@pytest.mark.parametrize("codec_name", ["bmshj2018-factorized@q1", "bmshj2018-hyperprior@q1", "mbt2018-mean@q1",
                                        "mbt2018@q1"])
@pytest.mark.parametrize("rounding", GRADIENT_SURROGATES)
def test_gradient_wrt_input_is_nonzero_for_every_surrogate(codec_name, rounding, small_classifier, kodak_crop):
    torch.manual_seed(0)
    p = LICCS(load_codec(codec_name, "random"), small_classifier, rounding=rounding)
    x = kodak_crop.clone().requires_grad_(True)
    logits, rec = p.forward_all(x)
    (logits[0, 1] + rec.bpp().sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()


def test_hard_rounding_has_no_gradient_like_compressai_eval(small_classifier, kodak_crop):
    p = LICCS(load_codec("bmshj2018-hyperprior@q1", "random"), small_classifier, rounding="hard")
    x = kodak_crop.clone().requires_grad_(True)
    p.reconstruct(x).x_hat.sum().backward()
    assert x.grad.abs().sum() == 0


@pytest.mark.parametrize("codec_name", ["bmshj2018-hyperprior@q3", "mbt2018-mean@q3"])
def test_hard_pipeline_reconstruction_equals_compressai_compress_decompress(codec_name, small_classifier, kodak_crop):
    codec = load_codec(codec_name, "random")
    p = LICCS(codec, small_classifier, rounding="hard")
    with torch.no_grad():
        ours = p.reconstruct(kodak_crop).x_hat
    ref, nbytes = codec_roundtrip(codec, kodak_crop)
    assert ours.shape == kodak_crop.shape
    assert (ours - ref).abs().max().item() <= 1e-4
    assert nbytes[0] > 0


def test_hard_autoregressive_pipeline_is_the_real_decode(small_classifier, kodak_crop):
    codec = load_codec("mbt2018@q1", "random")
    with torch.no_grad():
        ours = LICCS(codec, small_classifier, rounding="hard").reconstruct(kodak_crop).x_hat
    ref, _ = codec_roundtrip(codec, kodak_crop)
    torch.testing.assert_close(ours, ref)


def test_pipeline_records_its_surrogate_and_weights(small_classifier):
    p = LICCS(load_codec("mbt2018-mean@q2", "random"), small_classifier, rounding="cubic")
    d = p.describe()
    assert d["rounding"] == "cubic" and d["codec"] == "mbt2018-mean@q2" and d["codec_weights"]["source"] == "random"


def test_classifier_alone_when_codec_is_none(small_classifier):
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(LICCS(None, small_classifier)(x), small_classifier(x))


def test_unknown_surrogate_lists_the_valid_ones(small_classifier):
    with pytest.raises(UnknownNameError, match="cubic"):
        LICCS(None, small_classifier, rounding="round")
