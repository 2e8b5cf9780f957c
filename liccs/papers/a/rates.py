"""Paper A's rates ("Transferable learned image compression-resistant adversarial perturbations"): every codec's
bpp from its real bitstreams, the bpp of source and target beside every transfer number, and transfer compared at
matched rate, since two models at one quality index need not code at one rate (an independently trained q6 and the
chain's q6, or two architectures)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from liccs.papers.a.cells import Cells
from liccs.papers.a.tables import codec_parts
from liccs.pipeline import codec_roundtrip, psnr
from liccs.stage import Context


@torch.no_grad()
def models_table(ctx: Context, cells: Cells) -> pd.DataFrame:
    """bpp (real bitstreams), PSNR and the clean top-1 of LICCS per codec, on the run's images."""
    rows = []
    for name in ctx.names.codecs:
        x_hat, nbytes = codec_roundtrip(ctx.codecs[name], ctx.images)
        arch, q = codec_parts(name)
        rows.append({"codec": name, "arch": arch, "quality": q, "images": len(ctx.images),
                     "bpp": 8 * sum(nbytes) / len(nbytes) / (ctx.images.shape[-2] * ctx.images.shape[-1]),
                     "psnr": float(psnr(x_hat.clamp(0, 1), ctx.images).mean()),
                     "clean_top1": float(cells.clean_correct(name).mean())})
    return pd.DataFrame(rows)


def with_bpp(df: pd.DataFrame, bpp: dict[str, float]) -> pd.DataFrame:
    """``df`` (rows with ``source`` and ``target``) with each side's bpp beside them (empty for the classifier alone
    and for ensembles)."""
    if df.empty:
        return df
    return df.assign(source_bpp=df["source"].map(bpp), target_bpp=df["target"].map(bpp))


def rate_matched(frame: pd.DataFrame, bpp: dict[str, float], ladder: list[str]) -> pd.DataFrame:
    """For each source of ``ladder`` and each model family among the frame's targets (architecture, or an
    independently trained replicate): the family's target nearest the source in bpp (log ratio; the ladder's own
    family excludes the source itself), with both rates and the cell's ASR. ``frame``: one setting's cells."""
    rows = []
    for s in ladder:
        have = frame[(frame["source"] == s) & frame["target"].isin(bpp.keys()) & (frame["target"] != s)]
        fams = have.assign(family=have["target"].map(lambda t: codec_parts(t)[0]))
        for fam, g in fams.groupby("family", sort=False):
            gap = np.abs(np.log(g["target"].map(bpp).to_numpy(float) / bpp[s]))
            r = g.iloc[int(np.argmin(gap))]
            rows.append({"source": s, "source_q": codec_parts(s)[1], "source_bpp": bpp[s], "family": fam,
                         "own_ladder": fam == codec_parts(s)[0], "target": r["target"],
                         "target_q": codec_parts(r["target"])[1], "target_bpp": bpp[r["target"]],
                         "bpp_ratio": bpp[r["target"]] / bpp[s], "asr": r["asr"],
                         "n_clean_correct": r["n_clean_correct"]})
    return pd.DataFrame(rows)
