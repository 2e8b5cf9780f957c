"""Paper B's measurements ("A training-free defense framework for robust learned image compression"):
the evaluation images, and real-bitstream metrics of a codec with and without the K-way defense.

Every number comes from real bitstreams: bpp from the bytes the codec (PyTorch's CompressAI entropy coder, or a
:class:`~liccs.engines.codec.DeployedCodec`'s framed strings) writes, the K-way header's ``⌈log2 K⌉`` bits
included; PSNR and MS-SSIM of the decoder's output against the codec's input.

One scoring serves every K: :class:`~liccs.attack.defense.KWayDefense` draws its K−1 transforms as the first
K−1 entries of one seeded permutation of the pool, so the candidates of K=2 ⊂ K=4 ⊂ K=8. Scoring the largest
K's candidates once (:func:`score`) and picking the lowest RD loss among the first K (:func:`pick`) gives each
K's choice, bytes and reconstruction exactly as ``KWayDefense(codec, K).encode`` does (tested), at the cost of
the largest K alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from liccs.attack.defense import KWayDefense
from liccs.attack.evaluate import ms_ssim
from liccs.config import RunConfig
from liccs.data import open_source, pad_to_multiple, to_float
from liccs.pipeline import psnr


@dataclass
class Images:
    """The evaluation images, each ``[1, 3, H, W]`` in [0, 1] (centre crops, or whole images of mixed sizes)."""

    x: list[Tensor]
    names: list[str]

    def groups(self, batch_size: int) -> list[list[int]]:
        """Indices in batches of at most ``batch_size`` images of one size, in order."""
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, xi in enumerate(self.x):
            by_size.setdefault(tuple(xi.shape), []).append(i)
        return [idx[j:j + batch_size] for idx in by_size.values() for j in range(0, len(idx), batch_size)]

    def stack(self, idx: list[int]) -> Tensor:
        return torch.cat([self.x[i] for i in idx])


def centre_crop(x: Tensor, side: int) -> Tensor:
    """The centre ``side × side`` of ``x`` (no resizing); the whole image where it is smaller."""
    h, w = x.shape[-2:]
    sh, sw = min(side, h), min(side, w)
    top, left = (h - sh) // 2, (w - sw) // 2
    return x[..., top:top + sh, left:left + sw].contiguous()


def load_images(cfg: RunConfig) -> Images:
    """``data.images`` images of ``data.source`` (evenly spaced, as the run's own), centre-cropped to
    ``defense.crop`` at full resolution (``0``: whole images). The run's own images are at the classifier's
    geometry, which a codec-only experiment does not use."""
    source = open_source(cfg.data.source)
    n = min(cfg.data.images, len(source))
    idx = sorted({round(i * (len(source) - 1) / max(1, n - 1)) for i in range(n)}) if n < len(source) else range(n)
    xs, names = [], []
    for i in idx:
        s = source.load(i)
        x = to_float(s.image)[None] if s.image.dtype == torch.uint8 else s.image[None].float()
        xs.append(centre_crop(x, cfg.defense.crop) if cfg.defense.crop else x.contiguous())
        names.append(s.name)
    return Images(xs, names)


@dataclass
class Scored:
    """The first ``n`` candidates of a K-way defense on a batch: payload bits ``[B, n]`` (the codec's strings,
    no header), MSE ``[B, n]`` of each reconstruction (in the input's frame) against the input, the
    reconstructions, and the candidates' names."""

    bits: Tensor
    mse: Tensor
    x_hat: list[Tensor]
    names: list[str]
    pixels: int


@torch.no_grad()
def score(defense: KWayDefense, x: Tensor, n: int | None = None) -> Scored:
    """Encode and decode ``x`` with the first ``n`` candidates of ``defense`` (all by default); ``rate="bytes"``."""
    cands = defense.candidates[: n or len(defense.candidates)]
    bits, mse, recs = [], [], []
    for t in cands:
        _, x_hat, strings, _ = defense._score(x, t)  # (rate, reconstruction in x's frame, strings, shape)
        bits.append(torch.tensor([8 * sum(len(s) for s in st) for st in strings], dtype=torch.int64))
        mse.append((x_hat - x).pow(2).flatten(1).mean(1).to(torch.float64))
        recs.append(x_hat)
    return Scored(torch.stack(bits, 1), torch.stack(mse, 1), recs, [t.name for t in cands],
                  int(x.shape[-2]) * int(x.shape[-1]))


@dataclass
class Pick:
    """K's choice per image: candidate index, bpp (header included), RD loss of the choice and of the identity."""

    chosen: list[int]
    bpp: Tensor
    rd: Tensor
    rd_identity: Tensor
    x_hat: Tensor
    names: list[str]


def header_bits(k: int) -> int:
    """The K-way header: ``⌈log2 K⌉`` bits per image (none for the plain codec, K = 1)."""
    return math.ceil(math.log2(k)) if k > 1 else 0


def pick(s: Scored, k: int, lmbda: float) -> Pick:
    """The K-way choice among the first ``k`` scored candidates, computed as ``KWayDefense.encode`` does
    (its float32 rate, then the first minimum of ``R + λ·255²·MSE``)."""
    if k > s.bits.shape[1]:
        raise ValueError(f"K={k} needs {k} scored candidates, only {s.bits.shape[1]} were scored")
    hb = header_bits(k)
    rate = torch.stack([torch.tensor(((s.bits[:, j] + hb).double() / s.pixels).tolist()) for j in range(k)], 1)
    rd = rate.to(torch.float64) + lmbda * 255.0**2 * s.mse[:, :k]
    chosen = rd.argmin(1).tolist()
    rows = torch.arange(len(chosen))
    x_hat = torch.stack([s.x_hat[c][i] for i, c in enumerate(chosen)])
    bpp = (s.bits[rows, chosen] + hb).double() / s.pixels
    return Pick(chosen, bpp, rd[rows, chosen], rd[:, 0], x_hat, [s.names[c] for c in chosen])


def ms_ssim_of(x: Tensor, picks: list[Pick]) -> list[list[float | None]]:
    """MS-SSIM per pick and image against ``x``, each distinct (image, candidate) computed once (picks of
    several K mostly choose the same candidate, and MS-SSIM costs more than a codec round trip here)."""
    need = sorted({(i, name) for p in picks for i, name in enumerate(p.names)})
    recs = {(i, name): p.x_hat[i] for p in picks for i, name in enumerate(p.names)}
    vals = ms_ssim(torch.stack([recs[n] for n in need]), torch.stack([x[i] for i, _ in need])) if need else []
    memo = dict(zip(need, vals, strict=True))
    return [[memo[(i, name)] for i, name in enumerate(p.names)] for p in picks]


def pick_rows(x: Tensor, p: Pick, k: int, ms: list[float | None] | None = None) -> list[dict[str, Any]]:
    """One row per image of a pick: ``defense`` (``none`` for K = 1), ``k``, bpp, PSNR, MS-SSIM (None when not
    computed, or below 161 pixels a side), the chosen transform, the RD loss of the choice and of the identity."""
    ps = psnr(p.x_hat, x).tolist()
    return [{"defense": "none" if k == 1 else "k-way", "k": k, "bpp": float(p.bpp[i]), "psnr": ps[i],
             "ms_ssim": ms[i] if ms is not None else None, "chosen": p.names[i], "rd": float(p.rd[i]),
             "rd_identity": float(p.rd_identity[i])} for i in range(x.shape[0])]


def evaluate(defense: KWayDefense, x: Tensor, ks: list[int], msssim: bool = True) -> list[dict[str, Any]]:
    """Rows of ``x`` through the plain codec (K = 1) and each K of ``ks`` (≤ the defense's K), one scoring."""
    s = score(defense, x, max(ks))
    picks = [pick(s, k, defense.lmbda) for k in ks]
    ms = ms_ssim_of(x, picks) if msssim else [None] * len(picks)
    return [r for k, p, m in zip(ks, picks, ms, strict=True) for r in pick_rows(x, p, k, m)]


def _elapsed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


@torch.no_grad()
def timed_clean(codec: Any, defenses: dict[int, KWayDefense], x: Tensor) -> list[dict[str, Any]]:
    """The plain codec and each K-way defense on ``x``, each through its real encoder and decoder, timed.

    ``encode_s``/``decode_s`` are seconds per image: the plain codec's ``compress``/``decompress``; the
    defense's ``encode`` (every candidate encoded and decoded, the choice, the header) less its ``decode``,
    which ``encode`` runs once to return the decoder's output, and that ``decode`` timed again alone.
    """
    b = x.shape[0]
    xp, size = pad_to_multiple(x, 64)
    warm = codec.compress(xp[:1])  # the first call of a codec pays one-time costs: keep them out of the timing
    codec.decompress([st[:1] for st in warm["strings"]], warm["shape"])
    out, t_enc = _elapsed(lambda: codec.compress(xp))
    dec, t_dec = _elapsed(lambda: codec.decompress(out["strings"], out["shape"]))
    x_hat = torch.as_tensor(dec["x_hat"])[..., : size[0], : size[1]]
    bits = torch.tensor([8 * sum(len(s[i]) for s in out["strings"]) for i in range(b)], dtype=torch.int64)
    lmbda = next(iter(defenses.values())).lmbda if defenses else 0.0
    mse = (x_hat - x).pow(2).flatten(1).mean(1).double()
    plain = Scored(bits[:, None], mse[:, None], [x_hat], ["identity"], size[0] * size[1])
    picks, times = {1: pick(plain, 1, lmbda)}, {1: (t_enc, t_dec)}
    for k, d in defenses.items():
        res, t_rt = _elapsed(lambda d=d: d.encode(x))
        _, t_d = _elapsed(lambda d=d, res=res: d.decode(res.encoding))
        picks[k] = Pick(res.chosen, res.bpp, res.rd.gather(1, torch.tensor(res.chosen)[:, None]).squeeze(1),
                        res.rd[:, 0], res.x_hat, [res.names[c] for c in res.chosen])
        times[k] = (max(0.0, t_rt - t_d), t_d)
    ms = ms_ssim_of(x, list(picks.values()))
    return [r | {"encode_s": times[k][0] / b, "decode_s": times[k][1] / b}
            for (k, p), m in zip(picks.items(), ms, strict=True) for r in pick_rows(x, p, k, m)]
