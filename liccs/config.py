"""A run's configuration: typed dataclasses, TOML in, JSON out.

Every key is checked before any work starts: an unknown section or key, or a value of the wrong type or
out of range, raises :class:`ConfigError` naming the key (``profile.min_iters``) and listing the valid keys.
Fractions are accepted where a float is expected (``eps = "8/255"``).

A ``[quick]`` table holds overrides for a fast variant (``--quick``), nested (``[quick.data]``) or dotted
(``"profile.min_iters" = 3``); :func:`load_config` validates them at load time too.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from liccs.errors import LiccsError


class ConfigError(LiccsError, ValueError):
    """A config that cannot be used; the message names the key."""


def _cv(default: list[Any]) -> Any:
    return field(default_factory=lambda: list(default))


@dataclass
class RunSection:
    """Name, output folder, seed, device, CPU threads and executor of the run."""

    name: str = "quick-cpu"
    out: str = "reports/quick-cpu"
    seed: int = 0
    device: Literal["cpu", "cuda"] = "cpu"
    threads: int = 2  # torch intra-op threads, in this process and in every task; 0 leaves torch's default
    executor: Literal["serial", "ray"] = "serial"  # where the attack tasks run (liccs.executor)
    address: str = ""  # ray: "" starts a local instance, "auto" joins `ray start`, "ray://HOST:PORT" a client


@dataclass
class ModelsSection:
    """Codecs (``ARCH@qN``), the classifier, their weights, and whether the classifier alone is a model too."""

    codecs: list[str] = _cv(["bmshj2018-hyperprior@q1", "bmshj2018-hyperprior@q4", "bmshj2018-hyperprior@q8"])
    classifier: str = "resnet18"
    weights: str = "pretrained"  # pretrained | random | PATH
    classifier_alone: bool = True


@dataclass
class DataSection:
    """Images: a named source (``imagenet-samples``, ``kodak``, ``cifar10-test``) or a folder/CSV path."""

    source: str = "imagenet-samples"
    images: int = 16
    batch_size: int = 8


@dataclass
class ExportSection:
    """Engines to export to and the parity tolerances; ``enabled = false`` skips export, parity and the deployed
    codecs (a run whose stages only use the PyTorch models, such as paper A's)."""

    enabled: bool = True
    engines: list[str] = _cv(["torch", "ort-cpu", "ort-cpu-int8"])
    max_abs_err: float = 1e-3
    min_top1_agreement: float = 0.99
    calibration_images: int = 16
    deployments: dict[str, Any] = field(default_factory=dict)  # stages on other engines: liccs.stages.deployments


@dataclass
class ProfileSection:
    """Timer settings and the batch × resolution sweep."""

    enabled: bool = True
    warmup: int = 3
    min_iters: int = 10
    min_duration_s: float = 1.0
    batch_sizes: list[int] = _cv([1, 4])
    resolutions: list[list[int]] = _cv([[256, 256], [512, 512]])
    stages: list[str] = _cv(["g_a", "h_a", "h_s", "g_s", "build_indexes", "entropy_encode", "entropy_decode",
                             "classifier"])
    cuda_graph: bool = False
    matmul_n: int = 1024


@dataclass
class AttackSection:
    """The attack (sources: ``ARCH@qN``, ``+`` for an ensemble) on the PyTorch models or on the replica of
    ``target_engine``; each ``engine_aware`` entry ``ENGINE[:differential]`` adds ``SOURCE~ENGINE[:differential]``.

    ``name``: any attack of the registry (``liccs.attack.ATTACKS``: fgsm, ifgsm, pgd, mifgsm, apgd, square,
    standard); ``params``: that attack's own parameters (``[attack.params]``, e.g. ``decay`` of mifgsm, ``restarts``
    and ``rho`` of apgd, ``queries`` and ``p_init`` of square), checked against it before any work.
    ``step_size`` is not passed to the attacks that set their own (apgd, square, standard). ``compare``: more
    registered attacks (their default parameters) crafted on the same PyTorch sources at the same eps and steps,
    each labelled ``SOURCE[NAME]`` in every table, and set against the run's attack in ``attack_compare``."""

    enabled: bool = True
    name: str = "pgd"
    params: dict[str, Any] = field(default_factory=dict)
    compare: list[str] = _cv([])
    norm: Literal["linf", "l2"] = "linf"
    eps: float = 4 / 255
    step_size: float = 1 / 255
    steps: int = 10
    random_start: bool = True
    targeted: bool = False
    surrogate: Literal["ste", "noise", "identity", "cubic"] = "ste"
    objective: Literal["classification", "distortion", "rate", "differential"] = "classification"
    target_engine: str = "torch"
    engine_aware: list[str] = _cv([])
    input_diversity: bool = False
    eot_samples: int = 1
    sources: list[str] = _cv([])  # empty: every codec of [models]


@dataclass
class SamplingSection:
    """Paper A's stage (``liccs.papers.paper_a``): the eps × steps sweep over one codec ladder, the quality
    transfer matrix, the lineage control, the classifier alone, and the saliency score against every k-set.

    ``arch``: the ladder swept and sampled (a codec architecture of [models]); ``lineage_arch``: a ladder of the
    same architecture whose qualities share no weights ('' : none); the other codecs of [models] are the
    cross-architecture targets. ``eps`` are swept at ``steps[0]``; ``focus_eps`` (``"steepest"``: the eps
    whose off-diagonal ASR falls fastest with |Δq| at ``steps[0]``, or a number) also gets ``steps[1:]`` and
    hosts the lineage, classifier-alone and sampling experiments. ``candidates``: the qualities the ensembles
    are drawn from (empty: the whole ladder); every k-set of them is crafted on ``images`` held-out images.
    ``score``/``interpolation``: the primary saliency score (every variant is reported); ``far_dq``: the neighbour
    claim's far cells (|Δq| ≥ far_dq); ``sesoi_*``: each claim's smallest effect of interest, ``alpha`` (Holm).
    """

    enabled: bool = False
    arch: str = ""
    lineage_arch: str = ""
    eps: list[float] = _cv([1 / 255, 2 / 255, 3 / 255])
    steps: list[int] = _cv([10, 30])
    focus_eps: float | str = "steepest"
    candidates: list[int] = _cv([])
    k: list[int] = _cv([2, 3])
    images: int = 256
    score: Literal["envelope", "sum", "union", "level-topk"] = "envelope"
    interpolation: Literal["linear", "pchip"] = "linear"
    far_dq: int = 4
    alpha: float = 0.05
    sesoi_neighbour: float = 0.05
    sesoi_lineage: float = 0.05
    sesoi_saliency: float = 0.03
    sesoi_codec_aware: float = 0.05


@dataclass
class DefenseSection:
    """Paper B (:mod:`liccs.papers.paper_b`): attacks, the random K-way defense (``k``; the fixed one at ``kway_k``),
    controls, adaptive attacks at ``focus_eps``, and ``claims`` (name → smallest effect of interest)."""

    enabled: bool = False
    k: list[int] = _cv([2, 4, 8])
    max_shift: int = 3
    kway_k: int = 4  # 0: no deterministic K-way comparison
    transforms: list[str] = _cv(["hflip", "vflip", "rot90", "rot180", "rot270", "transpose", "antitranspose"])
    rate: Literal["bytes", "likelihood"] = "bytes"
    lmbda: float | str = "codec"  # a number ≥ 0 (fractions too), or "codec"
    eps: list[float] = _cv([4 / 255])
    objectives: list[Literal["distortion", "distortion-clean", "distortion-recon", "rate"]] = _cv(
        ["distortion", "distortion-clean", "distortion-recon", "rate"])
    steps: int = 10
    strength_steps: list[int] = _cv([10, 50, 200])
    surrogate: Literal["ste", "noise", "identity", "cubic"] = "ste"
    crop: int = 256
    attack_codecs: list[str] = _cv([])
    focus_eps: float = 4 / 255
    adaptive: list[Literal["eot", "select"]] = _cv(["eot", "select"])
    eot_samples: int = 4
    tau: float = 0.02
    claims: dict[str, float] = field(default_factory=dict)
    alpha: float = 0.05


@dataclass
class TransferSection:
    """Which engines replay the adversarial images, against which targets, in which variants; ``square_queries``
    > 0 also runs Square (scores only, [attack]'s eps and norm) against every engine × ``square_targets`` (empty:
    every target) on the first ``square_images`` images, with that query budget."""

    enabled: bool = True
    engines: list[str] = _cv(["torch", "ort-cpu", "ort-cpu-int8"])
    targets: list[str] = _cv([])  # empty: every codec of [models]
    variants: list[Literal["float", "uint8"]] = _cv(["float", "uint8"])
    reference_engine: str = "torch"
    batch_size: int = 16
    square_queries: int = 0
    square_targets: list[str] = _cv([])
    square_images: int = 16
    square_p_init: float = 0.05


@dataclass
class ReportSection:
    """Report title, header notes and whether to draw figures."""

    title: str = "liccs run"
    notes: list[str] = _cv([])
    figures: bool = True


@dataclass
class RunConfig:
    """A whole run. ``quick`` holds the overrides applied by ``--quick`` (dotted keys)."""

    run: RunSection = field(default_factory=RunSection)
    models: ModelsSection = field(default_factory=ModelsSection)
    data: DataSection = field(default_factory=DataSection)
    export: ExportSection = field(default_factory=ExportSection)
    profile: ProfileSection = field(default_factory=ProfileSection)
    attack: AttackSection = field(default_factory=AttackSection)
    sampling: SamplingSection = field(default_factory=SamplingSection)
    defense: DefenseSection = field(default_factory=DefenseSection)
    transfer: TransferSection = field(default_factory=TransferSection)
    report: ReportSection = field(default_factory=ReportSection)
    quick: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Every section and key as nested dicts."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)


# --- ranges: (key, predicate, requirement) per section, checked after the types --------------------------
_POS, _NONNEG = (lambda v: v > 0), (lambda v: v >= 0)
_RANGES: dict[str, list[tuple[str, Any, str]]] = {
    "run": [("threads", _NONNEG, ">= 0")],
    "models": [("codecs", bool, "non-empty")],
    "data": [("images", _POS, "> 0"), ("batch_size", _POS, "> 0")],
    "export": [("max_abs_err", _NONNEG, ">= 0"), ("min_top1_agreement", lambda v: 0 <= v <= 1, "in [0, 1]"),
               ("calibration_images", _POS, "> 0")],
    "profile": [("warmup", _NONNEG, ">= 0"), ("min_iters", _POS, "> 0"), ("min_duration_s", _NONNEG, ">= 0"),
                ("batch_sizes", lambda v: v and all(b > 0 for b in v), "non-empty, each > 0"),
                ("resolutions", lambda v: v and all(len(r) == 2 and min(r) > 0 for r in v),
                 "non-empty, each [height, width] > 0"), ("matmul_n", lambda v: v >= 16, ">= 16")],
    "attack": [("eps", lambda v: 0 < v and math.isfinite(v), "> 0"), ("step_size", _POS, "> 0"),
               ("steps", _POS, "> 0"), ("eot_samples", _POS, "> 0")],
    "sampling": [("k", lambda v: v and all(x > 0 for x in v) and len(set(v)) == len(v),
                  "non-empty, each > 0, without repeats"), ("images", _POS, "> 0"),
                 ("eps", lambda v: v and all(0 < x <= 1 for x in v), "non-empty, each in (0, 1]"),
                 ("steps", lambda v: v and all(x > 0 for x in v) and len(set(v)) == len(v),
                  "non-empty, each > 0, without repeats"),
                 ("focus_eps", lambda v: v == "steepest" or (isinstance(v, float) and 0 < v <= 1),
                  '"steepest" or a number in (0, 1]'), ("far_dq", lambda v: v >= 2, ">= 2"),
                 ("alpha", lambda v: 0 < v < 1, "in (0, 1)")],
    "defense": [("k", lambda v: v and all(x > 0 for x in v), "non-empty, each > 0"),
                ("lmbda", lambda v: v == "codec" or (isinstance(v, float) and math.isfinite(v) and v >= 0),
                 'a number >= 0 or "codec"'),
                ("eps", lambda v: v and all(0 < x <= 1 for x in v), "non-empty, each in (0, 1]"),
                ("objectives", lambda v: v and len(set(v)) == len(v), "non-empty, without repeats"),
                ("steps", _POS, "> 0"), ("crop", _NONNEG, ">= 0 (0: whole images)"),
                ("focus_eps", lambda v: 0 < v <= 1, "in (0, 1]"), ("eot_samples", _POS, "> 0"),
                ("max_shift", _NONNEG, ">= 0"), ("kway_k", _NONNEG, ">= 0 (0: none)"),
                ("strength_steps", lambda v: all(x > 0 for x in v) and len(set(v)) == len(v), "each > 0, no repeats"),
                ("tau", _POS, "> 0"), ("alpha", lambda v: 0 < v < 1, "in (0, 1)"),
                ("claims", lambda v: all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                                         for x in v.values()), "name = smallest effect of interest (a number >= 0)")],
    "transfer": [("variants", bool, "non-empty"), ("batch_size", _POS, "> 0"),
                 ("square_queries", _NONNEG, ">= 0 (0: no Square rows)"), ("square_images", _POS, "> 0"),
                 ("square_p_init", lambda v: 0 < v <= 1, "in (0, 1]")],
}
_FRACTION = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*/\s*(\d+(?:\.\d*)?)\s*$")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against the annotation ``tp`` (and converted: int → float, "8/255" → float)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (types.UnionType, typing.Union):
        for alt in args:
            try:
                return _convert(value, alt, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        return [_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__} {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        m = _FRACTION.match(value) if isinstance(value, str) else None
        if m and float(m.group(2)) != 0:
            return float(m.group(1)) / float(m.group(2))
    if tp is str and isinstance(value, str):
        return value
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _unknown(key: str, name: str, valid: Iterable[str], section: str = "") -> ConfigError:
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    what, where = ("key", f" of [{section}]") if section else ("section", "")
    return ConfigError(f"unknown {what} {key!r}.{hint} Valid {what}s{where}: {', '.join(valid)}")


def _build(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a table, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            raise _unknown(f"{path}.{k}" if path else k, k, names, path)
    kwargs = {k: _convert(v, hints[k], f"{path}.{k}" if path else k) for k, v in data.items()}
    obj = cls(**kwargs)
    for key, ok, need in _RANGES.get(path, []):
        value = getattr(obj, key)
        if not ok(value):
            raise ConfigError(f"{path}.{key}: must be {need}, got {value!r}")
    return obj


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in table.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, Mapping):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def from_dict(data: Mapping[str, Any]) -> RunConfig:
    """A validated :class:`RunConfig`; missing keys take the dataclass defaults; quick overrides are checked."""
    cfg = _build(RunConfig, data, "")
    cfg.quick = _flatten(cfg.quick)
    try:
        apply_overrides(cfg, cfg.quick)  # validate now, apply later
    except ConfigError as e:
        raise ConfigError(f"[quick] override: {e}") from None
    return cfg


def apply_overrides(cfg: RunConfig, overrides: Mapping[str, Any]) -> RunConfig:
    """A new config with dotted-key overrides (``{"data.images": 4}``), validated as a whole."""
    data = cfg.to_dict()
    sections = [f.name for f in dataclasses.fields(RunConfig) if f.name != "quick"]
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        if section not in sections or not key:
            raise _unknown(dotted, section, sections)
        table, _, sub = key.partition(".")
        if sub and isinstance(data[section].get(table), dict):  # a key inside a table field: attack.params.decay
            data[section][table] = {**data[section][table], sub: value}
        else:
            data[section][key] = value
    return _build(RunConfig, data, "")


def parse_override(text: str) -> tuple[str, Any]:
    """``"profile.min_iters=3"`` → ``("profile.min_iters", 3)``; the value is read as TOML, else as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like section.key=value")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value


def with_quick(cfg: RunConfig) -> RunConfig:
    """The ``--quick`` variant: ``cfg`` with its ``[quick]`` overrides applied."""
    return apply_overrides(cfg, cfg.quick)


def load_config(path: str | Path, *, quick: bool = False, overrides: Iterable[str] = ()) -> RunConfig:
    """Read and validate a TOML config; apply ``--quick`` and ``key=value`` overrides (in that order)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:  # missing, a folder, or not text (a damaged file)
        raise ConfigError(f"config {path} cannot be read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config {path} is not valid TOML: {e}") from None
    try:
        cfg = with_quick(from_dict(data)) if quick else from_dict(data)
        return apply_overrides(cfg, dict(parse_override(o) for o in overrides))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
