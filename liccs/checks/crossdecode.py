"""Cross-engine decodability: encode with engine A, decode with engine B (and with CompressAI's own PyTorch
``decompress``), and compare each image with A's own decode.

A float drift in ``h_s`` (or ``entropy_parameters``) between two engines can put a scale on the other side
of a table boundary; the decoder then reads the string with other tables and the image is garbage from
there on. So this is measured per image: whether the tables matched (the frame's checksums), and the PSNR
of the cross decode against the same-engine decode (inf when identical).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from liccs.core import crop_to
from liccs.core.progress import tqdm
from liccs.engines.bitstream import unframe
from liccs.engines.codec import DeployedCodec
from liccs.pipeline import psnr

COMPRESSAI = "compressai"


@dataclass
class CrossDecodeRecord:
    """One image encoded on ``encoder`` and decoded on ``decoder``."""

    model: str
    image: str
    encoder: str
    decoder: str
    tables_match: bool | None  # None: CompressAI's own decoder, which has no checksums to compare
    psnr_vs_same_db: float
    max_abs_vs_same: float
    identical: bool
    finite: bool = True  # False: the cross decode held inf/NaN (set to 0 before the PSNR)

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict for JSON: a non-finite PSNR becomes None (``identical`` says which it was)."""
        d = asdict(self)
        if not math.isfinite(self.psnr_vs_same_db):  # JSON has no inf/NaN; identical says which
            d["psnr_vs_same_db"] = None
        return d


@torch.no_grad()
def compressai_decompress(codec: nn.Module, strings: Sequence[Sequence[bytes]], shape: Sequence[int],
                          size: Sequence[int]) -> Tensor:
    """CompressAI's own ``decompress`` on liccs's framed strings (frames verified, payloads zero-padded so
    that a decode on drifted tables stays inside its buffer)."""
    raw = [[unframe(s, f"latent {j} of image {i}")[0] for i, s in enumerate(lst)] for j, lst in enumerate(strings)]
    padded = [[p + bytes(16 * len(p) + (1 << 20)) for p in lst] for lst in raw]
    return crop_to(codec.decompress(padded, list(shape))["x_hat"], tuple(size))


def cross_decode(codec: nn.Module, deployed: Mapping[str, DeployedCodec], images: Sequence[Tensor],
                 names: Sequence[str], with_compressai: bool = True) -> list[CrossDecodeRecord]:
    """Every encoder × decoder pair over ``images`` (each ``[1, 3, H, W]`` in [0, 1])."""
    model = getattr(codec, "liccs_name", type(codec).__name__)
    records: list[CrossDecodeRecord] = []
    for enc_name, enc in deployed.items():
        for img, name in tqdm(list(zip(images, names)), desc=f"cross-decode from {enc_name}", leave=False):
            out = enc.compress(img)
            same = enc.decompress(out["strings"], out["shape"], out["size"])["x_hat"]
            decoders: dict[str, Any] = {k: v for k, v in deployed.items() if k != enc_name}
            if with_compressai:
                decoders[COMPRESSAI] = None
            for dec_name, dec in decoders.items():
                if dec is None:
                    x_hat, match = compressai_decompress(codec, out["strings"], out["shape"], out["size"]), None
                else:
                    res = dec.decompress(out["strings"], out["shape"], out["size"], on_mismatch="decode")
                    x_hat, match = res["x_hat"], res["tables_match"][0]
                finite = bool(torch.isfinite(x_hat).all())
                x_hat = torch.nan_to_num(x_hat, nan=0.0, posinf=1.0, neginf=0.0)
                diff = (x_hat - same).abs().max().item()
                records.append(CrossDecodeRecord(model, name, enc_name, dec_name, match,
                                                 float(psnr(x_hat, same)[0]), diff, diff == 0.0, finite))
    return records
