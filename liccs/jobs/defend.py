"""``liccs defend``: clean and attacked images through a codec with and without the K-way defense →
bpp (real bytes, header included), PSNR and MS-SSIM of the reconstruction against the codec's input,
and encode+decode time; one row per image × image set × defense, and their means.

Attacked images come from a folder of PNGs with the same stems (``liccs attack --out``), or are crafted
here against the codec alone (default: PGD on the distortion objective). ``eot > 0`` adds the adaptive
attack against each K-way defense: EoT over its transform draw (:mod:`liccs.papers.b.adaptive`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from torch import Tensor

from liccs.attack.base import check_attack_params, load_families, parse_eps
from liccs.attack.ensemble import CodecOnly
from liccs.attack.eot import EoT
from liccs.attack.evaluate import format_table, mean_rows, ms_ssim, quantize_png
from liccs.attack.objectives import parse_objective
from liccs.attack.spec import AttackSpec
from liccs.core.errors import InputError
from liccs.core.fileio import output_dir
from liccs.core.manifest import manifest, write_json
from liccs.core.progress import tqdm
from liccs.data import open_source, read_image, to_float
from liccs.papers.b.adaptive import RandomTransformLICCS
from liccs.papers.b.defense import KWayDefense
from liccs.papers.b.transforms import DEFAULT_TRANSFORMS, get_transforms
from liccs.pipeline import codec_roundtrip, psnr
from liccs.zoo import load_codec, parse_codec
from liccs.zoo.weights import random_weights_banner

METRICS = ("bpp", "psnr", "ms_ssim", "seconds")


@dataclass
class DefendJob:
    """One ``liccs defend`` run."""

    codec: str
    images: str
    out: str
    weights: str = "pretrained"
    adv: str | None = None
    k: tuple[int, ...] = (2, 4)
    lmbda: float | None = None
    rate: str = "bytes"
    transforms: tuple[str, ...] = DEFAULT_TRANSFORMS
    seed: int = 0
    attack: str = "pgd"
    objective: str = "distortion"
    eps: str | float = "4/255"
    steps: int = 10
    rounding: str = "ste"
    eot: int = 0
    limit: int | None = None
    params: dict[str, Any] = field(default_factory=dict)  #: the attack's own parameters (``decay``, ``restarts``)


def _check(job: DefendJob) -> None:
    parse_codec(job.codec)
    load_families().get(job.attack)
    check_attack_params(job.attack, job.params, "--attack-param")
    parse_eps(job.eps)
    get_transforms(job.transforms)
    if parse_objective(job.objective).needs_logits:
        raise InputError(f"liccs defend attacks the codec alone; objective {job.objective!r} needs a classifier")
    if not job.k or any(k < 1 for k in job.k) or job.eot < 0:
        raise InputError("every K must be ≥ 1 and EoT samples ≥ 0")
    if job.limit is not None and job.limit < 1:
        raise InputError(f"limit must be ≥ 1, got {job.limit}")
    if job.adv is not None and not Path(job.adv).is_dir():
        raise InputError(f"attacked-image folder {job.adv} does not exist")


def _plain(codec: Any, x: Tensor) -> tuple[Tensor, float]:
    x_hat, nbytes = codec_roundtrip(codec, x)
    return x_hat, 8 * nbytes[0] / (x.shape[-2] * x.shape[-1])


def _defended(defense: KWayDefense, x: Tensor) -> tuple[Tensor, float]:
    res = defense.roundtrip(x)
    return res.x_hat, float(res.bpp[0])


def _measure(fn: Callable[[Tensor], tuple[Tensor, float]], x: Tensor) -> dict[str, Any]:
    t0 = time.perf_counter()
    x_hat, bpp = fn(x)
    secs = time.perf_counter() - t0
    return {"bpp": float(bpp), "psnr": float(psnr(x_hat, x)[0]), "ms_ssim": ms_ssim(x_hat, x)[0], "seconds": secs}


def run_defend(job: DefendJob) -> dict[str, Any]:
    """Run the job; writes ``defense.json`` under ``job.out`` and returns it plus ``table``."""
    t0 = time.perf_counter()
    _check(job)
    output_dir(job.out)
    codec = load_codec(job.codec, job.weights)
    defenses = {k: KWayDefense(codec, k, transforms=job.transforms, lmbda=job.lmbda, rate=job.rate, seed=job.seed)
                for k in job.k}
    spec = AttackSpec(job.attack, eps=parse_eps(job.eps), objective=job.objective, seed=job.seed,
                      steps=None if load_families().get(job.attack).one_step else job.steps, params=dict(job.params))
    plain_attack = spec.build(CodecOnly(codec, job.rounding)) if job.adv is None else None
    adaptive = {k: spec.build(EoT(RandomTransformLICCS.from_defense(d, None, job.rounding), samples=job.eot))
                for k, d in defenses.items() if job.eot > 0 and k > 1}
    source = open_source(job.images)
    n = len(source) if job.limit is None else min(job.limit, len(source))
    if n == 0:
        raise InputError(f"no images in {job.images!r}")
    rows: list[dict[str, Any]] = []
    for i in tqdm(range(n), desc="defend", leave=False):
        sample = source.load(i)
        x = to_float(sample.image)[None]
        sets = {"clean": x}
        if job.adv is not None:
            path = Path(job.adv) / f"{sample.name}.png"
            if not path.is_file():
                raise InputError(f"no attacked image {path} for input {sample.name!r}")
            sets["attacked"] = to_float(read_image(path))[None]
            if sets["attacked"].shape != x.shape:
                (h, w), (ah, aw) = x.shape[-2:], sets["attacked"].shape[-2:]
                raise InputError(f"attacked image {path} is {aw}x{ah} but its clean image {source.describe(i)[1]} "
                                 f"is {w}x{h}")
        else:
            sets["attacked"] = quantize_png(plain_attack(x))
        for k, atk in adaptive.items():
            sets[f"adaptive-k{k}"] = quantize_png(atk(x))
        for set_name, xs in sets.items():
            m = _measure(partial(_plain, codec), xs)
            rows.append({"image": sample.name, "set": set_name, "defense": "none", **m})
            for k, d in defenses.items():
                if set_name.startswith("adaptive") and set_name != f"adaptive-k{k}":
                    continue
                m = _measure(partial(_defended, d), xs)
                rows.append({"image": sample.name, "set": set_name, "defense": f"k-way K={k}", **m})
    summary = mean_rows(rows, METRICS, ["set", "defense"])
    banner = random_weights_banner({job.codec: codec})
    result = {"job": asdict(job), "codec": {"name": job.codec, "weights": codec.liccs_weights.to_dict()},
              "warning": banner,
              "defenses": [d.describe() for d in defenses.values()],
              "attack": plain_attack.describe() if plain_attack is not None else {"from": job.adv},
              "adaptive": {k: a.describe() for k, a in adaptive.items()}, "summary": summary, "rows": rows,
              "reference": "PSNR and MS-SSIM of the reconstruction against the codec's input image",
              "seconds": round(time.perf_counter() - t0, 2), "manifest": manifest()}
    write_json(Path(job.out) / "defense.json", result)
    return {**result, "table": "\n".join(filter(None, [banner, format_table(summary, ["set", "defense", "images",
                                                                                       *METRICS])]))}
