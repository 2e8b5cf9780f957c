"""The mini zoo's seeding: no two from-scratch trainings share initialisation or batch order, and models whose
recipe differs only by seed start from different weights (paper A's replication units)."""

from __future__ import annotations

import pytest
import torch

from liccs.zoo.mini import LADDER_CONFIGS
from liccs.zoo.mini.train_codec import build_codec


def _scratch() -> list[tuple[str, int, int]]:
    """(ladder, quality, torch seed) of every quality trained from scratch on CIFAR at full scale (paper A's
    models; the natural-image ladders of paper B, whose claims are per codec, keep their recipe)."""
    return [(name, q, lad.config.init_seed(q)) for name, lad in LADDER_CONFIGS.items()
            if lad.config.data.startswith("cifar") and "-tiny-" not in name
            for q in lad.config.qualities if lad.config.parent(q) is None]


def test_every_from_scratch_training_has_its_own_seed():
    seeds = [s for _, _, s in _scratch()]
    assert len(seeds) == len(set(seeds)), sorted(_scratch(), key=lambda t: t[2])


def _init(name: str, q: int) -> dict[str, torch.Tensor]:
    cfg = LADDER_CONFIGS[name].config
    torch.manual_seed(cfg.init_seed(q))
    return build_codec(cfg.arch, cfg.N, cfg.M).g_a.state_dict()


@pytest.mark.parametrize("a, b", [
    (("mini-bmshj2018-hyperprior", 4), ("mini-mbt2018-mean", 4)),  # the two architectures' bases
    (("mini-indep-bmshj2018-hyperprior", 2), ("mini-indep-s2-bmshj2018-hyperprior", 2)),  # seeds of one quality
    (("mini-indep-s2-bmshj2018-hyperprior", 4), ("mini-indep-s3-bmshj2018-hyperprior", 4)),
])
def test_replicates_start_from_different_weights(a, b):
    wa, wb = _init(*a), _init(*b)
    assert wa.keys() == wb.keys()  # the same analysis transform's layers ...
    assert not all(torch.equal(wa[k], wb[k]) for k in wa)  # ... from other initial weights
    assert all(torch.equal(wa[k], v) for k, v in _init(*a).items())  # and one seed repeats exactly
