"""``liccs zoo train``: train the mini zoo into the cache, then evaluate it into a report.

Every model is trained only when its cache entry (config + code version) is missing, so the command
resumes where an interrupted run stopped, and a second run only rewrites the report.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import torch

from liccs.core.errors import InputError
from liccs.core.isa import this_cpu
from liccs.zoo.codecs import parse_codec
from liccs.zoo.mini import store
from liccs.zoo.mini.recipes import CLASSIFIER_CONFIGS, LADDER_CONFIGS, MiniClassifier, MiniLadder
from liccs.zoo.mini.resolve import SOURCE_ENV, source_preference
from liccs.zoo.mini.training import train_mini_classifier, train_mini_ladder

log = logging.getLogger(__name__)

#: What ``liccs zoo train`` does without ``--only``: the full zoo, in priority order.
DEFAULT_ORDER = (
    "mini-cifar-resnet",
    "mini-bmshj2018-hyperprior",
    "mini-mbt2018-mean",
    "mini-bmshj2018-factorized",
    "mini-nat-bmshj2018-hyperprior",
    "mini-nat-mbt2018-mean",
)
#: What the default ``liccs run`` config (``liccs/configs/quick-cpu.toml``) needs, committed as fp16 weights.
COMMITTED = ("mini-cifar-resnet", "mini-bmshj2018-hyperprior@q1", "mini-bmshj2018-hyperprior@q4",
             "mini-bmshj2018-hyperprior@q8")


def select(names: list[str] | None, seed: int | None = None) -> list[MiniClassifier | MiniLadder]:
    """The zoo members to train (all non-tiny ones by default), with their seed replaced if ``seed`` is given."""
    out: list[MiniClassifier | MiniLadder] = []
    for n in names or list(DEFAULT_ORDER):
        if n in CLASSIFIER_CONFIGS:
            m: MiniClassifier | MiniLadder = CLASSIFIER_CONFIGS[n]
        elif n in LADDER_CONFIGS:
            m = LADDER_CONFIGS[n]
        else:
            raise InputError(f"unknown mini-zoo model {n!r}; "
                             f"valid: {', '.join([*CLASSIFIER_CONFIGS, *LADDER_CONFIGS])}")
        if seed is not None and seed != m.config.seed:
            m = replace(m, config=replace(m.config, seed=seed))
        out.append(m)
    return out


def train_zoo(members: list[MiniClassifier | MiniLadder], device: str = "cpu",
              progress: bool = True) -> dict[str, float]:
    """Train every member missing from the cache; returns the wall seconds each took in this call."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but no CUDA GPU is visible")
    walls: dict[str, float] = {}
    for m in members:
        t = time.perf_counter()
        if isinstance(m, MiniClassifier):
            if store.cached(m.name, m.key) is None:
                if store.committed(m.name, m.key) is not None and source_preference() != "cache":
                    print(f"{m.name}: shipped with the package for this recipe ({m.key}), so not trained "
                          f"({SOURCE_ENV}=cache trains it into the cache)", flush=True)
                    continue
                slow = emulated_bf16(m, device)
                if slow:
                    log.warning("%s", slow)
                log.warning("training %s", m.name)
                train_mini_classifier(m, device, progress)
        else:
            train_mini_ladder(m, device, progress)
        walls[m.name] = time.perf_counter() - t
        print(f"{m.name}: ready ({walls[m.name]:.0f} s in this run)", flush=True)
    return walls


def emulated_bf16(m: MiniClassifier | MiniLadder, device: str) -> str | None:
    """Why training ``m`` on ``device`` will be slow, when its recipe asks for bf16 autocast that this CPU emulates."""
    why = this_cpu().missing("bf16") if device == "cpu" and getattr(m.config, "bf16", False) else None
    return None if why is None else (f"{m.name}'s recipe trains in bf16 autocast and {why}: expect hours of training "
                                     "rather than minutes")


def export_committed(entries: list[str], out_dir: Path = store.COMMITTED_DIR) -> dict:
    """Make the fp16 weights in ``out_dir`` exactly ``entries`` (a classifier, ``LADDER@qN``, or a ladder name
    for all its qualities), training first whatever is not cached; other committed files are removed."""
    pairs: list[tuple[str, str]] = []
    for e in entries:
        (m,) = select([e.partition("@")[0]])
        if isinstance(m, MiniClassifier):
            if store.cached(m.name, m.key) is None:
                train_mini_classifier(m)
            pairs.append((m.name, m.key))
            continue
        q = parse_codec(e).quality if "@" in e else None
        train_mini_ladder(m, only=q)  # trains only what is not cached
        pairs += [(m.entry_name(x), m.key) for x in ((q,) if q is not None else m.config.qualities)]
    return store.export_fp16(pairs, out_dir, replace=True)
