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
from liccs.engines.base import Runner
from liccs.engines.codec import DeployedCodec
from liccs.export.cache import ArtifactCache, atomic_write
from liccs.export.graphs import module_hash, stage_feeds
from liccs.export.phases import TRANSPOSED_FORMS, transposed_count
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


def choose_stage_engines(codec: nn.Module, candidates: Sequence[str], images: Tensor, *,
                         cache: ArtifactCache | None = None, config: TimerConfig = TIMER,
                         store: Path | None = None, calibration_images: Tensor | None = None,
                         forms: Sequence[str] = ("native",), exporter: str = "auto") -> dict[str, Any]:
    """``{"engines": {stage: engine}, "transposed": {stage: form}, "p50_ms": {stage: {candidate: ms}}, "key": ...,
    "cached": bool}``.

    Each candidate engine runs each of ``forms`` (how transposed convolutions are exported, see
    :mod:`liccs.export.phases`) on the stages that have such convolutions; a candidate is named ``engine`` for the
    native form and ``engine/form`` otherwise. Candidates that cannot run here are left out (said in
    ``"skipped"``); at least one must run.
    """
    if not candidates:
        raise InputError("choose_stage_engines needs at least one candidate engine")
    bad = [f for f in forms if f not in TRANSPOSED_FORMS]
    if bad or not forms:
        raise InputError(f"transposed forms {bad or list(forms)} not among {TRANSPOSED_FORMS}")
    key = choice_key(codec, candidates, tuple(images.shape), forms)
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
                try:
                    deployed = owned.enter_context(DeployedCodec.on_engine(
                        codec, engine, cache, exporter=exporter, calibration_images=calibration_images,
                        transposed=form))
                except Exception as e:  # noqa: BLE001  (EngineUnavailable, a failed export: said in the record)
                    skipped[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    continue
                entries += [(stage, name, runner) for stage, runner in deployed.runners.items()
                            if stage in feeds and (form == "native" or stage in rewrites[form])]
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
    engines = {stage: EngineAddress.parse(b).engine for stage, b in best.items()}
    transposed = {stage: EngineAddress.parse(b).form for stage, b in best.items()}
    record = {"key": key, "engines": engines, "transposed": transposed, "p50_ms": times, "skipped": skipped}
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1)))
    return record | {"cached": False}

