"""K-way compression defense: K=1 is the plain codec, header bits, exact inversion, RD never worse."""

from __future__ import annotations

import zlib

import pytest
import torch

from liccs.attack import PGD, EoT
from liccs.core.errors import InputError
from liccs.papers.b.adaptive import RandomTransformLICCS
from liccs.papers.b.defense import KWayDefense, KWayEncoding
from liccs.papers.b.transforms import DEFAULT_TRANSFORMS, get_transform
from liccs.pipeline import LICCS, codec_roundtrip
from tests.attack.conftest import tiny_codec

ALL = ("identity", *DEFAULT_TRANSFORMS)
LAMBDA = 0.01


class ZlibCodec:
    """Lossless, content-dependent rate, CompressAI's contract, and not a torch module (like a deployed codec)."""

    def compress(self, x):
        return {"strings": [[zlib.compress((xi * 255).round().to(torch.uint8).numpy().tobytes()) for xi in x]],
                "shape": tuple(x.shape[-2:])}

    def decompress(self, strings, shape):
        imgs = [torch.frombuffer(bytearray(zlib.decompress(s)), dtype=torch.uint8).view(3, *shape) for s in strings[0]]
        return {"x_hat": torch.stack(imgs).float() / 255}


@pytest.fixture(scope="module")
def images(kodak_crop, cifar4):
    """A 75×117 Kodak crop (not a multiple of 64) and 4 CIFAR images, quantized to 8 bits."""
    return [kodak_crop.mul(255).round().div(255), cifar4[0][:4]]


@pytest.mark.parametrize("name", ALL)
def test_transforms_invert_exactly(name, kodak_crop):
    t = get_transform(name)
    y = t(kodak_crop)
    assert torch.equal(t.inverse(y), kodak_crop)
    assert tuple(y.shape[-2:]) == ((117, 75) if t.swaps_hw else (75, 117))


@pytest.mark.parametrize("name", DEFAULT_TRANSFORMS)
@pytest.mark.parametrize("codec_kind", ["zlib", "tiny"])
def test_decoder_inverts_every_transform(name, codec_kind, images):
    x = images[0]
    codec = ZlibCodec() if codec_kind == "zlib" else tiny_codec()
    d = KWayDefense(codec, k=2, transforms=[name], lmbda=LAMBDA)
    t = d.candidates[1]
    if t.swaps_hw:  # a 90° transform keeps only a square frame: refused on the 75×117 crop, decoded on a square
        strings, shape, _ = d._compress(t(x))
        with pytest.raises(InputError, match="does not keep the 75×117 frame"):
            d.decode(KWayEncoding(strings, [shape], [1], [tuple(x.shape[-2:])], d.header_bits))
        assert d.roundtrip(x).chosen == [0]  # never tried there
        x = x[..., :75, :75]
    strings, shape, _ = d._compress(t(x))  # force candidate 1 into the header
    x_hat = d.decode(KWayEncoding(strings, [shape], [1], [tuple(x.shape[-2:])], d.header_bits))
    assert x_hat.shape == x.shape
    if codec_kind == "zlib":
        assert torch.equal(x_hat, x)  # lossless codec: the inverse transform gives the input back exactly
    else:
        assert torch.equal(x_hat, t.inverse(codec_roundtrip(codec, t(x))[0]))


@pytest.mark.parametrize("codec_kind", ["zlib", "tiny"])
def test_k1_is_bit_identical_to_the_plain_codec(codec_kind, images):
    codec = ZlibCodec() if codec_kind == "zlib" else tiny_codec()
    for x in images:
        res = KWayDefense(codec, k=1, lmbda=LAMBDA).roundtrip(x)
        if codec_kind == "tiny":
            ref, nbytes = codec_roundtrip(codec, x)
        else:
            from liccs.core import crop_to, pad_to_multiple

            xp, size = pad_to_multiple(x, 64)
            out = codec.compress(xp)
            ref = crop_to(codec.decompress(out["strings"], out["shape"])["x_hat"], size)
            nbytes = [len(s) for s in out["strings"][0]]
        assert torch.equal(res.x_hat, ref)
        assert res.encoding.header_bits == 0 and res.chosen == [0] * x.shape[0]
        assert res.bpp.tolist() == [8 * n / (x.shape[-2] * x.shape[-1]) for n in nbytes]


@pytest.mark.parametrize("k,bits", [(2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (16, 4)])
def test_header_bits_are_counted_in_bpp(k, bits, images):
    x = images[1]
    d = KWayDefense(ZlibCodec(), k=k, lmbda=LAMBDA)
    res = d.roundtrip(x)
    assert d.header_bits == bits and len(d.candidates) == k and d.candidates[0].name == "identity"
    nbytes = [sum(len(s) for s in st) for st in res.encoding.strings]
    assert res.bpp.tolist() == pytest.approx([(8 * n + bits) / (32 * 32) for n in nbytes])


@pytest.mark.parametrize("rate", ["bytes", "likelihood"])
@pytest.mark.parametrize("k", [2, 4, 8])
def test_chosen_rd_is_never_above_the_identity(k, rate, images):
    codec = tiny_codec(scale=6.0)
    noise = torch.rand(2, 3, 40, 72, generator=torch.Generator().manual_seed(0))
    for x in (*images, noise):
        d = KWayDefense(codec, k=k, lmbda=LAMBDA, rate=rate, seed=1)
        res = d.roundtrip(x)
        picked = res.rd.gather(1, torch.tensor(res.chosen)[:, None]).squeeze(1)
        assert (picked <= res.rd[:, 0]).all()
        assert torch.equal(res.x_hat, d.decode(res.encoding)) and res.x_hat.shape == x.shape
        if rate == "bytes":  # the recorded RD is the real one of what the decoder outputs
            mse = (res.x_hat - x).pow(2).flatten(1).mean(1).double()
            torch.testing.assert_close(picked, res.bpp + LAMBDA * 255**2 * mse)


def test_some_input_prefers_a_transform():
    # constant columns: rotated, they become constant rows, which zlib (reading row by row) codes in fewer bytes.
    # Square images: the 90° transforms keep only a square frame (non-square images never try them).
    codec = ZlibCodec()
    x = torch.rand(8, 3, 48, 48, generator=torch.Generator().manual_seed(0)).mul(255).round().div(255)
    x[:, :, :, :24] = x[:, :, :1, :24]  # constant columns on the left half: zlib prefers some orientation
    res = KWayDefense(codec, k=8, lmbda=LAMBDA, transforms=("rot90", "transpose", "hflip", "vflip", "rot180",
                                                             "rot270", "antitranspose")).roundtrip(x)
    assert any(c != 0 for c in res.chosen)
    assert (res.rd.min(1).values < res.rd[:, 0]).any()


def test_candidates_are_seeded_and_bad_arguments_refused():
    a, b = KWayDefense(ZlibCodec(), k=4, seed=0, lmbda=1), KWayDefense(ZlibCodec(), k=4, seed=0, lmbda=1)
    assert [t.name for t in a.candidates] == [t.name for t in b.candidates]
    names = [t.name for t in a.candidates]
    others = [[t.name for t in KWayDefense(ZlibCodec(), k=4, seed=s, lmbda=1).candidates] for s in range(1, 5)]
    assert any(o != names for o in others)
    for bad in (dict(k=0), dict(k=17), dict(rate="bits"), dict(lmbda=-1), dict(transforms=["rot45"]),
                dict(transforms=["hflip", "hflip"])):
        with pytest.raises(InputError):
            KWayDefense(ZlibCodec(), **{"lmbda": 1.0, **bad})
    with pytest.raises(InputError, match="λ"):
        KWayDefense(ZlibCodec(), k=2)  # no quality to take CompressAI's λ from
    with pytest.raises(InputError):
        KWayDefense(object(), k=2, lmbda=1)


def test_default_lambda_is_compressai_s(trained_cnn):
    from liccs.zoo import load_codec

    d = KWayDefense(load_codec("bmshj2018-factorized@q3", "random"), k=2)
    assert d.lmbda == 0.0067


def test_adaptive_model_and_eot_attack_on_the_defense(trained_cnn, batch):
    x, y = batch[0][:4], batch[1][:4]
    codec = tiny_codec()
    d = KWayDefense(codec, k=4, lmbda=LAMBDA, seed=0)
    fixed = RandomTransformLICCS(codec, trained_cnn, ["identity"], rounding="ste")
    with torch.no_grad():
        torch.testing.assert_close(fixed(x), LICCS(codec, trained_cnn, rounding="ste")(x))
    model = RandomTransformLICCS.from_defense(d, trained_cnn)
    seen = set()
    for _ in range(20):
        model.reconstruct(x)
        seen.add(model.last)
    assert seen == {t.name for t in d.candidates}
    atk = PGD(EoT(model, samples=3), eps=8 / 255, steps=3)
    adv = atk(x, y)
    assert atk.describe()["eot_samples"] == 3
    assert atk.loss(adv, y).mean() > atk.loss(x, y).mean()
    # the adaptive codec attack: raise the distortion that the defended codec's reconstruction suffers
    dist = PGD(EoT(RandomTransformLICCS.from_defense(d, None, pool="all"), samples=2), objective="distortion",
               eps=8 / 255, steps=3)
    adv = dist(x)
    assert dist.loss(adv).mean() > dist.loss(x).mean()


def test_wraps_the_deployed_codec(images):
    """The same defense code around liccs.engines' DeployedCodec (framed strings, its own padding)."""
    from liccs.engines.codec import DeployedCodec
    from liccs.zoo import load_codec

    deployed = DeployedCodec.on_engine(load_codec("bmshj2018-hyperprior@q1", "random"), "torch")
    x = images[0]
    plain = deployed.compress(x)
    ref = deployed.decompress(plain["strings"], plain["shape"], plain["size"])["x_hat"]
    k1 = KWayDefense(deployed, k=1).roundtrip(x)
    assert torch.equal(k1.x_hat, ref)
    assert k1.bpp.tolist() == [8 * len(plain["strings"][0][0] + plain["strings"][1][0]) / (75 * 117)]
    d = KWayDefense(deployed, k=4, seed=0)
    res = d.roundtrip(x)
    assert d.lmbda == 0.0018  # CompressAI's λ for q1, found through the wrapped model
    assert res.rd[0, res.chosen[0]] <= res.rd[0, 0] and torch.equal(res.x_hat, d.decode(res.encoding))


@pytest.mark.parametrize("field, value, match", [
    ("header", [True, 0], "not an integer"), ("header", [0, 1.0], "not an integer"), ("header", [0, 9], "outside"),
    ("sizes", [(8, 8)], "1 sizes for 2"), ("sizes", [(8, 8), (0, 8)], "positive integers"),
    ("strings", [[b"x"], [b"x", b"y"]], "different numbers of strings"),
])
def test_a_forged_kway_encoding_is_refused_naming_the_field(field, value, match, images):
    from dataclasses import replace

    d = KWayDefense(ZlibCodec(), k=2, lmbda=LAMBDA)
    enc = d.encode(images[1][:2]).encoding
    with pytest.raises(InputError, match=match):
        d.decode(replace(enc, **{field: value}))
