"""The fastest engine per codec stage on this machine: measured once, cached, reused.

``engines = "auto"`` for a deployed codec means: time every stage (``g_a``, ``h_a``, ``h_s``, ``g_s``, ...) on every
candidate engine at the images' shape (in interleaved rounds, one call of each candidate per round, the median of
each), keep the fastest per stage, and store the choice under a key of the model
(weights and code), the machine (CPU model, cores, torch threads), the candidates, the shape and the library
versions. A later run with the same key reads the choice instead of measuring again; the choice (and the times it
came from) is meant for the run's manifest.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from liccs.core.errors import InputError
from liccs.core.fileio import json_digest
from liccs.core.manifest import cpu_model, package_versions
from liccs.core.paths import cache_dir
from liccs.engines.address import EngineAddress
from liccs.engines.base import ENGINES, Runner
from liccs.engines.codec import TABLE_STAGES, DeployedCodec
from liccs.engines.int8_fit import rd_cost
from liccs.export.cache import ArtifactCache, atomic_write
from liccs.export.graphs import module_hash, stage_feeds
from liccs.export.phases import TRANSPOSED_FORMS, transposed_count
from liccs.families import mse_lambda
from liccs.profiling.timer import TimerConfig, measure_interleaved

TIMER = TimerConfig(warmup=2, min_iters=5, min_duration_s=0.3)

log = logging.getLogger(__name__)


def choice_key(codec: nn.Module, candidates: Sequence[str], shape: tuple[int, ...],
               forms: Sequence[str] = ("native",)) -> dict[str, Any]:
    """What decides a choice: model, machine, candidates (engines and transposed forms), input shape and versions."""
    versions = package_versions()
    return {"model": module_hash(codec), "cpu": cpu_model(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "candidates": list(candidates), "forms": list(forms),
            "shape": list(shape), "timing": "interleaved rounds, median",
            "versions": {k: versions.get(k) for k in ("torch", "onnxruntime", "openvino") if versions.get(k)}}


def _cached(path: Path, key: dict[str, Any], candidates: Sequence[str], forms: Sequence[str]) -> dict[str, Any] | None:
    """The stored choice of ``key`` at ``path``, or None. A cached file is not trusted: one that does not parse, or
    names an engine or form outside ``candidates``/``forms``, is named in a warning and measured again."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        log.warning("cached stage-engine choice %s is unreadable (%s); measuring again", path, e)
        return None
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    engines, forms_of = record.get("engines"), record.get("transposed")
    if (not isinstance(engines, dict) or not isinstance(forms_of, dict) or not engines
            or not set(engines.values()) <= set(candidates) or not set(forms_of.values()) <= set(forms)):
        log.warning("cached stage-engine choice %s names engines or forms this call did not offer (damaged); "
                    "measuring again", path)
        return None
    return record


def _reduced(candidate: str) -> bool:
    """Whether a candidate (``A``, ``A>B``) computes any part in a precision other than fp32."""
    return any(ENGINES.get(e).precision != "fp32" for e in EngineAddress.parse(candidate).engines)


def choose_stage_engines(codec: nn.Module, candidates: Sequence[str], images: Tensor, *,
                         cache: ArtifactCache | None = None, config: TimerConfig = TIMER,
                         store: Path | None = None, calibration_images: Tensor | None = None,
                         forms: Sequence[str] = ("native",), exporter: str = "auto",
                         rd_budget: float | None = None, lmbda: float | None = None) -> dict[str, Any]:
    """``{"engines": {stage: engine}, "transposed": {stage: form}, "p50_ms": {stage: {candidate: ms}},
    "precision": {stage: precision}, "rd_cost": {stage: relative J increase}, "key": ..., "cached": bool}``.

    Each candidate engine runs each of ``forms`` (how transposed convolutions are exported, see
    :mod:`liccs.export.phases`) on the stages that have such convolutions; a candidate is named ``engine`` for the
    native form and ``engine/form`` otherwise. Candidates that cannot run here are left out (said in
    ``"skipped"``), as are emulated ones (their times say nothing of the precision they emulate); at least one must
    run. Reduced-precision candidates (bf16, int8) change the codec, not only its speed: they need ``rd_budget``,
    are timed on the transforms only (``g_a``, ``g_s``: the entropy-table stages stay fp32 so that fp32 decoders
    read the streams) and win a stage only where the codec with that stage so costs at most ``rd_budget`` (0.01:
    1%) more in ``J = bpp + λ·255²·MSE`` on ``images``' real bitstreams than with the fastest fp32 candidate there
    (λ: ``lmbda``, else CompressAI's for the codec's quality); where several win, the codec with all of them is
    held to the same budget, else only the one that saves the most time keeps its reduced precision.
    """
    if not candidates:
        raise InputError("choose_stage_engines needs at least one candidate engine")
    bad = [f for f in forms if f not in TRANSPOSED_FORMS]
    if bad or not forms:
        raise InputError(f"transposed forms {bad or list(forms)} not among {TRANSPOSED_FORMS}")
    reduced = [c for c in candidates if _reduced(c)]
    if reduced and rd_budget is None:
        raise InputError(f"candidates {reduced} compute in reduced precision, which changes the codec: give "
                         f"rd_budget (the relative rate-distortion cost a stage may add, e.g. 0.01)")
    if reduced and len(reduced) == len(candidates):
        raise InputError(f"every candidate ({', '.join(candidates)}) computes in reduced precision: add an fp32 "
                         f"one, the baseline a reduced stage is held against")
    key = choice_key(codec, candidates, tuple(images.shape), forms) | ({"rd_budget": rd_budget} if reduced else {})
    path = (store or cache_dir() / "stage-engines") / f"{json_digest(key)[:20]}.json"
    record = _cached(path, key, candidates, forms)
    if record is not None:
        return record | {"cached": True}
    feeds = stage_feeds(codec, images)
    skipped: dict[str, str] = {}
    rewrites = {f: {s for s in feeds if hasattr(codec, s) and transposed_count(getattr(codec, s), f)}
                for f in forms if f != "native"}  # the stages each form changes: the others run as native
    entries: list[tuple[str, str, Runner]] = []  # (stage, candidate, runner)
    with ExitStack() as owned:  # every candidate codec is closed once timed
        for form in forms:
            for engine in candidates:
                name = engine if form == "native" else f"{engine}/{form}"
                emulated = [e for e in EngineAddress.parse(engine).engines if ENGINES.get(e).emulated]
                if emulated:
                    skipped[name] = f"{emulated[0]} emulates its precision: its times say nothing of that precision"
                    continue
                try:
                    deployed = owned.enter_context(DeployedCodec.on_engine(  # int8: every transform layer
                        codec, engine, cache, exporter=exporter, calibration_images=calibration_images,
                        transposed=form, int8_tolerance=None))
                except Exception as e:  # noqa: BLE001  (EngineUnavailable, a failed export: said in the record)
                    skipped[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    continue
                entries += [(stage, name, runner) for stage, runner in deployed.runners.items()
                            if stage in feeds and (form == "native" or stage in rewrites[form])
                            and (stage not in TABLE_STAGES or not _reduced(engine))]
        for stage, _, runner in entries:
            runner.infer(feeds[stage])  # the first call outside the timing
        samples = measure_interleaved({(stage, name): (lambda r=runner, f=feeds[stage]: r.infer(f))
                                       for stage, name, runner in entries}, config)
    times: dict[str, dict[str, float]] = {}
    for (stage, name), v in samples.items():
        times.setdefault(stage, {})[name] = statistics.median(v) * 1e3
    if not times:
        raise InputError(f"no candidate engine could run here: {skipped}")
    best = {stage: min(t, key=t.get) for stage, t in times.items()}
    rd: dict[str, float] = {}
    if reduced:
        best, rd = _within_budget(codec, best, times, images, cache, exporter, rd_budget or 0.0, lmbda,
                                  calibration_images)
    engines = {stage: EngineAddress.parse(b).engine for stage, b in best.items()}
    transposed = {stage: EngineAddress.parse(b).form for stage, b in best.items()}
    precision = {stage: "+".join(sorted({ENGINES.get(e).precision for e in EngineAddress.parse(b).engines}))
                 for stage, b in best.items()}
    record = {"key": key, "engines": engines, "transposed": transposed, "p50_ms": times, "skipped": skipped,
              "precision": precision, "rd_cost": rd}
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1)))
    return record | {"cached": False}


def _rd(codec: nn.Module, picks: dict[str, str], images: Tensor, cache: Any, exporter: str, lmbda: float,
        calibration: Tensor | None) -> float:
    """J of ``images`` through the deployed codec with stage → candidate ``picks`` (real bitstreams)."""
    where = {s: EngineAddress.parse(c) for s, c in picks.items()}
    with DeployedCodec.on_engine(codec, {s: a.engine for s, a in where.items()}, cache, exporter=exporter,
                                 transposed={s: a.form for s, a in where.items()},
                                 calibration_images=calibration) as d:
        return rd_cost(d, images, d.runners, lmbda)[1]


def _within_budget(codec: nn.Module, best: dict[str, str], times: dict[str, dict[str, float]], images: Tensor,
                   cache: Any, exporter: str, budget: float, lmbda: float | None, calibration: Tensor | None
                   ) -> tuple[dict[str, str], dict[str, float]]:
    """``best`` with each reduced-precision pick kept only within the rate-distortion budget (see
    :func:`choose_stage_engines`); and each reduced stage's relative J increase (``"all"``: of those kept together)."""
    lmbda = lmbda if lmbda is not None else mse_lambda(getattr(codec, "liccs_name", ""))
    if lmbda is None:
        raise InputError(f"{getattr(codec, 'liccs_name', type(codec).__name__)}: a reduced-precision stage is held "
                         f"to a rate-distortion budget weighed by the codec's λ, and its name gives none "
                         f"(ARCH@q1…q8): pass lmbda")
    fp32 = {s: min((c for c in t if not _reduced(c)), key=t.get, default="") for s, t in times.items()}
    if missing := [s for s, c in fp32.items() if not c]:
        raise InputError(f"no fp32 candidate ran for stage(s) {missing}: nothing to hold reduced precision against")
    base = _rd(codec, fp32, images, cache, exporter, lmbda, calibration)
    rd = {s: _rd(codec, fp32 | {s: c}, images, cache, exporter, lmbda, calibration) / base - 1
          for s, c in best.items() if _reduced(c)}
    kept = [s for s, v in rd.items() if v <= budget]
    if len(kept) > 1:
        together = fp32 | {s: best[s] for s in kept}
        rd["all"] = _rd(codec, together, images, cache, exporter, lmbda, calibration) / base - 1
        if rd["all"] > budget:
            kept = [max(kept, key=lambda s: times[s][fp32[s]] - times[s][best[s]])]
    return {s: best[s] if s in kept else fp32[s] for s in best}, rd
