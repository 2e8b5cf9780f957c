"""Paper B on the deployed codec ("A training-free defense framework for robust learned image compression"; issue
31, item 7): the defense and the attacks replayed on the codecs the export stage built (``results.exports``), on
each engine of ``paper_b.deployed_engines``.

For each attacked codec, the replayed image sets are the clean images, the plain attack on the claims' objective
and the rate attack (at ``focus_eps`` and the adaptive steps), and the strongest adaptive attack on the claims'
objective (the lowest mean PSNR against the clean image through the PyTorch defense). Each image goes through

- the plain deployed codec, one image per call: its bytes (liccs's framed strings, what the deployed codec writes;
  its one-file container adds 26 bytes), bpp of the CompressAI payload (comparable with PyTorch's), PSNR against the
  clean image, encode and decode latency (and the encode of the request's batch, which the defense's ×K is over);
- the random defense at ``focus_k`` wrapping the deployed codec, with the PyTorch run's batches and request seeds
  (so the same candidates are drawn): the chosen transform, the header bits, bpp (payload + header), PSNR, the
  encode time (every candidate encoded and decoded, then the choice) and the receiver's decode time, and whether
  the choice equals the PyTorch defense's on the same image (recomputed here, as deterministic as the PyTorch run).

Cross-decoding of the defended streams: the deployed one decoded by the PyTorch codec (CompressAI's decompress on the
payloads, ``compressai``) and by every other deployed codec of the export stage, and the PyTorch one by the
deployed codec; per image whether the decoder picked the encoder's entropy tables (the stream's index checksums,
so the latent symbols decode exactly; ``None`` where the stream is CompressAI's, which carries none), whether the
image is bit-identical, and its PSNR against the encoder's own decode. The header is the same integer on every side.

Every time is the fastest of :data:`REPEATS` calls, after an untimed warm-up of every side at the images' shape.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from liccs.checks.crossdecode import COMPRESSAI
from liccs.core import crop_to, pad_to_multiple
from liccs.core.errors import InputError
from liccs.engines.bitstream import frame, unframe
from liccs.papers.b.attacks import AttackSpec
from liccs.papers.b.defense import KWayEncoding, KWayResult
from liccs.papers.b.defense_random import RandomKWayDefense
from liccs.papers.b.eval import Images
from liccs.papers.b.transforms import Invertible
from liccs.pipeline import PAD_MULTIPLE, psnr
from liccs.stage import Exports

SET_KEYS = ["codec", "engine", "attack", "objective", "eps_255", "steps"]
KEYS = [*SET_KEYS, "defense", "k"]


@dataclass
class Replay:
    """What the replay shares with the PyTorch run: the random defense (K, family, λ), the seed, the batches."""

    k: int
    family: list[Invertible]
    lmbda: float | None
    seed: int
    batch_size: int

    def defense(self, codec: Any) -> RandomKWayDefense:
        return RandomKWayDefense(codec, self.k, family=self.family, lmbda=self.lmbda, seed=self.seed)


def wanted(spec: AttackSpec, claim_objective: str, focus_eps: float, steps: int) -> bool:
    """Whether an attack's images are replayed: the plain attack on the claims' objective or the rate, and every
    adaptive attack on the claims' objective, at ``focus_eps`` and ``steps`` (the strongest one is kept later)."""
    if spec.steps != steps or not math.isclose(spec.eps, focus_eps, rel_tol=1e-9):
        return False
    if spec.attack == "pgd":
        return spec.objective in (claim_objective, "rate")
    return spec.attack in ("eot", "select") and spec.objective == claim_objective


def pick_sets(kept: Mapping[AttackSpec, list[Tensor]], rows: pd.DataFrame, k: int) -> list[AttackSpec]:
    """The attacks to replay: every plain one kept, and of the adaptive ones the one of lowest mean PSNR against
    the clean image through the random defense at ``k`` (``rows``: this codec's per-image rows)."""
    plain = [s for s in kept if s.attack == "pgd"]
    adaptive = [s for s in kept if s.attack != "pgd"]
    if not adaptive:
        return plain
    r = rows[(rows["defense"] == "random") & (rows["k"] == k)]

    def mean_psnr(s: AttackSpec) -> float:
        m = r[(r["attack"] == s.label) & (r["objective"] == s.objective) & (r["steps"] == s.steps)]["psnr_clean"]
        return float(m.mean()) if len(m) else math.inf

    return [*plain, min(adaptive, key=mean_psnr)]


class _Decoder:
    """One side's decoder for the other side's defended stream: converts the framing (liccs's frames for a deployed
    decoder, CompressAI's bare strings for the PyTorch one) and keeps whether the entropy tables matched."""

    def __init__(self, codec: Any, deployed: bool, framed_in: bool) -> None:
        self.codec, self.deployed, self.framed_in = codec, deployed, framed_in
        self.match: list[bool | None] = []

    def compress(self, x: Tensor) -> dict[str, Any]:
        raise InputError("a cross-decoder only decodes")

    def decompress(self, strings: Any, shape: Any) -> dict[str, Any]:
        if self.deployed:
            framed = strings if self.framed_in else [[frame(s) for s in lst] for lst in strings]
            out = self.codec.decompress(framed, shape, on_mismatch="decode")
            self.match = [m if self.framed_in else None for m in out["tables_match"]]
            return out
        # CompressAI's decoder trusts its input: payloads padded with zeros, so that a decode on other tables than the
        # encoder's stays inside its buffer (as liccs.checks.crossdecode.compressai_decompress)
        raw = [[unframe(s)[0] + bytes(16 * len(s) + (1 << 20)) for s in lst] for lst in strings]
        self.match = [None] * len(strings[0])
        return self.codec.decompress(raw, list(shape))


def _cross(enc: KWayEncoding, own: Tensor, encoder: str, decoders: Mapping[str, _Decoder], rp: Replay,
           base: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    """Each image of a defended encoding decoded alone by each decoder's side of the defense (the family's table
    read by the header; no λ), against the encoder's own decode."""
    rows = []
    for dec_name, dec in decoders.items():
        defense = RandomKWayDefense(dec, rp.k, family=rp.family, lmbda=0.0)
        for i in range(len(enc.header)):
            one = KWayEncoding([enc.strings[i]], [enc.shapes[i]], [enc.header[i]], [enc.sizes[i]], enc.header_bits)
            x = torch.nan_to_num(defense.decode(one), nan=0.0, posinf=1.0, neginf=0.0)
            diff = float((x - own[i:i + 1]).abs().max())
            rows.append({**base, "image": names[i], "encoder": encoder, "decoder": dec_name,
                         "tables_match": dec.match[0], "identical": diff == 0.0,
                         "psnr_vs_own": float(psnr(x, own[i:i + 1])[0]), "max_abs": diff})
    return rows


#: Timed calls per measurement, the fastest kept: on a shared CPU other work only ever adds time (the first call at a
#: new input shape too, which the warm-up of :func:`replay_codec` takes before any timing).
REPEATS = 2


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(the first call's result, the fastest of :data:`REPEATS` calls' seconds); ``fn`` is deterministic."""
    out, best = None, math.inf
    for n in range(REPEATS):
        t0 = time.perf_counter()
        r = fn()
        best = min(best, time.perf_counter() - t0)
        out = r if n == 0 else out
    return out, best


def _defended(defense: RandomKWayDefense, x: Tensor, seed: int) -> tuple[KWayResult, list[str], float, float]:
    """(result, chosen transform per image, encode seconds, decode seconds) of one request: the encode scores every
    candidate (encoded and decoded) and chooses; the decode is the receiver's, from the encoding alone."""
    (s, (chosen, rate, rd)), enc_s = _timed(lambda: (sc := defense.score(x, seed), defense.select(sc)))
    res, dec_s = _timed(lambda: defense.result(s, chosen, rate, rd, (int(x.shape[-2]), int(x.shape[-1]))))
    return res, [defense.family[f].name for f in res.encoding.header], enc_s, dec_s


@torch.no_grad()
def _plain_torch(codec: nn.Module, x: Tensor) -> tuple[Tensor, list[int], float, float]:
    """The PyTorch codec's real round trip: (x̂, payload bytes per image, encode and decode seconds per image)."""
    xp, size = pad_to_multiple(x, PAD_MULTIPLE)
    out, enc_s = _timed(lambda: codec.compress(xp))
    x_hat, dec_s = _timed(lambda: crop_to(codec.decompress(out["strings"], out["shape"])["x_hat"], size))
    b = x.shape[0]
    return x_hat, [sum(len(s[i]) for s in out["strings"]) for i in range(b)], enc_s / b, dec_s / b


def _plain_deployed(dep: Any, x: Tensor) -> tuple[Tensor, int, int, float, float]:
    """The deployed codec on one image: (x̂, framed bytes, payload bytes, encode seconds, decode seconds)."""
    out, enc_s = _timed(lambda: dep.compress(x))
    x_hat, dec_s = _timed(lambda: dep.decompress(out["strings"], out["shape"], out["size"])["x_hat"])
    framed = sum(len(lst[0]) for lst in out["strings"])
    payload = sum(len(unframe(lst[0])[0]) for lst in out["strings"])
    return x_hat, framed, payload, enc_s, dec_s


def _payload_bits(strings: list[bytes]) -> int:
    return 8 * sum(len(unframe(s)[0]) for s in strings)


@torch.no_grad()
def replay_codec(codec: nn.Module, deployed: Mapping[str, Any], others: Mapping[str, Any],
                 sets: list[tuple[dict[str, Any], list[Tensor]]], images: Images,
                 rp: Replay) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-image rows, cross-decoding rows) of one codec: ``deployed`` engine → its deployed codec (replayed on),
    ``others`` engine → every deployed codec of it the export stage built (the cross-decoders), ``sets`` (the
    attack's tags, its images; clean first)."""
    name = getattr(codec, "liccs_name", type(codec).__name__)
    rows: list[dict[str, Any]] = []
    cross: list[dict[str, Any]] = []
    torch_def = rp.defense(codec)
    x0 = images.stack(images.groups(rp.batch_size)[0])  # a warm-up at these shapes (sessions, kernels), untimed
    _plain_torch(codec, x0)
    for dep in deployed.values():
        _plain_deployed(dep, x0[:1])
    for side in (codec, *deployed.values()):
        _defended(rp.defense(side), x0, rp.seed)
    for tag, adv in sets:
        for idx in images.groups(rp.batch_size):
            x, clean = Images(adv, images.names).stack(idx), images.stack(idx)
            seed, b, names = rp.seed + idx[0], len(idx), [images.names[i] for i in idx]
            pixels = int(x.shape[-2]) * int(x.shape[-1])
            t_hat, t_bytes, t_enc, t_dec = _plain_torch(codec, x)
            t_psnr = psnr(t_hat, clean)
            t_res, t_names, t_enc_d, t_dec_d = _defended(torch_def, x, seed)
            t_def_psnr = psnr(t_res.x_hat, clean)
            for engine, dep in deployed.items():
                base = {"codec": name, "engine": engine, **tag}
                _, batch_s = _timed(partial(dep.compress, x))  # as the defense encodes: the request's batch
                for n in range(b):
                    x_hat, framed, payload, enc_s, dec_s = _plain_deployed(dep, x[n:n + 1])
                    rows.append({**base, "image": names[n], "defense": "none", "k": 1, "chosen": "identity",
                                 "chosen_torch": "identity", "same_choice": True, "header_bits": 0, "bytes": framed,
                                 "bpp": 8 * payload / pixels, "bpp_torch": 8 * t_bytes[n] / pixels,
                                 "psnr_clean": float(psnr(x_hat, clean[n:n + 1])[0]),
                                 "psnr_clean_torch": float(t_psnr[n]), "encode_s": enc_s, "decode_s": dec_s,
                                 "encode_batch_s": batch_s / b, "encode_s_torch": t_enc, "decode_s_torch": t_dec})
                dd = rp.defense(dep)
                res, chosen, enc_s, dec_s = _defended(dd, x, seed)
                d_psnr = psnr(res.x_hat, clean)
                for n in range(b):
                    st = res.encoding.strings[n]
                    rows.append({**base, "image": names[n], "defense": "random", "k": rp.k, "chosen": chosen[n],
                                 "chosen_torch": t_names[n], "same_choice": chosen[n] == t_names[n],
                                 "header_bits": dd.header_bits, "bytes": sum(len(s) for s in st),
                                 "bpp": (_payload_bits(st) + dd.header_bits) / pixels,
                                 "bpp_torch": float(t_res.bpp[n]), "psnr_clean": float(d_psnr[n]),
                                 "psnr_clean_torch": float(t_def_psnr[n]), "encode_s": enc_s / b, "decode_s": dec_s / b,
                                 "encode_batch_s": enc_s / b, "encode_s_torch": t_enc_d / b,
                                 "decode_s_torch": t_dec_d / b})
                decoders = {COMPRESSAI: _Decoder(codec, False, True)}
                decoders |= {e: _Decoder(o, True, True) for e, o in others.items() if e != engine}
                cbase = {"codec": name, **tag}
                cross += _cross(res.encoding, res.x_hat, engine, decoders, rp, cbase, names)
                cross += _cross(t_res.encoding, t_res.x_hat, COMPRESSAI, {engine: _Decoder(dep, True, False)}, rp,
                                cbase, names)
    return rows, cross


def deployed_table(images: pd.DataFrame) -> pd.DataFrame:
    """Means per codec, engine, image set and defense: the deployed codec beside PyTorch (same choice, bpp, PSNR
    against the clean image), the encode time over the plain deployed encode of the same images (``encode_x``: ×K),
    and bytes and latency over the clean images' on the same path (the rate attack as a denial of service)."""
    if images.empty:
        return pd.DataFrame()
    df = images.assign(nonidentity=(images["chosen"] != "identity").astype(float),
                       same_choice=images["same_choice"].astype(float))
    cols = ["same_choice", "nonidentity", "header_bits", "bpp", "bpp_torch", "psnr_clean", "psnr_clean_torch", "bytes",
            "encode_s", "decode_s", "encode_batch_s", "encode_s_torch", "decode_s_torch"]
    g = df.groupby(KEYS, sort=False, dropna=False)
    t = g[cols].mean()
    t.insert(0, "images", g.size())
    t = t.reset_index()
    plain = t[t["defense"] == "none"].set_index(SET_KEYS)
    at = pd.MultiIndex.from_frame(t[SET_KEYS])
    for col, out in (("encode_batch_s", "encode_x"), ("encode_s_torch", "encode_x_torch")):
        t[out] = t[col].to_numpy() / plain.loc[at, col].to_numpy()
    path = ["codec", "engine", "defense", "k"]
    clean = t[t["attack"] == "none"].set_index(path)
    on = pd.MultiIndex.from_frame(t[path])
    for col, out in (("bytes", "bytes_x"), ("encode_s", "encode_vs_clean"), ("decode_s", "decode_vs_clean")):
        t[out] = t[col].to_numpy() / clean.loc[on, col].to_numpy()
    per = df.merge(df[df["attack"] == "none"][[*path, "image", "bytes"]], on=[*path, "image"], suffixes=("", "_clean"))
    worst = (per["bytes"] / per["bytes_clean"]).groupby([per[c] for c in KEYS], sort=False, dropna=False).max()
    t["bytes_x_max"] = worst.reindex(pd.MultiIndex.from_frame(t[KEYS])).to_numpy()
    t = t.drop(columns="encode_batch_s")
    for col in ("encode_s", "decode_s", "encode_s_torch", "decode_s_torch"):
        t[col.replace("_s", "_ms")] = t.pop(col) * 1000
    return t


def cross_table(cross: pd.DataFrame) -> pd.DataFrame:
    """Per codec, encoder and decoder over every replayed image set: the share of images decoded on the encoder's
    entropy tables (NaN: a CompressAI stream, which carries no checksums), bit-identical to the encoder's own
    decode, and the lowest PSNR against it."""
    if cross.empty:
        return pd.DataFrame()
    rows = []
    for (codec, enc, dec), g in cross.groupby(["codec", "encoder", "decoder"], sort=False):
        m = g["tables_match"].dropna()
        rows.append({"codec": codec, "encoder": enc, "decoder": dec, "images": len(g),
                     "tables_match": float(m.astype(float).mean()) if len(m) else math.nan,
                     "identical": float(g["identical"].astype(float).mean()), "psnr_min": float(g["psnr_vs_own"].min()),
                     "psnr_median": float(g["psnr_vs_own"].median()), "max_abs": float(g["max_abs"].max())})
    return pd.DataFrame(rows)


def _w(g: pd.DataFrame, col: str) -> float:
    """The images-weighted mean of a column over a table's rows."""
    return float((g[col] * g["images"]).sum() / g["images"].sum())


def findings(t: pd.DataFrame, cross: pd.DataFrame) -> list[str]:
    """One line per codec × engine (the defense against PyTorch's), per rate attack (denial of service) and per
    encoder → decoder pair (cross-decoding)."""
    out = []
    if not t.empty:
        for (codec, engine), g in t[t["defense"] == "random"].groupby(["codec", "engine"], sort=False):
            out.append(f"Paper B deployed, {codec} on {engine}: the random defense (K={int(g['k'].iloc[0])}, "
                       f"{int(g['header_bits'].iloc[0])}-bit header) chose PyTorch's candidate for "
                       f"{100 * _w(g, 'same_choice'):.0f}% of {int(g['images'].sum())} images over {len(g)} image "
                       f"set(s) (non-identity {100 * _w(g, 'nonidentity'):.0f}%); bpp {_w(g, 'bpp'):.4f} vs PyTorch "
                       f"{_w(g, 'bpp_torch'):.4f}, PSNR vs clean {_w(g, 'psnr_clean'):.2f} vs "
                       f"{_w(g, 'psnr_clean_torch'):.2f} dB; encode ×{_w(g, 'encode_x'):.2f} the plain deployed "
                       f"encode (PyTorch ×{_w(g, 'encode_x_torch'):.2f}).")
        rate = t[(t["objective"] == "rate") & (t["attack"] == "pgd")]
        for r in rate[rate["defense"] == "none"].itertuples():
            d = rate[(rate["codec"] == r.codec) & (rate["engine"] == r.engine) & (rate["defense"] == "random")]
            defended = f"; through the defense ×{d['bytes_x'].iloc[0]:.2f} bytes" if len(d) else ""
            out.append(f"Paper B rate attack as denial of service on the deployed {r.engine} codec {r.codec}: "
                       f"{r.bytes / r.bytes_x:.0f} → {r.bytes:.0f} bytes per image (×{r.bytes_x:.2f}, worst image "
                       f"×{r.bytes_x_max:.2f}); encode {r.encode_ms / r.encode_vs_clean:.1f} → {r.encode_ms:.1f} ms, "
                       f"decode {r.decode_ms / r.decode_vs_clean:.1f} → {r.decode_ms:.1f} ms per image{defended}.")
    if not cross.empty:
        for (enc, dec), g in cross.groupby(["encoder", "decoder"], sort=False):
            n = int(g["images"].sum())
            m = g.dropna(subset=["tables_match"])
            tables = (f"on the encoder's entropy tables {round(_w(m, 'tables_match') * m['images'].sum())}/"
                      f"{int(m['images'].sum())}" if len(m) else "tables not checkable (a CompressAI stream)")
            out.append(f"Paper B cross-decoding of defended streams, {enc} → {dec}: {n} images, {tables}, "
                       f"bit-identical {round(_w(g, 'identical') * n)}/{n}, PSNR vs the encoder's own decode ≥ "
                       f"{g['psnr_min'].min():.1f} dB.")
    return out


def engines(names: list[str], exports: Exports, codecs: list[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Engine → {codec: deployed codec} of each engine of ``names`` (``paper_b.deployed_engines``) that the export
    stage built codecs on, and a note for each attacked codec an engine lacks (unavailable here, or failed)."""
    out: dict[str, dict[str, Any]] = {}
    notes = []
    for e in names:
        got = exports.deployed.get(e, {})
        for c in codecs:
            if c not in got:
                why = exports.failed.get(f"{e}:{c}", "the engine is not available on this machine")
                notes.append(f"Paper B deployed: no {e} codec for {c}, not replayed there ({why}).")
        if any(c in got for c in codecs):
            out[e] = got
    return out, notes
