"""Paper B's driver: "A training-free defense framework for robust learned image compression", run as the
``[paper_b]`` stage of ``liccs run``.

The paper's defense (:class:`~liccs.papers.b.defense_random.RandomKWayDefense`): per image and request, identity +
K−1 transforms drawn from a family (dihedral, circular shifts; each keeps the frame), the lowest RD loss
kept, its family index in a ``⌈log2 |family|⌉``-bit header; the deterministic K-way defense
(:class:`~liccs.papers.b.defense.KWayDefense`) at ``paper_b.kway_k`` beside it. On the run's images
(``data.source``, centre-cropped to ``paper_b.crop``), for each attacked codec:

1. PGD (L∞) on every objective of ``paper_b.objectives`` × ``paper_b.eps`` at ``paper_b.steps``, the strength
   ladder ``paper_b.strength_steps`` (distortion) at ``focus_eps``, and the sign-noise control;
2. every image set through the plain codec, the random defense (every K of ``paper_b.k``), its oracle (the
   candidate of lowest true distortion against the clean image) and the K-way defense, with PSNR against the
   clean image, the attacked image and the plain codec's clean reconstruction;
3. the adaptive attacks (EoT over the defense's own draws with its arg-min, the selection-aware attack at each
   τ) on the random defense at its largest K, each checked against the plain attack
   (:mod:`liccs.papers.b.strength`);
4. the defense's gain as a share of the damage, and the declared claims (``paper_b.claims``) per attacked codec,
   decided over images (:mod:`liccs.papers.b.claims`).

Clean images go through every codec of [models] (the cost, BD-rate over the qualities). With ``[export]`` on and
``paper_b.deployed_engines`` set, the clean images, the plain attacks on the claims' objective and the rate and the
strongest adaptive attack are replayed on each of those engines' deployed codecs (the export stage's), through the
plain codec and the random defense at ``focus_k`` (:mod:`liccs.papers.b.deployed`).
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd
from torch import Tensor

from liccs.config import ConfigError, RunConfig
from liccs.core.errors import InputError, LiccsError
from liccs.core.progress import tqdm
from liccs.families import mse_lambda
from liccs.papers.b import claims as C
from liccs.papers.b import deployed as D
from liccs.papers.b import strength as S
from liccs.papers.b import tables as T
from liccs.papers.b.attacks import AttackSpec, craft
from liccs.papers.b.defense_random import transform_family
from liccs.papers.b.eval import Images, load_images
from liccs.papers.b.findings import findings
from liccs.papers.b.measure import measure, plain
from liccs.papers.b.tasks import attacked_defense, defenses, precraft
from liccs.papers.b.transforms import get_transforms
from liccs.papers.driver import PaperStage
from liccs.stage import Context, Exports, Names, TableSpec, register
from liccs.zoo import parse_codec

log = logging.getLogger("liccs")

_TABLES: list[tuple[str, str, list[str] | None]] = [
    ("paper_b_attack", "Paper B, attacks and the sign-noise control on each plain PyTorch codec: PSNR against the "
     "clean image, the attacked input and the clean image's plain reconstruction; bpp change (real bitstreams).",
     ["arch", "quality", "attack", "objective", "eps_255", "steps", "bpp", "psnr_clean", "psnr_input", "psnr_recon",
      "bpp_change_pct", "psnr_drop"]),
    ("paper_b_defense", "Paper B, every attacked set through the plain codec (none), the random per-input defense, "
     "its oracle and the deterministic K-way defense. gain: dB of PSNR vs clean, or % of bpp saved (rate).",
     ["arch", "quality", "attack", "objective", "eps_255", "steps", "defense", "k", "bpp", "psnr_clean", "gain"]),
    ("paper_b_share", "Paper B, the defense's gain as a share of the attack's damage per attacked codec (claims' "
     "objective: dB of PSNR vs clean; rate: % of the clean bpp), paired bootstrap CI over the images: the random "
     "defense, the same under the strongest attack per image, and the RD-cost oracle (the defense's criterion "
     "with the true distortion) less its gain on clean images.",
     ["codec", "objective", "recovered_by", "n", "damage", "recovered", "unit", "share", "ci_low", "ci_high",
      "ci_method"]),
    ("paper_b_adaptive_check", "Paper B, each adaptive attack against the plain attack (crafted on the undefended "
     "codec, same steps), both through the random defense: the adaptive attack's gain in strength (dB of PSNR "
     "lost, or bpp added), paired over the images; flagged where it is weaker (Carlini et al. 2019).",
     ["codec", "objective", "attack", "steps", "n", "plain_mean", "adaptive_mean", "gain", "ci_low", "ci_high",
      "weaker_share", "flagged"]),
    ("paper_b_clean_cost", "Paper B, each defense's cost on clean images, with the measured encode time per image.",
     ["arch", "quality", "defense", "k", "bpp_plain", "bpp_defended", "bpp_change_pct", "psnr_change"]),
    ("paper_b_bd_rate", "Paper B, BD-rate (PSNR) of each defense against the plain codec over the qualities.", None),
    ("paper_b_adaptive", "Paper B, the random defense under PGD, EoT and the selection-aware attack; worst: per "
     "image the minimum gain over them.", ["objective", "k", "attack", "gain"]),
    ("paper_b_claims", "Paper B, the declared claims per attacked codec, paired over images (sign-flip permutation "
     "test of the mean), Holm-adjusted over every row, CI at the family's level (liccs.core.stats).",
     ["claim", "codec", "hypothesis", "effect", "ci_low", "ci_high", "ci_method", "p", "p_holm", "mde", "sesoi",
      "verdict"]),
    ("paper_b_replication", "Paper B, each claim on each attacked model trained under two seeds (the mini zoo's "
     "replicate ladders): effect and verdict per seed, and the replicated verdict (too close to call where the "
     "seeds disagree).", None),
    ("paper_b_images", "Paper B, every measurement per image (CSV: all rows).", None),
    ("paper_b_deployed", "Paper B on the deployed codec (paper_b.deployed_engines): the clean images, the plain "
     "attacks on the claims' objective and the rate, and the strongest adaptive attack, through the plain deployed "
     "codec and the random defense at focus_k (PyTorch's request seeds): the share of images where it chose "
     "PyTorch's candidate, bpp and PSNR vs clean beside PyTorch's, encode time over the plain deployed encode (×K), "
     "and bytes, encode and decode latency per image over the clean images' (the rate attack as denial of service).",
     ["codec", "engine", "attack", "objective", "defense", "images", "same_choice", "header_bits", "bpp", "bpp_torch",
      "psnr_clean", "psnr_clean_torch", "encode_ms", "decode_ms", "encode_x", "encode_x_torch", "bytes", "bytes_x",
      "bytes_x_max", "encode_vs_clean", "decode_vs_clean"]),
    ("paper_b_deployed_cross", "Paper B, cross-decoding of the defended streams: each deployed engine's decoded by "
     "the PyTorch codec (compressai) and by every other deployed codec, and PyTorch's by the deployed codec; the "
     "share decoded on the encoder's entropy tables (checksums; NaN: a CompressAI stream has none), bit-identical "
     "to the encoder's own decode, and the PSNR against it.",
     ["codec", "encoder", "decoder", "images", "tables_match", "identical", "psnr_min", "psnr_median", "max_abs"]),
    ("paper_b_deployed_images", "Paper B on the deployed codec, every measurement per image (CSV: all rows).", None),
]
#: The report shows the paper stages' tables first (order 0), in this order.
#: Paper B's deployed replay's time ratios (encode ×K, latency over the clean images'): how this machine ran.
_TIMING = {"paper_b_deployed": ("encode_x", "encode_x_torch", "encode_vs_clean", "decode_vs_clean")}
TABLES = tuple(TableSpec(n, c, tuple(cols) if cols else None, order=0, timing=_TIMING.get(n, ()))
               for n, c, cols in _TABLES)


def _fail(key: str, msg: str) -> ConfigError:
    return ConfigError(f"{key}: {msg}")


def check_config(cfg: RunConfig, names: Names) -> None:
    """Before any work (``liccs run`` calls it after the names): ``[paper_b]`` cross-checked against the run;
    raises :class:`ConfigError` naming the key. The types and ranges are checked when the config loads."""
    attacked_codecs(cfg, names.codecs)


def attacked_codecs(cfg: RunConfig, codecs: list[str]) -> list[str]:
    """The codecs paper B attacks (``paper_b.attack_codecs``, or every codec), after checking ``[paper_b]``."""
    d = cfg.paper_b
    try:
        pool = [t for t in get_transforms(d.transforms) if t.name != "identity"]
        family = transform_family(d.max_shift)
    except InputError as e:
        raise _fail("paper_b.transforms", str(e)) from None
    for i, k in enumerate(d.k):
        if not 1 <= k <= len(family):
            raise _fail(f"paper_b.k[{i}]", f"K={k} is outside [1, {len(family)}] (the family's size)")
    if d.focus_k and d.focus_k not in d.k:
        raise _fail("paper_b.focus_k", f"K={d.focus_k} is not one of paper_b.k ({', '.join(map(str, d.k))})")
    if d.kway_k > len(pool) + 1:
        raise _fail("paper_b.kway_k",
                    f"K={d.kway_k} needs {d.kway_k - 1} transforms; paper_b.transforms has {len(pool)}")
    if not any(math.isclose(d.focus_eps, e, rel_tol=1e-9) for e in d.eps):
        raise _fail("paper_b.focus_eps", f"{d.focus_eps * 255:g}/255 must be one of paper_b.eps "
                    f"({', '.join(f'{e * 255:g}/255' for e in d.eps)})")
    if unknown := C.check(d.claims):
        raise _fail("paper_b.claims", f"unknown claim(s) {unknown}; valid: {', '.join(C.CLAIMS)}")
    for i, e in enumerate(d.deployed_engines):
        if not cfg.export.enabled:
            raise _fail("paper_b.deployed_engines", "replays on the deployed codecs that the export stage builds: "
                        "set export.enabled = true, or paper_b.deployed_engines = []")
        if e not in cfg.export.engines:
            raise _fail(f"paper_b.deployed_engines[{i}]", f"{e!r} is not one of export.engines "
                        f"({', '.join(cfg.export.engines)}), which the export stage builds deployed codecs on")
    if d.deployed_engines and cfg.export.codecs:
        for i, c in enumerate(d.attack_codecs):
            if c not in cfg.export.codecs:
                raise _fail(f"paper_b.attack_codecs[{i}]", f"{c!r} is replayed on the deployed codecs "
                            "(paper_b.deployed_engines) but is not one of export.codecs "
                            f"({', '.join(cfg.export.codecs)})")
    if d.rate != "bytes":
        raise _fail("paper_b.rate", "paper B's stage scores candidates by their real bytes ('bytes'); "
                    f"{d.rate!r} is not supported here")
    if d.lmbda == "codec":
        for c in codecs:
            if mse_lambda(c) is None:
                raise _fail("paper_b.lmbda", f'"codec" takes CompressAI\'s MSE λ of the quality, which {c!r} has '
                            "not; set a number")

    attacked = []
    for i, c in enumerate(d.attack_codecs):
        try:
            name = str(parse_codec(c))
        except LiccsError as e:
            raise _fail(f"paper_b.attack_codecs[{i}]", str(e)) from None
        if name not in codecs:
            raise _fail(f"paper_b.attack_codecs[{i}]", f"{c!r} is not a codec of [models]; valid: {', '.join(codecs)}")
        attacked.append(name)
    return attacked or list(codecs)


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


def focus_k(cfg: RunConfig) -> int:
    """The random defense's K of the claims, the adaptive attacks and the oracles: ``paper_b.focus_k``, or the
    largest of ``paper_b.k``."""
    return cfg.paper_b.focus_k or max(cfg.paper_b.k)


def adaptive_steps(cfg: RunConfig) -> int:
    """The adaptive attacks' steps: ``paper_b.adaptive_steps``, or ``paper_b.steps``."""
    return cfg.paper_b.adaptive_steps or cfg.paper_b.steps


def _specs(cfg: RunConfig, kmax: int) -> list[AttackSpec]:
    """Every attack of an attacked codec: the gradient attack's sweep, its strength ladder on the claims'
    objective, the noise control, and the adaptive attacks on the claims' objective and the rate; the plain
    attack at the adaptive attacks' steps too (the adaptive check's baseline)."""
    d, seed, m = cfg.paper_b, cfg.run.seed, cfg.paper_b.method
    co, steps = d.claim_objective, adaptive_steps(cfg)
    specs = [AttackSpec("pgd", o, e, d.steps, d.surrogate, seed, method=m) for o in d.objectives for e in d.eps]
    ladder = [n for n in dict.fromkeys([*d.strength_steps, steps]) if n != d.steps] if co in d.objectives else []
    specs += [AttackSpec("pgd", co, d.focus_eps, n, d.surrogate, seed, method=m) for n in ladder]
    if "rate" in d.objectives and steps != d.steps:
        specs.append(AttackSpec("pgd", "rate", d.focus_eps, steps, d.surrogate, seed, method=m))
    specs.append(AttackSpec("noise", "none", d.focus_eps, 0, d.surrogate, seed))
    for o in (co, "rate"):
        if o not in d.objectives:
            continue
        for a in d.adaptive:
            if a == "select" and o == "rate":
                continue  # the rate's adaptive attack: EoT over the defense's draws with its arg-min
            for tau in (d.tau if a == "select" else [d.tau[0]]):
                specs.append(AttackSpec(a, o, d.focus_eps, steps, d.surrogate, seed, f"random-{kmax}",
                                        d.eot_samples if a == "eot" else 1, tau, m))
    return specs


def _tag(spec: AttackSpec | None) -> dict[str, Any]:
    if spec is None:
        return {"attack": "none", "objective": "none", "eps_255": 0.0, "steps": 0, "target": "none", "method": "none"}
    return {"attack": spec.label, "objective": spec.objective, "eps_255": round(spec.eps * 255, 3),
            "steps": spec.steps, "target": spec.target, "method": spec.method if spec.attack != "noise" else "none"}


def run_stage(ctx: Context, exports: Exports, adversarial: dict[str, Tensor], out: Path,
              progress: bool = True) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Paper B's experiments (see the module docstring): its tables by name, and one-line findings."""

    cfg, d = ctx.cfg, ctx.cfg.paper_b
    attacked = attacked_codecs(cfg, ctx.names.codecs)
    images = load_images(cfg)
    bs, kmax, steps = cfg.data.batch_size, focus_k(cfg), adaptive_steps(cfg)
    rows: list[dict[str, Any]] = []
    deployed, dep_notes = D.engines(d.deployed_engines, exports, attacked)
    dep_rows: list[dict[str, Any]] = []
    cross: list[dict[str, Any]] = []
    clock = _Clock()
    folder = out / "paper-b" / "adversarial"
    precraft(ctx, attacked, _specs(cfg, kmax), folder, kmax)  # a parallel executor crafts every attack first
    bar = tqdm(ctx.names.codecs, desc="paper B", disable=not progress)
    for name in bar:
        codec, spec_ = ctx.codecs[name], parse_codec(name)
        base = {"codec": name, "arch": spec_.arch, "quality": spec_.quality}
        randoms, kway = defenses(cfg, codec)
        recon: dict[int, Tensor] = {}
        for idx in images.groups(bs):  # clean images: every defense, timed; the plain reconstruction kept
            x = images.stack(idx)
            recon[idx[0]] = plain(codec, x)[0]
            for n, r in enumerate(measure(codec, randoms, kway, x, x, recon[idx[0]], cfg.run.seed + idx[0],
                                          oracle_k=kmax)):
                rows.append({**base, **_tag(None), "image": images.names[idx[n % len(idx)]], **r})
        clock.lap("clean")
        if name not in attacked:
            continue
        kept: dict[AttackSpec, list[Tensor]] = {}  # the attacks replayed on the deployed codecs
        for s in _specs(cfg, kmax):
            bar.set_postfix_str(f"{name} {s.label} {s.objective} {s.steps} steps")
            adv, _ = craft(codec, s, images, bs, folder, attacked_defense(s, randoms, kmax))
            if D.wanted(s, d.claim_objective, d.focus_eps, steps):
                kept[s] = adv
            clock.lap(s.attack)
            for idx in images.groups(bs):
                x_adv = Images(adv, images.names).stack(idx)
                res = measure(codec, randoms, kway, x_adv, images.stack(idx), recon[idx[0]], cfg.run.seed + idx[0],
                              oracle_k=kmax)
                for n, r in enumerate(res):
                    rows.append({**base, **_tag(s), "image": images.names[idx[n % len(idx)]], **r})
            clock.lap("eval")
        on = {e: codecs[name] for e, codecs in deployed.items() if name in codecs}
        if on:
            bar.set_postfix_str(f"{name} on {', '.join(on)}")
            picked = D.pick_sets(kept, pd.DataFrame([r for r in rows if r["codec"] == name]), kmax)
            others = {e: codecs[name] for e, codecs in exports.deployed.items() if name in codecs}
            rp = D.Replay(kmax, transform_family(d.max_shift), randoms[kmax].lmbda, cfg.run.seed, bs)
            with ExitStack() as owned:  # the deployed codecs' runners, released when this codec's replay is done
                for dep in {id(v): v for v in [*on.values(), *others.values()]}.values():
                    owned.enter_context(dep)
                r_, c_ = D.replay_codec(codec, on, others,
                                        [(_tag(None), images.x), *((_tag(p), kept[p]) for p in picked)], images, rp)
            dep_rows += r_
            cross += c_
            clock.lap("deployed")
    per_image = pd.DataFrame(rows)
    s = T.summary(per_image)
    focus = round(d.focus_eps * 255, 3)
    check = S.adaptive_check_table(per_image, focus, steps)
    tables = {"paper_b_attack": T.attack_table(s), "paper_b_defense": T.defense_table(s),
              "paper_b_share": S.share_table(per_image, focus, steps, d.claim_objective),
              "paper_b_adaptive_check": check, "paper_b_clean_cost": T.clean_cost_table(s),
              "paper_b_bd_rate": T.bd_rate_table(s), "paper_b_adaptive": T.adaptive_table(s, per_image),
              "paper_b_claims": C.claims_table(per_image, d.claims, focus, steps, d.alpha, d.claim_objective),
              "paper_b_images": per_image}
    replication = C.replication_table(tables["paper_b_claims"])
    if not replication.empty:  # a model attacked under two training seeds
        tables["paper_b_replication"] = replication
    if dep_rows:
        dimg, dcross = pd.DataFrame(dep_rows), pd.DataFrame(cross)
        tables |= {"paper_b_deployed": D.deployed_table(dimg), "paper_b_deployed_cross": D.cross_table(dcross),
                   "paper_b_deployed_images": dimg}
    clock.lap("tables")
    fam = transform_family(d.max_shift)
    notes = [f"Paper B: {len(images.x)} images of {cfg.data.source}"
             + (f", centre {d.crop}×{d.crop} crops at full resolution" if d.crop else ", whole images")
             + f"; the plain attack ('pgd' rows) is {d.method.upper()} L∞ (best iterate), surrogate {d.surrogate}, "
             f"{d.steps} steps at eps {', '.join(f'{e * 255:g}' for e in d.eps)}/255, "
             f"strength ladder {d.strength_steps} at {d.focus_eps * 255:g}/255; claims on {d.claim_objective} "
             f"at {steps} steps, per attacked codec; "
             f"attacked codecs: {', '.join(attacked)}; "
             f"random defense K {d.k} over a family of {len(fam)} transforms ({randoms[kmax].header_bits}-bit header), "
             f"K-way (fixed) K={d.kway_k}; λ {'of each codec' if d.lmbda == 'codec' else d.lmbda}; adaptive "
             f"{', '.join(d.adaptive)} at {steps} steps (EoT: {d.eot_samples} draws of the defense's own candidates, "
             f"its arg-min applied, BPDA; selection-aware: τ {', '.join(f'{t:g}' for t in d.tau)}). "
             f"Stage seconds: {clock}."] + dep_notes
    flagged = [f"Adaptive attack weaker than the plain one: {r['attack']} on {r['objective']}, {r['codec']}: "
               f"{r['why']}" for r in check.to_dict("records") if r["flagged"]] if not check.empty else []
    dep_lines = (D.findings(tables["paper_b_deployed"], tables["paper_b_deployed_cross"])
                 if "paper_b_deployed" in tables else [])
    return tables, flagged + notes + findings(tables) + C.replication_lines(replication) + dep_lines


#: Paper B as a stage of ``liccs run``, on by ``[paper_b]``.
register(PaperStage("paper-b", "paper_b", 60, TABLES, check_config,
                    lambda ctx, r: run_stage(ctx, r.exports, r.adversarial, ctx.out, ctx.progress)))
