"""Paper B's driver: "A training-free defense framework for robust learned image compression" (two-way /
K-way compression), run as the ``[defense]`` stage of ``liccs run`` (issue 7).

The encoder compresses the image and K−1 invertible transforms of it, keeps the lowest rate-distortion loss,
signals the choice in ``⌈log2 K⌉`` header bits, and the decoder inverts it
(:class:`~liccs.attack.defense.KWayDefense`). This stage measures, on the run's images (``data.source``,
centre-cropped to ``defense.crop``):

1. PGD (L∞, ``defense.eps``) on the distortion and rate objectives (``defense.objectives``) against each
   codec of ``defense.attack_codecs``: bpp (real bitstreams), PSNR and MS-SSIM of clean and attacked images;
2. the same through the K-way defense for every K of ``defense.k``, and its cost on clean images for every
   codec of ``[models]`` (bpp, PSNR, BD-rate over the qualities, measured encode time);
3. the adaptive EoT attack on each K-way defense at ``defense.focus_eps``, and how much of the gain survives;
4. beyond the paper: the images crafted on the PyTorch codec through every deployed codec of the export stage
   (``ort-cpu``, ``ort-cpu-int8``, GPU engines where present), plain for every eps and K-way at ``focus_eps``.

The generic ``[attack]``/``[transfer]`` stages measure classification; the codec-only objectives run here.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from torch import Tensor
from tqdm.auto import tqdm

from liccs.attack.defense import COMPRESSAI_MSE_LAMBDAS, KWayDefense
from liccs.attack.transforms import get_transforms
from liccs.config import ConfigError, RunConfig
from liccs.errors import InputError, LiccsError
from liccs.papers import paper_b_tables as T
from liccs.papers.paper_b_attacks import AttackSpec, craft
from liccs.papers.paper_b_eval import Images, evaluate, load_images, timed_clean

if TYPE_CHECKING:
    from liccs.run.exports import Exports
    from liccs.run.setup import Context, Names

log = logging.getLogger("liccs")

TABLES: list[tuple[str, str, list[str] | None]] = [
    ("paper_b_attack", "Paper B, attacks: PGD (L∞) on the distortion and rate objectives against each PyTorch codec, "
     "clean vs attacked (bpp from real bitstreams; mean over images).", None),
    ("paper_b_defense", "Paper B, K-way defense under PGD (k = 1: plain codec). gain: dB of PSNR (distortion) or % "
     "of bpp saved (rate) against the plain codec under the same attack.",
     ["arch", "quality", "objective", "eps_255", "k", "bpp_clean", "bpp_adv", "psnr_clean", "psnr_adv",
      "ms_ssim_adv", "gain", "nonidentity_adv"]),
    ("paper_b_clean_cost", "Paper B, the defense's cost on clean images, with the measured encode time per image.",
     ["arch", "quality", "k", "bpp_plain", "bpp_kway", "bpp_change_pct", "psnr_plain", "psnr_kway", "psnr_change",
      "nonidentity", "encode_s_plain", "encode_s_kway", "encode_overhead"]),
    ("paper_b_bd_rate", "Paper B, BD-rate of the K-way defense against the plain codec over the qualities "
     "(clean images; negative: fewer bits at equal quality).", None),
    ("paper_b_adaptive", "Paper B, adaptive EoT attack on each K-way defense vs plain PGD at the same eps. gain: "
     "defended codec under this attack vs plain codec under PGD; gain_kept: share surviving EoT.", None),
    ("paper_b_deployed", "Paper B, beyond the paper: images crafted on the PyTorch codec through the deployed codecs. "
     "damage_ratio: damage on the engine / damage on PyTorch (PSNR drop or bpp rise).", None),
    ("paper_b_images", "Paper B, every measurement per image (CSV: all rows).", None),
]


def _fail(key: str, msg: str) -> ConfigError:
    return ConfigError(f"{key}: {msg}")


def check_config(cfg: RunConfig, names: Names) -> None:
    """Before any work (``liccs run`` calls it after the names): ``[defense]`` cross-checked against the run;
    raises :class:`ConfigError` naming the key. The types and ranges are checked when the config loads."""
    attacked_codecs(cfg, names.codecs)


def attacked_codecs(cfg: RunConfig, codecs: list[str]) -> list[str]:
    """The codecs paper B attacks (``defense.attack_codecs``, or every codec), after checking ``[defense]``."""
    d = cfg.defense
    try:
        pool = [t for t in get_transforms(d.transforms) if t.name != "identity"]
    except InputError as e:
        raise _fail("defense.transforms", str(e)) from None
    for i, k in enumerate(d.k):
        if not 1 <= k <= len(pool) + 1:
            raise _fail(f"defense.k[{i}]", f"K={k} needs {k - 1} transforms; defense.transforms has {len(pool)}")
    if not any(math.isclose(d.focus_eps, e, rel_tol=1e-9) for e in d.eps):
        raise _fail("defense.focus_eps", f"{d.focus_eps * 255:g}/255 must be one of defense.eps "
                    f"({', '.join(f'{e * 255:g}/255' for e in d.eps)})")
    if d.rate != "bytes":
        raise _fail("defense.rate", "paper B's stage scores candidates by their real bytes ('bytes'); "
                    f"{d.rate!r} is not supported here")
    if d.lmbda == "codec":
        for c in codecs:
            q = c.split("@q")[-1]
            if ":" in c or not q.isdigit() or int(q) not in COMPRESSAI_MSE_LAMBDAS:
                raise _fail("defense.lmbda", f'"codec" takes CompressAI\'s MSE λ of the quality, which {c!r} has '
                            "not; set a number")
    from liccs.zoo import parse_codec

    attacked = []
    for i, c in enumerate(d.attack_codecs):
        try:
            name = str(parse_codec(c))
        except LiccsError as e:
            raise _fail(f"defense.attack_codecs[{i}]", str(e)) from None
        if name not in codecs:
            raise _fail(f"defense.attack_codecs[{i}]", f"{c!r} is not a codec of [models]; valid: {', '.join(codecs)}")
        attacked.append(name)
    return attacked or list(codecs)


def _defenses(cfg: RunConfig, codec: Any, ks: list[int]) -> dict[int, KWayDefense]:
    d = cfg.defense
    lmbda = None if d.lmbda == "codec" else float(d.lmbda)
    try:
        return {k: KWayDefense(codec, k, transforms=d.transforms, lmbda=lmbda, rate="bytes", seed=cfg.run.seed)
                for k in ks}
    except InputError as e:
        raise _fail("defense.lmbda", f"{e} (set a number)") from None


class _Rows:
    """Per-image rows of one codec, tagged with the codec and the condition."""

    def __init__(self, name: str, images: Images) -> None:
        from liccs.zoo import parse_codec

        spec = parse_codec(name)
        self.base = {"codec": name, "arch": spec.arch, "quality": spec.quality}
        self.names = images.names
        self.rows: list[dict[str, Any]] = []

    def add(self, idx: list[int], rows: list[dict[str, Any]], engine: str, spec: AttackSpec | None) -> None:
        tag = {"engine": engine, "attack": spec.attack if spec else "none",
               "objective": spec.objective if spec else "none",
               "eps_255": round(spec.eps * 255, 3) if spec else 0.0, "target_k": spec.target_k if spec else 0}
        if len(rows) % len(idx):
            raise RuntimeError(f"{len(rows)} rows for {len(idx)} images")
        for j, r in enumerate(rows):  # rows are grouped by K, images in order within each
            self.rows.append({**self.base, **tag, "image": self.names[idx[j % len(idx)]], **r})


def _eval(out: _Rows, defense: KWayDefense, images: Images, sets: list[Tensor] | None, ks: list[int], bs: int,
          engine: str, spec: AttackSpec | None) -> None:
    """Rows of an image set (``None``: the clean images) through ``defense``'s codec, plain and each K of ``ks``.
    MS-SSIM is computed for PyTorch's plain PGD rows only (the tables that show it)."""
    msssim = engine == "torch" and (spec is None or spec.attack == "pgd")
    for idx in images.groups(bs):
        x = images.stack(idx) if sets is None else Images(sets, images.names).stack(idx)
        out.add(idx, evaluate(defense, x, ks, msssim), engine, spec)


class _Clock:
    """Seconds spent per part of the stage (for the report's notes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.seconds[part] = self.seconds.get(part, 0.0) + now - self._t
        self._t = now

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.0f}" for k, v in self.seconds.items())


def _attacked(ctx: Context, exports: Exports, name: str, defenses: dict[int, KWayDefense], images: Images,
              r: _Rows, folder: Path, clock: _Clock, bar: Any) -> None:
    """Every attack on codec ``name`` (PGD per objective × eps, EoT per objective × K at ``focus_eps``), through
    the PyTorch codec and every deployed one."""
    cfg, d = ctx.cfg, ctx.cfg.defense
    codec, bs, ks = ctx.codecs[name], cfg.data.batch_size, sorted(set(d.k))
    specs = [AttackSpec(o, e, d.steps, d.surrogate, cfg.run.seed) for o in d.objectives for e in d.eps]
    focus = [s for s in specs if math.isclose(s.eps, d.focus_eps, rel_tol=1e-9)]
    adv: dict[AttackSpec, list[Tensor]] = {}
    for s in specs:
        bar.set_postfix_str(f"{name} pgd {s.objective} {s.eps * 255:g}/255")
        adv[s], _ = craft(codec, s, images, bs, folder)
        clock.lap("pgd")
        _eval(r, defenses[max(ks)], images, adv[s], [1, *ks], bs, "torch", s)
        clock.lap("pgd eval")
    for s in focus:
        for k in (k for k in ks if k > 1):
            bar.set_postfix_str(f"{name} eot {s.objective} K={k}")
            e = AttackSpec(s.objective, s.eps, d.steps, d.surrogate, cfg.run.seed, k, d.eot_samples)
            x_eot, _ = craft(codec, e, images, bs, folder, defenses[k])
            clock.lap("eot")
            _eval(r, defenses[k], images, x_eot, [1, k], bs, "torch", e)
            clock.lap("eot eval")
    for engine, deployed in exports.deployed.items():
        if engine == "torch" or name not in deployed:
            continue
        bar.set_postfix_str(f"{name} on {engine}")
        dd = _defenses(cfg, deployed[name], [max(ks)])[max(ks)]
        _eval(r, dd, images, None, [1, *ks], bs, engine, None)
        for s in specs:
            _eval(r, dd, images, adv[s], [1, *ks] if s in focus else [1], bs, engine, s)
        clock.lap("deployed")


def run_stage(ctx: Context, exports: Exports, adversarial: dict[str, Tensor], out: Path,
              progress: bool = True) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Paper B's experiments (see the module docstring): its tables by name, and one-line findings."""
    from liccs.papers.paper_b_findings import findings

    cfg, d = ctx.cfg, ctx.cfg.defense
    attacked = attacked_codecs(cfg, ctx.names.codecs)
    images = load_images(cfg)
    bs, ks = cfg.data.batch_size, sorted(set(d.k))
    rows: list[dict[str, Any]] = []
    clock = _Clock()
    bar = tqdm(ctx.names.codecs, desc="paper B", disable=not progress)
    for name in bar:
        codec, r = ctx.codecs[name], _Rows(name, images)
        defenses = _defenses(cfg, codec, [1, *ks])
        for idx in images.groups(bs):  # clean: each K through its own encoder and decoder, timed
            r.add(idx, timed_clean(codec, {k: defenses[k] for k in ks}, images.stack(idx)), "torch", None)
        clock.lap("clean")
        if name in attacked:
            _attacked(ctx, exports, name, defenses, images, r, out / "paper-b" / "adversarial", clock, bar)
        rows += r.rows
    per_image = pd.DataFrame(rows)
    s = T.summary(per_image)
    tables = {"paper_b_attack": T.attack_table(s), "paper_b_defense": T.defense_table(s),
              "paper_b_clean_cost": T.clean_cost_table(s), "paper_b_bd_rate": T.bd_rate_table(s),
              "paper_b_adaptive": T.adaptive_table(s), "paper_b_deployed": T.deployed_table(s),
              "paper_b_images": per_image}
    clock.lap("tables")
    notes = [f"Paper B: {len(images.x)} images of {cfg.data.source}"
             + (f", centre {d.crop}×{d.crop} crops at full resolution" if d.crop else ", whole images")
             + f"; PGD L∞ {d.steps} steps, surrogate {d.surrogate}, eps {', '.join(f'{e * 255:g}' for e in d.eps)}/255; "
             f"attacked codecs: {', '.join(attacked)}; K-way transforms {', '.join(d.transforms)}, "
             f"λ {'of each codec' if d.lmbda == 'codec' else d.lmbda}; EoT {d.eot_samples} draws at "
             f"{d.focus_eps * 255:g}/255. Stage seconds: {clock}."]
    return tables, notes + findings(tables, d.focus_eps * 255)
