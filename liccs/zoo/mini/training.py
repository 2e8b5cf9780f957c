"""Training a mini-zoo recipe into the liccs cache: a classifier, or a codec ladder (one training: each quality
from its parent), resuming from the cached qualities."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from liccs.zoo.mini import store
from liccs.zoo.mini.recipes import MiniClassifier, MiniLadder
from liccs.zoo.mini.train_classifier import ClassifierTrainConfig, train_classifier
from liccs.zoo.mini.train_codec import LAMBDAS, LadderConfig, build_codec, train_ladder
from liccs.zoo.mini.train_data import cifar10_tensors, natural_crops

log = logging.getLogger(__name__)
# --- training into the cache ----------------------------------------------------------------------


def _load_train_images(cfg: LadderConfig | ClassifierTrainConfig, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(cfg, LadderConfig) and cfg.data.startswith("imagenet-crops-"):
        imgs = natural_crops(int(cfg.data.rsplit("-", 1)[1]), cfg.train_limit or 4, cfg.seed, progress)
        return imgs, torch.zeros(len(imgs), dtype=torch.long)
    limit = cfg.train_limit if isinstance(cfg, LadderConfig) else cfg.train_per_class
    return cifar10_tensors("train", limit, progress)


def train_mini_classifier(mc: MiniClassifier, device: str = "cpu", progress: bool = True) -> Path:
    """Train ``mc`` and store it in the cache; returns the weights path."""
    images, labels = _load_train_images(mc.config, progress)
    t, c = time.perf_counter(), time.process_time()
    model, steps = train_classifier(mc.config, images, labels, device=device, progress=progress)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    state = {k: v for k, v in model.state_dict().items()}
    return store.save(mc.name, mc.key, state, {"kind": "classifier", "config": asdict(mc.config), "device": device,
                                                "wall_s": wall, "cpu_s": cpu, "threads": torch.get_num_threads(),
                                                "log": steps})


def train_mini_ladder(ml: MiniLadder, device: str = "cpu", progress: bool = True,
                      only: int | None = None) -> dict[int, Path]:
    """Train the ladder ``ml`` (quality ``only`` and its ancestors, all by default) into the cache, reusing
    cached qualities."""
    cfg = ml.config
    paths: dict[int, Path] = {}
    for q in cfg.qualities:
        if (p := store.cached(ml.entry_name(q), ml.key)) is not None:
            paths[q] = p
    need = set(cfg.qualities) if only is None else set(cfg.chain(only))
    if need <= set(paths):
        return paths

    def load(q: int) -> nn.Module:
        model = build_codec(cfg.arch, cfg.N, cfg.M)
        model.load_state_dict(torch.load(paths[q], weights_only=True))
        return model

    missing = need - set(paths)
    # the cached parents of what is missing: the chain resumes where it stopped
    trained = {q: load(q) for q in {cfg.parent(m) for m in missing} & set(paths)}
    images, _ = _load_train_images(cfg, progress)
    cpu0 = [time.process_time()]

    def done(q: int, model: nn.Module, steps: list[dict[str, float]], wall: float) -> None:
        cpu, cpu0[0] = time.process_time() - cpu0[0], time.process_time()
        paths[q] = store.save(ml.entry_name(q), ml.key, model.state_dict(),
                              {"kind": "codec", "config": asdict(cfg), "quality": q, "lambda": LAMBDAS[q],
                               "parent": cfg.parent(q), "device": device, "wall_s": wall, "cpu_s": cpu,
                               "threads": torch.get_num_threads(), "log": steps})

    train_ladder(cfg, images, device, progress, ml.name, on_done=done, trained=trained, only=missing)
    return paths
