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
import math
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from liccs.config.sections import (
    EXTENSION_SECTIONS,
    AttackSection,
    DataSection,
    ExportSection,
    ModelsSection,
    PaperASection,
    PaperBSection,
    ProfileSection,
    ReportSection,
    RobustnessSection,
    RunConfig,
    RunSection,
    TransferSection,
)
from liccs.core.errors import LiccsError

__all__ = ["ConfigError", "AttackSection", "DataSection", "PaperBSection", "ExportSection", "ModelsSection",
           "ProfileSection", "ReportSection", "RobustnessSection", "RunConfig", "RunSection", "PaperASection",
           "TransferSection", "apply_overrides", "from_dict", "load_config", "parse_override", "register_section",
           "with_quick"]


class ConfigError(LiccsError, ValueError):
    """A config that cannot be used; the message names the key."""


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
    "paper_a": [("k", lambda v: v and all(x > 0 for x in v) and len(set(v)) == len(v),
                  "non-empty, each > 0, without repeats"), ("images", _POS, "> 0"),
                 ("eps", lambda v: v and all(0 < x <= 1 for x in v), "non-empty, each in (0, 1]"),
                 ("steps", lambda v: v and all(x > 0 for x in v) and len(set(v)) == len(v),
                  "non-empty, each > 0, without repeats"),
                 ("focus_eps", lambda v: v == "steepest" or (isinstance(v, float) and 0 < v <= 1),
                  '"steepest" or a number in (0, 1]'), ("far_dq", lambda v: v >= 2, ">= 2"),
                 ("sesoi_percentile", lambda v: 0 <= v < 0.5, "in [0, 0.5)"),
                 ("alpha", lambda v: 0 < v < 1, "in (0, 1)")],
    "paper_b": [("k", lambda v: v and all(x > 0 for x in v), "non-empty, each > 0"),
                ("lmbda", lambda v: v == "codec" or (isinstance(v, float) and math.isfinite(v) and v >= 0),
                 'a number >= 0 or "codec"'),
                ("eps", lambda v: v and all(0 < x <= 1 for x in v), "non-empty, each in (0, 1]"),
                ("objectives", lambda v: v and len(set(v)) == len(v), "non-empty, without repeats"),
                ("steps", _POS, "> 0"), ("crop", _NONNEG, ">= 0 (0: whole images)"),
                ("focus_eps", lambda v: 0 < v <= 1, "in (0, 1]"), ("eot_samples", _POS, "> 0"),
                ("max_shift", _NONNEG, ">= 0"), ("kway_k", _NONNEG, ">= 0 (0: none)"),
                ("strength_steps", lambda v: all(x > 0 for x in v) and len(set(v)) == len(v), "each > 0, no repeats"),
                ("tau", lambda v: v and all(x > 0 for x in v), "non-empty, each > 0"),
                ("adaptive_steps", _NONNEG, ">= 0 (0: paper_b.steps)"), ("alpha", lambda v: 0 < v < 1, "in (0, 1)"),
                ("deployed_engines", lambda v: all(v) and len(set(v)) == len(v),
                 "engine names (each of export.engines), without repeats"),
                ("claims", lambda v: all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                                         for x in v.values()), "name = smallest effect of interest (a number >= 0)")],
    "transfer": [("variants", bool, "non-empty"), ("batch_size", _POS, "> 0"),
                 ("square_queries", _NONNEG, ">= 0 (0: no Square rows)"), ("square_images", _POS, "> 0"),
                 ("square_p_init", lambda v: 0 < v <= 1, "in (0, 1]")],
    "robustness": [("images", _POS, "> 0"), ("restarts", _POS, "> 0"), ("target_classes", _NONNEG, ">= 0"),
                   ("queries", _NONNEG, ">= 0 (0: no Square in the standard evaluation)"),
                   ("sanity_eps", lambda v: v and all(x > 0 for x in v) and v == sorted(set(v)),
                    "non-empty, each > 0, increasing"),
                   ("sanity_steps", lambda v: v and all(x > 0 for x in v) and v == sorted(set(v)),
                    "non-empty, each > 0, increasing")],
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


def register_section(name: str, cls: type) -> type:
    """Add a stage's own config section ``[name]`` (a dataclass, every field with a default): a config may then set
    it, ``--set name.key=value`` override it and ``cfg.section(name)`` read it, checked as the built-in ones are."""
    builtin = {f.name for f in dataclasses.fields(RunConfig)}
    if name in builtin:
        raise ConfigError(f"section [{name}] is one of liccs's own; an extension's section needs another name")
    if not dataclasses.is_dataclass(cls):
        raise ConfigError(f"section [{name}]: {cls!r} is not a dataclass")
    EXTENSION_SECTIONS[name] = cls
    return cls


def _build_config(data: Mapping[str, Any]) -> RunConfig:
    """:func:`_build` of a whole config: the registered extension sections (top level, or under ``extensions`` as
    :meth:`RunConfig.to_dict` writes them) into their dataclasses."""
    data = dict(data)
    ext = dict(data.pop("extensions", None) or {})
    for name in [k for k in data if k in EXTENSION_SECTIONS]:
        ext[name] = data.pop(name)
    for name in ext:
        if name not in EXTENSION_SECTIONS:
            raise _unknown(name, name, [f.name for f in dataclasses.fields(RunConfig)] + list(EXTENSION_SECTIONS))
    cfg = _build(RunConfig, data, "")
    cfg.extensions = {name: _build(EXTENSION_SECTIONS[name], v, name) for name, v in ext.items()}
    return cfg


def from_dict(data: Mapping[str, Any]) -> RunConfig:
    """A validated :class:`RunConfig`; missing keys take the dataclass defaults; quick overrides are checked."""
    cfg = _build_config(data)
    cfg.quick = _flatten(cfg.quick)
    try:
        apply_overrides(cfg, cfg.quick)  # validate now, apply later
    except ConfigError as e:
        raise ConfigError(f"[quick] override: {e}") from None
    return cfg


def apply_overrides(cfg: RunConfig, overrides: Mapping[str, Any]) -> RunConfig:
    """A new config with dotted-key overrides (``{"data.images": 4}``), validated as a whole."""
    data = cfg.to_dict()
    ext = data.pop("extensions")
    sections = [f.name for f in dataclasses.fields(RunConfig) if f.name not in ("quick", "extensions")]
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        if section in EXTENSION_SECTIONS and key:
            target = ext.setdefault(section, dataclasses.asdict(EXTENSION_SECTIONS[section]()))
            target[key] = value
            continue
        if section not in sections or not key:
            raise _unknown(dotted, section, [*sections, *EXTENSION_SECTIONS])
        table, _, sub = key.partition(".")
        if sub and isinstance(data[section].get(table), dict):  # a key inside a table field: attack.params.decay
            data[section][table] = {**data[section][table], sub: value}
        else:
            data[section][key] = value
    return _build_config({**data, "extensions": ext})


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
