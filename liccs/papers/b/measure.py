"""Paper B's per-image measurements ("A training-free defense framework for robust learned image compression"):
an image set through the plain codec, the per-input random K-way defense (and its oracle), and the
deterministic K-way defense, from real bitstreams.

Every row holds the decoder output's PSNR against three references: the clean image (``psnr_clean``), the
codec's input, i.e. the attacked image (``psnr_input``), and the plain codec's reconstruction of the clean image
(``psnr_recon``). Two oracles pick among the random defense's own candidates at its largest K: ``oracle`` the one
of lowest true distortion against the clean image (an upper bound on the PSNR selection can reach), ``oracle-rd``
the one of lowest ``R + λ·255²·MSE(x̂, clean)``, the defense's own criterion with the true distortion (what the
defense would choose if it knew the clean image).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from liccs.papers.b.defense import KWayDefense
from liccs.papers.b.defense_random import RandomKWayDefense
from liccs.pipeline import codec_roundtrip, psnr


def _row(label: str, k: int, bpp: Tensor, x_hat: Tensor, x_in: Tensor, clean: Tensor, recon: Tensor,
         chosen: list[str], seconds: float) -> list[dict[str, Any]]:
    refs = {"psnr_clean": psnr(x_hat, clean), "psnr_input": psnr(x_hat, x_in), "psnr_recon": psnr(x_hat, recon)}
    b = x_hat.shape[0]
    return [{"defense": label, "k": k, "bpp": float(bpp[i]), **{n: float(v[i]) for n, v in refs.items()},
             "chosen": chosen[i], "encode_s": seconds / b} for i in range(b)]


@torch.no_grad()
def plain(codec: Any, x: Tensor) -> tuple[Tensor, Tensor, float]:
    """(reconstruction, bpp, seconds) of the plain codec's real compress → decompress."""
    t0 = time.perf_counter()
    x_hat, nbytes = codec_roundtrip(codec, x)
    return x_hat, torch.tensor(nbytes, dtype=torch.float64) * 8 / (x.shape[-2] * x.shape[-1]), time.perf_counter() - t0


@torch.no_grad()
def measure(codec: Any, randoms: dict[int, RandomKWayDefense], kway: KWayDefense | None, x_in: Tensor,
            clean: Tensor, recon: Tensor, seed: int, oracle: bool = True,
            oracle_k: int | None = None) -> list[dict[str, Any]]:
    """Rows of ``x_in`` (the codec's input; ``clean`` the clean images, ``recon`` their plain reconstruction):
    plain (``k = 1``), each random defense (request ``seed``), its oracles at ``oracle_k`` (default the largest
    K), the K-way one."""
    x_hat, bpp, sec = plain(codec, x_in)
    b = x_in.shape[0]
    rows = _row("none", 1, bpp, x_hat, x_in, clean, recon, ["identity"] * b, sec)
    for k, d in sorted(randoms.items()):
        t0 = time.perf_counter()
        s = d.score(x_in, seed)
        chosen, rate, rd = d.select(s)
        res = d.result(s, chosen, rate, rd, (int(x_in.shape[-2]), int(x_in.shape[-1])))
        sec = time.perf_counter() - t0
        names = d.candidate_names(s)
        rows += _row("random", k, res.bpp, res.x_hat, x_in, clean, recon,
                     [names[i][c] for i, c in enumerate(chosen)], sec)
        if oracle and k == (oracle_k or max(randoms)):
            true = torch.stack([(xh - clean).pow(2).flatten(1).mean(1).double() for xh in s.x_hat], 1)
            best = true.argmin(1).tolist()
            rows_ = torch.arange(b)
            x_or = torch.stack([s.x_hat[c][i] for i, c in enumerate(best)])
            bpp_or = (s.bits[rows_, best] + d.header_bits).double() / s.pixels
            rows += _row("oracle", k, bpp_or, x_or, x_in, clean, recon, [names[i][c] for i, c in enumerate(best)], 0.0)
            rd_best, _, _ = d.select(s, mse=true)
            x_rd = torch.stack([s.x_hat[c][i] for i, c in enumerate(rd_best)])
            bpp_rd = (s.bits[rows_, rd_best] + d.header_bits).double() / s.pixels
            rows += _row("oracle-rd", k, bpp_rd, x_rd, x_in, clean, recon, [names[i][c] for i, c in enumerate(rd_best)],
                         0.0)
    if kway is not None:
        t0 = time.perf_counter()
        res = kway.encode(x_in)
        rows += _row("kway", kway.k, res.bpp, res.x_hat, x_in, clean, recon,
                     [res.names[c] for c in res.chosen], time.perf_counter() - t0)
    return rows
