"""Deployed codecs whose stages run on different engines: the ``[export.deployments]`` table of a run config.

.. code-block:: toml

    [export.deployments]
    fastest = "auto"                                     # each stage on the fastest fp32 engine of export.engines
                                                         # (export.auto_precisions: bf16/int8 too, within a budget)
    among = ["ort-cpu", "ov-cpu", "ov-cpu>ort-cpu"]      # each stage on the fastest of these
    mine = { g_a = "ort-cpu", g_s = "ov-cpu>ort-cpu" }   # named per stage; the rest on "default", else torch

A choice (``"auto"`` or a list) is measured once per codec on the run's first image by
:func:`liccs.profiling.choose.choose_stage_engines` (interleaved rounds, the median of each candidate) and cached
under the model, the machine, the candidates, the shape and the library versions: a later run reads it. ``"A>B"``
runs a stage's output layer on B and the rest on A (:mod:`liccs.engines.chain`); a choice also tries each
engine with ``g_s``'s output layer as a sub-pixel convolution (:data:`AUTO_FORMS`); a table's stage entry may
pin a transposed form, ``g_s = "ov-cpu/sub-pixel-output"``. Each deployment is one more row
in every per-engine table (rate-distortion, BD-rate, profiles), named by its key; the ``deployments`` table says
which engine ran each stage, and for a choice the times it came from. The classifier of a deployment runs on its
``classifier`` entry, else on torch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd
from torch import Tensor, nn

from liccs.config import ConfigError, RunConfig
from liccs.core.errors import LiccsError
from liccs.core.progress import tqdm
from liccs.engines import ENGINES, EngineUnavailable
from liccs.engines.address import EngineAddress
from liccs.engines.codec import DeployedCodec
from liccs.export.cache import ArtifactCache
from liccs.export.phases import TRANSPOSED_FORMS
from liccs.families import FAMILIES, family_of
from liccs.profiling.choose import TIMER, choose_stage_engines
from liccs.profiling.timer import TimerConfig

AUTO = "auto"
#: the transposed-convolution forms a choice tries besides each engine's native one: the sub-pixel output layer
#: (faster inside OpenVINO's g_s, liccs.export.phases); the four-phase split measured slower on every engine here
AUTO_FORMS = ("native", "sub-pixel-output")
#: what a per-stage table may name besides the stages: the stages it leaves out, and the classifier
EXTRA_KEYS = ("default", "classifier")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def stage_names() -> list[str]:
    """Every stage a deployed codec of some family runs (:data:`liccs.families.FAMILIES`)."""
    out = {s for f in FAMILIES.values() for s in f.stages} - {"context_prediction"}
    return sorted(out)


def _engine(key: str, name: Any, form: bool = False) -> str:
    """``name`` checked: an engine, ``A>B``, or (``form``: a stage's entry) either with ``/FORM``, a transposed
    form of :data:`liccs.export.phases.TRANSPOSED_FORMS` (``ov-cpu/sub-pixel-output``)."""
    if not isinstance(name, str):
        raise ConfigError(f"{key}: expected an engine name, got {type(name).__name__} {name!r}")
    try:
        address = EngineAddress.parse(name)
    except LiccsError as e:
        raise ConfigError(f"{key}: {e}") from None
    if "/" in name:
        if not form:
            raise ConfigError(f"{key}: {name!r}: only a stage's entry names a transposed form (ENGINE/FORM)")
        if address.form not in TRANSPOSED_FORMS:
            raise ConfigError(f"{key}: unknown transposed form {address.form!r}; valid forms: "
                              f"{', '.join(TRANSPOSED_FORMS)}")
    for p in address.engines:
        if p not in ENGINES.names():
            raise ConfigError(f"{key}: unknown engine {p!r}; valid engines: {', '.join(ENGINES.names())} "
                              f"(or 'A>B': a stage on A, its output layer on B)")
    return name


def auto_candidates(cfg: RunConfig) -> list[str]:
    """``"auto"``'s candidates: the engines of ``export.engines`` in ``export.auto_precisions`` (default fp32 only:
    a reduced precision changes the codec, not only its speed, so it competes within ``export.auto_rd_budget``);
    never an emulated engine (its times say nothing of the precision it emulates)."""
    return [e for e in cfg.export.engines if ENGINES.get(e).precision in cfg.export.auto_precisions
            and not ENGINES.get(e).emulated]


def parse_deployments(cfg: RunConfig) -> dict[str, list[str] | dict[str, str]]:
    """``export.deployments`` checked: name → candidates (a choice) or stage → engine. Raises ConfigError naming
    the key: a name that is an engine's or not an identifier, an unknown engine or stage, an empty choice."""
    out: dict[str, list[str] | dict[str, str]] = {}
    stages = stage_names()
    have = sorted({ENGINES.get(e).precision for e in ENGINES.names()})
    for i, p in enumerate(cfg.export.auto_precisions):
        if p not in have:
            raise ConfigError(f"export.auto_precisions[{i}]: unknown precision {p!r}; valid: {', '.join(have)}")
    if not (cfg.export.auto_rd_budget >= 0 and math.isfinite(cfg.export.auto_rd_budget)):
        raise ConfigError(f"export.auto_rd_budget: a relative cost ≥ 0 (0.01: 1%), got {cfg.export.auto_rd_budget}")
    for name, value in cfg.export.deployments.items():
        key = f"export.deployments.{name}"
        if not _NAME.match(name) or name in ENGINES.names():
            raise ConfigError(f"{key}: a deployment's name is a letter then letters, digits, '_' or '-', and not an "
                              f"engine's name (it names the deployment's rows beside the engines')")
        if value == AUTO:
            out[name] = auto_candidates(cfg)
            if not out[name]:
                raise ConfigError(f"{key}: 'auto' chooses among the engines of export.engines in "
                                  f"export.auto_precisions ({', '.join(cfg.export.auto_precisions)}), and there "
                                  f"are none ({', '.join(cfg.export.engines)})")
        elif isinstance(value, list):
            if not value:
                raise ConfigError(f"{key}: an empty list of candidates; give engines, or 'auto'")
            out[name] = [_engine(f"{key}[{i}]", e) for i, e in enumerate(value)]
        elif isinstance(value, Mapping):
            for k in value:
                if k not in stages and k not in EXTRA_KEYS:
                    raise ConfigError(f"{key}.{k}: not a stage; valid keys: {', '.join(stages + list(EXTRA_KEYS))}")
            out[name] = {k: _engine(f"{key}.{k}", v, form=k != "classifier") for k, v in value.items()}
            if "classifier" in out[name] and EngineAddress.parse(out[name]["classifier"]).split:
                raise ConfigError(f"{key}.classifier: the classifier runs on one engine, not a split")
        else:
            raise ConfigError(f"{key}: expected 'auto', a list of candidate engines or a table of stage = engine; "
                              f"got {type(value).__name__} {value!r}")
    return out


def _rows(deployment: str, codec: str, d: DeployedCodec, choice: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for stage in d.runners:
        times = (choice or {}).get("p50_ms", {}).get(stage, {})
        engine = EngineAddress.parse(d.runners[stage].name).engine
        rows.append({"deployment": deployment, "codec": codec, "stage": stage, "engine": engine,
                     "precision": "+".join(sorted({ENGINES.get(e).precision
                                                   for e in EngineAddress.parse(engine).engines})),
                     "transposed": d.transposed.get(stage, "native"),
                     "p50_ms": min(times.values()) if times else None,
                     "candidates_p50_ms": json.dumps({k: round(v, 3) for k, v in sorted(times.items())})
                     if times else "", "chosen": "measured" if choice and not choice["cached"] else
                     "cached" if choice else "config"})
    return rows


def build_deployments(cfg: RunConfig, codecs: Mapping[str, nn.Module], images: Tensor, cache: ArtifactCache,
                      calibration: Tensor | None = None, *, exporter: str = "auto", timer: TimerConfig = TIMER,
                      progress: bool = False
                      ) -> tuple[dict[str, dict[str, DeployedCodec]], pd.DataFrame, dict[str, str]]:
    """({deployment: {codec: DeployedCodec}}, the ``deployments`` table, {"deployment:codec": why it failed}).

    A choice is timed with ``timer`` on ``images[:1]``; ``exporter`` as for :meth:`DeployedCodec.on_engine`;
    ``progress`` shows a bar over deployments × codecs."""
    deployed: dict[str, dict[str, DeployedCodec]] = {}
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    specs = parse_deployments(cfg)
    jobs = [(name, spec, c) for name, spec in specs.items() for c in codecs]
    for name, spec, codec_name in tqdm(jobs, desc="deployments", disable=not progress or not jobs):
        codec = codecs[codec_name]
        deployed.setdefault(name, {})
        try:
            choice = None
            if isinstance(spec, list):
                choice = choose_stage_engines(codec, spec, images[:1], cache=cache, config=timer,
                                              calibration_images=calibration, exporter=exporter, forms=AUTO_FORMS,
                                              rd_budget=cfg.export.auto_rd_budget)
                engines, forms = choice["engines"], choice["transposed"]
            else:
                # a stage this codec's family lacks (h_a of a factorized codec) is another codec's entry
                have = set(family_of(codec).stages) | {"default"}
                where = {k: EngineAddress.parse(v) for k, v in spec.items() if k in have}
                engines = {k: a.engine for k, a in where.items()}
                forms = {k: a.form for k, a in where.items()}
            d = DeployedCodec.on_engine(codec, engines, cache, exporter=exporter, calibration_images=calibration,
                                        transposed=forms)
        except (EngineUnavailable, LiccsError) as e:
            failed[f"{name}:{codec_name}"] = f"{type(e).__name__}: {e}"
            continue
        deployed[name][codec_name] = d
        rows += _rows(name, codec_name, d, choice)
    return deployed, pd.DataFrame(rows), failed


def classifier_engine(cfg: RunConfig, key: str) -> str:
    """The engine that runs the classifier next to the deployed codecs under ``key`` (an engine or a deployment)."""
    spec = cfg.export.deployments.get(key)
    if spec is None:
        return key
    return spec.get("classifier", "torch") if isinstance(spec, Mapping) else "torch"


def emulated_engine(cfg: RunConfig, key: str) -> str | None:
    """The emulated engine ``key`` (an engine or a deployment) runs on, if any: its times say nothing of the
    precision it emulates, so profiles leave it out (``EngineSpec.emulated``)."""
    spec = cfg.export.deployments.get(key)
    names = [key] if spec is None else auto_candidates(cfg) if spec == AUTO else (
        list(spec.values()) if isinstance(spec, Mapping) else list(spec))
    parts = [p for n in names for p in EngineAddress.parse(n).engines if p in ENGINES.names()]
    return next((p for p in parts if ENGINES.get(p).emulated), None)


def device_engine(cfg: RunConfig, key: str) -> str:
    """An engine whose device stands for ``key``'s (an engine or a deployment) in the matmul ceiling: a deployment's
    first engine on a GPU, else its first engine."""
    spec = cfg.export.deployments.get(key)
    if spec is None:
        return key
    names = auto_candidates(cfg) if spec == AUTO else list(spec.values()) if isinstance(spec, Mapping) else spec
    parts = [p for n in names for p in EngineAddress.parse(n).engines]  # an entry may name a split or a form
    return next((p for p in parts if ENGINES.get(p).device == "cuda"), parts[0] if parts else "torch")
