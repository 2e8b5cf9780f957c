import pytest

from liccs.core import Registry
from liccs.core.errors import DuplicateNameError, InputError, UnknownNameError
from liccs.zoo import CODECS, codec_names, list_classifiers, list_codecs, parse_codec

COMPRESSAI_ARCHS = ["bmshj2018-factorized", "bmshj2018-factorized-relu", "bmshj2018-hyperprior", "mbt2018-mean",
                    "mbt2018", "cheng2020-anchor", "cheng2020-attn"]


def test_registry_rejects_duplicates_and_lists_valid_names():
    r: Registry[int] = Registry("thing")
    r.register("a", 1)
    with pytest.raises(DuplicateNameError):
        r.register("a", 2)
    with pytest.raises(UnknownNameError, match="Valid things: a"):
        r.get("b")


def test_every_compressai_model_is_registered_with_its_qualities():
    assert set(COMPRESSAI_ARCHS) <= set(list_codecs())
    for arch in COMPRESSAI_ARCHS:
        expect = tuple(range(1, 7)) if arch.startswith("cheng2020") else tuple(range(1, 9))
        assert CODECS.get(arch).qualities == expect
    assert "mbt2018-mean@q8" in codec_names()
    assert {"resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0", "vit_b_16"} <= set(list_classifiers())


def test_codec_names_parse_and_round_trip():
    spec = parse_codec("cheng2020-anchor@q6:ms-ssim")
    assert (spec.arch, spec.quality, spec.metric) == ("cheng2020-anchor", 6, "ms-ssim")
    assert str(spec) == "cheng2020-anchor@q6:ms-ssim"
    assert str(parse_codec("mbt2018@q1")) == "mbt2018@q1"


@pytest.mark.parametrize(
    "name, match",
    [
        ("bmshj2018-hyperpror@q3", "Did you mean 'bmshj2018-hyperprior'"),
        ("cheng2020-anchor@q7", "Valid quality of cheng2020-anchors: q1, q2"),
        ("mbt2018@q2:psnr", "metric"),
    ],
)
def test_bad_codec_names_list_the_valid_ones(name, match):
    with pytest.raises(UnknownNameError, match=match):
        parse_codec(name)


def test_malformed_codec_name_says_the_form():
    with pytest.raises(InputError, match="ARCH@qN"):
        parse_codec("bmshj2018-hyperprior-3")
