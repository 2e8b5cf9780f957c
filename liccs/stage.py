"""The contract of a ``liccs run`` stage, and what every stage shares.

A stage (export + parity, profile, attack, transfer, paper A, paper B, ...) is an object with

- ``name`` and ``section``: its config section, whose ``enabled`` key turns it on;
- ``tables``: the :class:`TableSpec` of every table it may produce, declared once (the report lays them out
  by these specs; a stage that returns an undeclared table is an error);
- ``check(cfg, names)``: called before any work, raises :class:`~liccs.config.ConfigError` naming the key
  when the run cannot serve the stage;
- ``run(ctx, results) -> StageResult``: its tables, figures, notes and skipped items, and what later stages
  use (the deployed codecs, the adversarial images), read from ``results``.

Stages register in :data:`STAGES`, in the order they run; the run job loops over the enabled ones
(:mod:`liccs.jobs.run`). This module sits below every stage, so the paper stages import nothing above it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch
from torch import Tensor, nn

from liccs.config import RunConfig
from liccs.core import Registry
from liccs.core.errors import LiccsError
from liccs.core.executor import RayExecutor, SerialExecutor
from liccs.engines.codec import DeployedCodec
from liccs.export.cache import ArtifactCache
from liccs.pipeline import LICCS

#: ``attack.objective`` of the config → the attack's objective (:data:`liccs.attack.objectives.OBJECTIVES`)
ATTACK_OBJECTIVES = {"classification": "ce", "distortion": "distortion", "rate": "rate", "differential": "differential"}


@dataclass(frozen=True)
class Source:
    """An attack source: its members, the engine whose deployment the attacker differentiates (``torch``: the
    PyTorch models; otherwise the replica of that engine's graphs) and whether it aims at the disagreement between
    PyTorch and the deployment (``differential``). Its label, ``A+B``, ``A~ENGINE`` or ``A~ENGINE:differential``,
    names its images in every table."""

    members: tuple[str, ...]
    engine: str = "torch"
    differential: bool = False

    @property
    def label(self) -> str:
        return "+".join(self.members) + ("" if self.engine == "torch" else f"~{self.engine}") + (
            ":differential" if self.differential else "")

    @property
    def base(self) -> str:
        """The label of the same members crafted on the PyTorch models."""
        return "+".join(self.members)

    @staticmethod
    def parse(label: str) -> Source:
        rest, _, objective = label.partition(":")
        members, _, engine = rest.partition("~")
        return Source(tuple(members.split("+")), engine or "torch", objective == "differential")


def attack_sources(cfg: RunConfig, base: list[str]) -> list[Source]:
    """The run's sources: ``base`` (``attack.sources`` or every model) crafted as ``attack.target_engine`` and
    ``attack.objective`` say, then each again per ``attack.engine_aware`` entry (``ENGINE[:differential]``)."""
    a = cfg.attack
    main = [Source(tuple(b.split("+")), a.target_engine, a.objective == "differential") for b in base]
    extra = []
    for entry in a.engine_aware:
        engine, _, objective = entry.partition(":")
        extra += [Source(tuple(b.split("+")), engine, objective == "differential") for b in base]
    return list(dict.fromkeys(main + extra))


def device_key(cfg: RunConfig) -> dict[str, str]:
    """The attack's device in a cache key; empty on the CPU, so keys made before GPUs were supported stay valid."""
    return {} if cfg.run.device == "cpu" else {"device": cfg.run.device}


def task_resources(cfg: RunConfig) -> dict[str, Any]:
    """What an attack task asks of the executor: the run's torch threads as CPUs (the same threads as a serial run,
    so that the numbers do not depend on where a task ran), and a GPU when the attack runs on CUDA."""
    threads = cfg.run.threads
    return {"num_cpus": max(1, threads), "num_gpus": 1 if cfg.run.device == "cuda" else 0, "threads": threads}


class RunError(LiccsError):
    """A run that cannot go on; the message names the config key, model or engine."""


@dataclass
class Names:
    """The run's checked names: codecs, attack sources (``+``-joined ensembles), transfer targets, engines."""

    codecs: list[str]
    sources: list[str]
    targets: list[str]
    export_engines: list[str]
    transfer_engines: list[str]
    unavailable: dict[str, str] = field(default_factory=dict)  # engine → why it cannot run here

    def engines(self, which: str) -> list[str]:
        """The available engines of ``export`` or ``transfer``."""
        names = self.export_engines if which == "export" else self.transfer_engines
        return [e for e in names if e not in self.unavailable]


@dataclass
class Context:
    """What every stage uses: models, images (float [N, 3, H, W]), labels, notes for the header."""

    cfg: RunConfig
    names: Names
    codecs: dict[str, nn.Module]
    classifier: nn.Module
    images: torch.Tensor
    labels: torch.Tensor
    image_names: list[str]
    notes: list[str] = field(default_factory=list)
    weights: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    #: the images' provenance (source, count, sha256 of the files read and of the decoded pixels), for the manifest
    data: dict[str, Any] = field(default_factory=dict)
    executor: SerialExecutor | RayExecutor = field(default_factory=SerialExecutor)
    _on_device: dict[int, nn.Module] = field(default_factory=dict, repr=False)

    @property
    def out(self) -> Path:
        """The run's report folder (``run.out``)."""
        return Path(self.cfg.run.out)

    def calibration(self) -> Tensor:
        """The int8 calibration images: the first ``export.calibration_images`` of the run's images."""
        return self.images[: self.cfg.export.calibration_images]

    def on_device(self, module: nn.Module) -> nn.Module:
        """``module`` on ``run.device``, where the gradient path runs: the module itself on the CPU, else a
        copy made once (the loaded models stay on the CPU for export, parity and the deployed codecs)."""
        device = torch.device(self.cfg.run.device)
        if device.type == "cpu":
            return module
        if id(module) not in self._on_device:
            self._on_device[id(module)] = copy.deepcopy(module).to(device)
        return self._on_device[id(module)]

    def attack_members(self, names: list[str]) -> list[nn.Module]:
        """What an attack source differentiates, on ``run.device``: LICCS (rounding ``attack.surrogate``) per
        codec name, the bare classifier for the classifier's name."""
        clf = self.on_device(self.classifier)
        return [clf if n == self.cfg.models.classifier else
                LICCS(self.on_device(self.codecs[n]), clf, rounding=self.cfg.attack.surrogate) for n in names]


@dataclass
class Exports:
    """Parity records, deployed codecs ``{engine or deployment: {codec: DeployedCodec}}`` and why some could not be
    built."""

    parity: pd.DataFrame = field(default_factory=pd.DataFrame)
    export: pd.DataFrame = field(default_factory=pd.DataFrame)
    deployed: dict[str, dict[str, DeployedCodec]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # "engine:codec" → reason
    cache: ArtifactCache = field(default_factory=ArtifactCache)
    deployments: pd.DataFrame = field(default_factory=pd.DataFrame)  # [export.deployments]: the engine per stage

    def close(self) -> None:
        """Release every deployed codec's runners (their sessions and compiled models); the run does it at its end."""
        for codecs in self.deployed.values():
            for d in codecs.values():
                d.close()


@dataclass(frozen=True)
class TableSpec:
    """A table a stage produces: its name (the file ``tables/NAME.csv``), caption, the columns shown in
    report.md/html (None: all; the files keep every column), its place in the report (lower first), and its
    ``timing`` columns: measures of how fast this machine ran (time ratios too), which ``liccs compare`` leaves out
    of the results a regeneration must reproduce."""

    name: str
    caption: str
    columns: tuple[str, ...] | None = None
    order: int = 50
    files: tuple[str, ...] = ("csv", "json")  # the formats written (liccs.report.tables.FORMATS)
    timing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Figure:
    """A figure a stage made: PNG bytes, title and caption."""

    title: str
    png: bytes
    caption: str = ""


@dataclass
class StageResult:
    """What a stage gives back: tables by declared name, figures, notes for the report's header, skipped items
    (name → reason), and what later stages read (``exports``, ``adversarial``), when it makes them."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    exports: Exports | None = None
    adversarial: dict[str, Tensor] | None = None


@dataclass
class Results:
    """Everything the stages run so far produced, which later stages read."""

    exports: Exports = field(default_factory=Exports)
    adversarial: dict[str, Tensor] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def add(self, stage: Stage, result: StageResult) -> None:
        """Merge ``stage``'s result; a table ``stage`` did not declare raises (the report would drop it)."""
        declared = {t.name for t in stage.tables}
        extra = sorted(set(result.tables) - declared)
        if extra:
            raise RunError(f"stage {stage.name} returned tables it does not declare: {extra}")
        self.tables.update(result.tables)
        self.figures.extend(result.figures)
        self.skipped.update(result.skipped)
        if result.exports is not None:
            self.exports = result.exports
        if result.adversarial is not None:
            self.adversarial = result.adversarial


class Stage(Protocol):
    """One stage of ``liccs run`` (see the module docstring)."""

    name: str
    section: str
    order: int  # stages run by ascending order
    tables: tuple[TableSpec, ...]

    def enabled(self, cfg: RunConfig) -> bool: ...

    def check(self, cfg: RunConfig, names: Names) -> None: ...

    def run(self, ctx: Context, results: Results) -> StageResult: ...


class StageBase:
    """Defaults for a :class:`Stage`: on when its section's ``enabled`` is true; nothing to check."""

    name: str
    section: str
    order: int
    tables: tuple[TableSpec, ...] = ()

    def enabled(self, cfg: RunConfig) -> bool:
        """Whether ``cfg`` turns this stage on (its section's ``enabled``)."""
        return bool(getattr(cfg.section(self.section), "enabled", False))

    def check(self, cfg: RunConfig, names: Names) -> None:
        """Before any work: raise :class:`~liccs.config.ConfigError` when the run cannot serve this stage."""


#: Every run stage (they run by ascending ``order``). Register with :func:`register`.
STAGES: Registry[Stage] = Registry("run stage")


def register(stage: Stage) -> Stage:
    """Add ``stage`` to :data:`STAGES`."""
    return STAGES.register(stage.name, stage)


def ordered() -> list[Stage]:
    """The registered stages in the order they run."""
    return sorted((STAGES.get(n) for n in STAGES.names()), key=lambda s: s.order)
