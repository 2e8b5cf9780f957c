"""Paper B's per-input random K-way defense and the selection-aware adaptive attack: exact inversion of every
family transform at every size, header bits in the bpp, per-image candidates, identity wins ties, the
selection-aware gradient, selection-aware vs EoT, oracle vs defense."""

from __future__ import annotations

import math

import pytest
import torch

from liccs.attack import PGD, EoT
from liccs.attack.evaluate import quantize_png
from liccs.core.errors import InputError
from liccs.papers.b.adaptive import RandomTransformLICCS
from liccs.papers.b.adaptive_select import SelectionAware, SoftSelected
from liccs.papers.b.defense_random import RandomKWayDefense, transform_family
from liccs.papers.b.measure import measure, plain
from liccs.papers.b.transforms import get_transform
from liccs.pipeline import LICCS, codec_roundtrip, psnr
from tests.attack.conftest import tiny_codec
from tests.papers.test_defense import ZlibCodec

FAMILY = transform_family()


@pytest.mark.parametrize("size", [(1, 1), (5, 5), (8, 8), (33, 33), (5, 7), (33, 64), (64, 31)])
@pytest.mark.parametrize("t", FAMILY, ids=[t.name for t in FAMILY])
def test_every_family_transform_inverts_exactly_and_keeps_the_frame(t, size):
    """Odd and even sizes: each transform is exact, and keeps H×W wherever the defense may use it (90° ones:
    squares only), so no candidate grows the frame the codec pads and pays for."""
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(size[0]))
    y = t(x)
    assert tuple(y.shape[-2:]) == t.out_size(*size)
    assert torch.equal(t.inverse(y), x)
    assert t.keeps_frame(*size) == (size[0] == size[1] or not t.swaps_hw)
    if t.keeps_frame(*size):
        assert tuple(y.shape[-2:]) == size


def test_family_and_header_size():
    assert len(FAMILY) == 1 + 7 + 15 and FAMILY[0].name == "identity"
    assert RandomKWayDefense(ZlibCodec(), 4, lmbda=0.01).header_bits == math.ceil(math.log2(23)) == 5
    assert RandomKWayDefense(ZlibCodec(), 2, family=FAMILY[:5], lmbda=0.01).header_bits == 3
    with pytest.raises(InputError, match="grows the frame"):
        get_transform("pad:1,1")
    with pytest.raises(InputError, match="grows the frame"):
        get_transform("up2")


def test_non_square_images_draw_only_frame_keeping_transforms():
    d = RandomKWayDefense(ZlibCodec(), 8, lmbda=0.01)
    idx = d.draw(16, seed=0, hw=(24, 40))
    assert not any(d.family[f].swaps_hw for f in idx.flatten().tolist())
    assert torch.equal(d.draw(4, seed=3, hw=(32, 32)), d.draw(4, seed=3))  # a square: the whole family
    with pytest.raises(InputError, match="keep the 24×40 frame"):
        RandomKWayDefense(ZlibCodec(), 20, lmbda=0.01).draw(1, seed=0, hw=(24, 40))


def test_no_candidate_pays_for_a_larger_frame():
    """A 128² image: every candidate is coded in the same 128² frame, so its bits stay near the identity's (a
    padded shift to 131², coded as 192², cost ~1.9×); on a smooth image a shift or flip can win."""
    g = torch.linspace(0, 1, 128)
    x = (0.5 + 0.25 * torch.sin(6 * g)[:, None] * torch.cos(4 * g)[None, :]).expand(1, 3, 128, 128).contiguous()
    d = RandomKWayDefense(tiny_codec(), len(FAMILY), lmbda=0.01)
    s = d.score(x, seed=0)
    assert (s.bits.double() <= 1.25 * s.bits[:, :1].double()).all()
    assert all(tuple(r.shape[-2:]) == (128, 128) for r in s.x_hat)


@pytest.mark.parametrize("size", [(31, 45), (64, 64), (17, 9)])
def test_lossless_roundtrip_is_exact_and_header_bits_are_in_the_bpp(size):
    x = torch.rand(6, 3, *size, generator=torch.Generator().manual_seed(1)).mul(255).round().div(255)
    d = RandomKWayDefense(ZlibCodec(), 8, lmbda=0.01)
    res = d.encode(x, seed=3)
    assert torch.equal(res.x_hat, x) and torch.equal(d.decode(res.encoding), x)
    nbytes = [sum(len(s) for s in st) for st in res.encoding.strings]
    assert res.bpp.tolist() == pytest.approx([(8 * n + d.header_bits) / (size[0] * size[1]) for n in nbytes])


def test_every_transform_decodes_through_a_real_codec():
    codec, x = tiny_codec(), torch.rand(1, 3, 37, 37, generator=torch.Generator().manual_seed(2))
    d = RandomKWayDefense(codec, 2, lmbda=0.01)
    from liccs.papers.b.defense import KWayEncoding

    for f, t in enumerate(FAMILY):  # a square, odd size: every transform keeps its frame
        strings, shape, _ = d._compress(t(x))
        x_hat = d.decode(KWayEncoding(strings, [shape], [f], [(37, 37)], d.header_bits))
        assert torch.equal(x_hat, t.inverse(codec_roundtrip(codec, t(x))[0])), t.name


def test_candidates_differ_between_images_and_requests():
    d = RandomKWayDefense(ZlibCodec(), 4, lmbda=0.01, seed=0)
    idx = d.draw(8, seed=5)
    assert (idx[:, 0] == 0).all() and all(len(set(r)) == 4 for r in idx.tolist())
    assert len({tuple(r) for r in idx.tolist()}) > 1
    assert not torch.equal(idx, d.draw(8, seed=6)) and torch.equal(idx, d.draw(8, seed=5))
    x = torch.rand(2, 3, 16, 16)
    a, b = d.score(x), d.score(x)  # no seed: successive requests draw anew
    assert not torch.equal(a.index, b.index)


def test_identity_wins_ties():
    x = torch.full((3, 3, 16, 16), 0.5)  # a constant image: every dihedral/shift candidate costs the same
    fam = [t for t in FAMILY if t.name.startswith(("identity", "shift", "hflip", "vflip", "rot180"))]
    res = RandomKWayDefense(ZlibCodec(), 6, family=fam, lmbda=0.01).encode(x, seed=0)
    assert torch.equal(res.rd[:, 0], res.rd.min(1).values) and res.chosen == [0, 0, 0]


def test_chosen_rd_never_above_identity_and_oracle_never_worse():
    codec = tiny_codec(scale=6.0)
    x = torch.rand(4, 3, 40, 56, generator=torch.Generator().manual_seed(0)).mul(255).round().div(255)
    d = RandomKWayDefense(codec, 6, lmbda=0.01)
    res = d.encode(x, seed=1)
    assert (res.rd.gather(1, torch.tensor(res.chosen)[:, None]).squeeze(1) <= res.rd[:, 0]).all()
    noisy = (x + 4 / 255 * torch.randn_like(x).sign()).clamp(0, 1)
    rows = measure(codec, {6: d}, None, noisy, x, plain(codec, x)[0], seed=1)
    by = {(r["defense"], i % 4): r for i, r in enumerate(rows)}
    for i in range(4):
        assert by[("oracle", i)]["psnr_clean"] >= by[("random", i)]["psnr_clean"] - 1e-9
        assert by[("oracle", i)]["psnr_clean"] >= by[("none", i)]["psnr_clean"] - 1e-9  # identity is a candidate


def test_selection_aware_gradient_is_nonzero():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    for kind in ("distortion", "rate"):
        target = SelectionAware(RandomKWayDefense(tiny_codec(), 4, lmbda=0.01))
        out = target.forward_all(x)
        assert out.weights.shape == (2, 4) and torch.allclose(out.weights.sum(1), torch.ones(2))
        (g,) = torch.autograd.grad(SoftSelected(kind)(out, None, False).sum(), x)
        assert g.abs().sum() > 0


def test_selection_aware_beats_eot_on_the_random_defense():
    codec = tiny_codec()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)).mul(255).round().div(255)
    d = RandomKWayDefense(codec, 4, lmbda=0.01)

    def defended(adv):
        return psnr(d.encode(adv, seed=123).x_hat, x).mean().item()

    sel = PGD(SelectionAware(d), objective=SoftSelected("distortion"), eps=8 / 255, steps=5, seed=0)
    eot = PGD(EoT(RandomTransformLICCS(codec, None, d.family), samples=4), objective="distortion", eps=8 / 255,
              steps=5, seed=0)
    p_sel, p_eot = defended(quantize_png(sel(x))), defended(quantize_png(eot(x)))
    assert p_sel < p_eot < defended(x)


def test_distortion_recon_objective_references_the_plain_reconstruction():
    from liccs.attack.ensemble import CodecOnly
    from liccs.attack.objectives import parse_objective

    codec = tiny_codec()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    atk = PGD(CodecOnly(codec, "ste"), objective="distortion-recon", eps=8 / 255, steps=3, seed=0)
    assert parse_objective("distortion-recon").name == "distortion-recon"
    assert atk.loss(x).abs().max() < 1e-10  # ste's forward is the hard rounding: the clean image scores 0
    assert (atk.loss(atk(x), clean=x) > 1e-6).all()


def test_distortion_clean_is_against_the_clean_image_and_differs_from_recon():
    """distortion-clean: MSE(x̂(x'), x); distortion-recon: MSE(x̂(x'), x̂_plain(x)). Under STE they once shared a
    reference (the clean image's hard reconstruction) and crafted identical images; now neither loss nor
    gradient agree."""
    from liccs.attack.ensemble import CodecOnly

    codec = tiny_codec()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    xp = (x + 4 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).sign()).clamp(0, 1)
    grads, losses = {}, {}
    for name in ("distortion-clean", "distortion-recon", "distortion"):
        atk = PGD(CodecOnly(codec, "ste"), objective=name, eps=8 / 255, steps=1, seed=0)
        atk.objective.prepare(atk.target, x, None)
        grads[name], _ = atk.gradient(xp, None, torch.Generator().manual_seed(0))
        losses[name] = atk.loss(xp, clean=x)
    with torch.no_grad():  # STE's forward: the hard-rounded reconstruction of the attacked image
        want = (LICCS(codec, torch.nn.Identity(), rounding="hard").reconstruct(xp).x_hat - x).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(losses["distortion-clean"], want, rtol=1e-4, atol=1e-7)
    assert not torch.allclose(grads["distortion-clean"], grads["distortion-recon"])
    assert not torch.allclose(grads["distortion-clean"], grads["distortion"])
    clean = PGD(CodecOnly(codec, "ste"), objective="distortion-clean", eps=8 / 255, steps=1, seed=0)
    assert (clean.loss(x) > 1e-6).all()  # at the clean image: the codec's own error, not 0 as for recon
