"""Measurements of attacked images: what the deployed-like (hard-rounding) pipeline predicts, and the
codec's real rate and reconstruction quality (bpp from CompressAI's entropy coder, PSNR, MS-SSIM).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from pytorch_msssim import ms_ssim as _ms_ssim
from torch import Tensor, nn

from liccs.pipeline import LICCS, codec_roundtrip, psnr

#: pytorch_msssim's 5 scales with an 11-pixel window need a shorter side above (11 − 1) · 2⁴ = 160.
MSSSIM_MIN_SIDE = 161


def ms_ssim(a: Tensor, b: Tensor) -> list[float | None]:
    """MS-SSIM per image (Wang et al. 2003, pytorch_msssim), None where the image is too small for 5 scales."""
    if min(a.shape[-2:]) < MSSSIM_MIN_SIDE:
        return [None] * a.shape[0]

    return _ms_ssim(a.float(), b.float(), data_range=1.0, size_average=False).tolist()


def quantize_png(x: Tensor) -> Tensor:
    """What a saved 8-bit PNG holds: ``round(255 x) / 255``."""
    return x.detach().clamp(0, 1).mul(255).round().div(255)


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


@torch.no_grad()
def codec_quality(codec: Any, x: Tensor) -> dict[str, list[float | None]]:
    """Real bpp (the codec's own entropy coder), PSNR and MS-SSIM of ``x``'s reconstruction against ``x``."""
    x_hat, nbytes = codec_roundtrip(codec, x)
    pixels = x.shape[-2] * x.shape[-1]
    return {"bpp": [8 * n / pixels for n in nbytes], "psnr": psnr(x_hat, x).tolist(), "ms_ssim": ms_ssim(x_hat, x)}


@torch.no_grad()
def hard_predictions(member: nn.Module, x: Tensor) -> Tensor:
    """Top-1 of a member with the deployed rounding (``hard``), or of a bare classifier."""
    codec = getattr(member, "codec", None)
    clf = getattr(member, "classifier", member)
    model = LICCS(codec, clf, rounding="hard") if codec is not None else clf
    return model(x).argmax(1)


def attack_rows(names: Sequence[str], clean_pred: dict[str, Tensor], adv_pred: dict[str, Tensor], labels: Tensor,
                targeted: bool) -> list[dict[str, Any]]:
    """Per member: images, clean accuracy, and attack success over the clean-correct images (ASR).

    Untargeted success: the prediction leaves the label; targeted: it reaches the target (``labels``),
    counted over every image.
    """
    rows = []
    for n in names:
        c, a = clean_pred[n], adv_pred[n]
        correct = c == labels
        if targeted:
            asr = (a == labels).float().mean().item()
        else:
            asr = ((a != labels) & correct).sum().item() / max(1, int(correct.sum()))
        rows.append({"model": n, "images": int(labels.numel()), "clean_correct": float(correct.float().mean()),
                     "asr": asr, "adv_correct": float((a == labels).float().mean())})
    return rows


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A Markdown table; floats with 4 significant digits, None as a dash."""
    if not rows:
        return "(no rows)"
    cols = list(columns or rows[0].keys())

    def cell(v: Any) -> str:
        if v is None:
            return "–"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def mean_rows(rows: Sequence[dict[str, Any]], keys: Sequence[str], by: Sequence[str]) -> list[dict[str, Any]]:
    """Means of ``keys`` over rows grouped by ``by`` (None and NaN values skipped), in first-seen order."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[b] for b in by), []).append(r)
    return [{**dict(zip(by, g, strict=True)), "images": len(rs), **{k: _mean([r[k] for r in rs]) for k in keys}}
            for g, rs in groups.items()]
