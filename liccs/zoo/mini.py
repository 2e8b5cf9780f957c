"""The offline mini zoo: models liccs trains itself on the shared data, registered as ``mini-…`` entries.

- ``mini-cifar-resnet``: a ResNet-9-style CIFAR-10 classifier (32×32 input; larger inputs, such as a
  64×64 codec reconstruction, are resized back to 32×32 by its preprocessing).
- ``mini-bmshj2018-factorized``, ``mini-bmshj2018-hyperprior``, ``mini-mbt2018-mean``: CIFAR-scale codec
  ladders (Ballé et al., ICLR 2018; Minnen et al., NeurIPS 2018) on CIFAR-10 upsampled to 64×64. CIFAR
  images are 32×32 but every CompressAI hyperprior model needs sides that are multiples of 64; padding a
  32×32 image to 64×64 would spend three quarters of the codec on padding and make bpp meaningless. The
  upsampling is 2× nearest and the classifier's resize back is ``area`` (2×2 mean), an exact inverse pair:
  without a codec the classifier sees the original CIFAR pixels (a bilinear pair blurred them and cost
  the classifier 9 points of accuracy), so every loss in LICCS accuracy is the codec's. bpp is counted
  over the 64×64 codec input.
- ``mini-nat-bmshj2018-hyperprior``, ``mini-nat-mbt2018-mean``: natural-image ladders trained on 64×64
  crops of ``imagenet-samples`` (downscaled 0.5–1×) for Kodak experiments (Kodak is never trained on).
- ``mini-tiny-…``: the same code at toy sizes, trained in seconds, for tests and CI.

Weights resolve to one set of bytes per name and source (:func:`resolve_models`): the fp16 weights the package
ships (``liccs/zoo/weights``) where it ships every quality a run asks of a ladder, else the liccs cache
(sha256-verified; trained on demand by the recipe, with a message and a progress bar). A ladder is one training:
its qualities never mix the two sources. ``$LICCS_MINI_WEIGHTS=cache`` (or ``shipped``) forces one; a cache entry
that differs from the shipped file under the same name is named in a warning and in the result's weights record.
``load_codec(name, PATH)`` takes an explicit checkpoint as for every entry. Quality ``qN`` uses CompressAI's λ
for ``qN`` (:data:`LAMBDAS`).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from liccs.data import CIFAR10_CLASSES
from liccs.errors import WeightsError
from liccs.zoo import mini_store as store
from liccs.zoo.classifiers import CLASSIFIERS, ClassifierEntry, PreprocessConfig
from liccs.zoo.codecs import CODECS, CodecEntry
from liccs.zoo.train_classifier import CIFAR_MEAN, CIFAR_STD, ClassifierTrainConfig, ResNet9, train_classifier
from liccs.zoo.train_codec import ARCHS, LAMBDAS, LadderConfig, build_codec, train_ladder
from liccs.zoo.train_data import cifar10_tensors, natural_crops
from liccs.zoo.weights import ResolvedWeights, sha256_of

log = logging.getLogger(__name__)

WEIGHTS_SOURCE = {"weights_source": "mini-zoo"}
#: How CIFAR images reach a CIFAR-scale mini codec (read by ``liccs run`` when it loads the images).
_CIFAR_GEOMETRY = {"image_size": 64, "upsample": "nearest"}


@dataclass(frozen=True)
class MiniClassifier:
    """A mini-zoo classifier: registry name and training config."""

    name: str
    config: ClassifierTrainConfig
    description: str

    @property
    def key(self) -> str:
        """12 hex digits naming the trained classifier (:func:`~liccs.zoo.mini_store.config_key`)."""
        return store.config_key("classifier", self.config)


@dataclass(frozen=True)
class MiniLadder:
    """A mini-zoo codec ladder: registry name (the architecture of ``ARCH@qN``) and training config."""

    name: str
    config: LadderConfig
    description: str
    replicates: str = ""  # the ladder this one repeats under another training seed ("": none)

    @property
    def key(self) -> str:
        """12 hex digits naming the trained ladder (:func:`~liccs.zoo.mini_store.config_key`)."""
        return store.config_key("ladder", self.config)

    def entry_name(self, quality: int) -> str:
        """The codec name of one rung: ``<name>@q<quality>``."""
        return f"{self.name}@q{quality}"


CLASSIFIER_CONFIGS: dict[str, MiniClassifier] = {
    c.name: c
    for c in (
        MiniClassifier("mini-cifar-resnet", ClassifierTrainConfig(),
                       "ResNet-9-style CIFAR-10 classifier (width 16), trained by liccs on cifar10-train; "
                       "evaluates with mirror test-time augmentation (logits of x and its flip averaged)"),
        MiniClassifier("mini-tiny-cifar-resnet",
                       ClassifierTrainConfig(width=8, epochs=4, batch_size=64, lr=0.4, train_per_class=50,
                                             bf16=False),
                       "toy CIFAR-10 classifier for tests (500 training images, seconds)"),
    )
}

#: CompressAI's whole λ ladder: q8 (λ = 0.18) gives the classifier a near-lossless top quality, q1 a visible loss.
_CIFAR_Q = (1, 2, 3, 4, 5, 6, 7, 8)
_NAT_Q = (1, 2, 3, 4)


#: Each CIFAR-scale ladder's seed: its own, so that no two architectures share initialisation or batch order
#: (CompressAI's mean-scale model builds g_a/g_s through the scale hyperprior's constructor: under one seed their
#: transforms would start from the same weights). The hyperprior keeps seed 0, its shipped weights' recipe.
_CIFAR_SEEDS = {"bmshj2018-hyperprior": 0, "mbt2018-mean": 2, "bmshj2018-factorized": 5}

#: Paper A's independently trained models (lineage control): three seeds of each quality, named by replicate.
_INDEP_SEEDS = {"mini-indep-bmshj2018-hyperprior": 1, "mini-indep-s2-bmshj2018-hyperprior": 3,
                "mini-indep-s3-bmshj2018-hyperprior": 4}


def _cifar(arch: str) -> LadderConfig:
    # The base trains in the middle (q4) and the ladder grows outward both ways: a base at the top (q8),
    # fine-tuned only downward, left q8 less trained than q7 and q6, and PSNR fell from q6 to q8
    # (35.97 -> 35.68 dB); fine-tuned upward from q5, the same 400-step stages reached 36.5 / 37.7 / 38.5 dB.
    # 4000 + 7 × 400 steps: about 10 minutes a ladder on 2 threads (0.09 s a step).
    return LadderConfig(arch, N=48, M=64, data="cifar10-64-nearest", qualities=_CIFAR_Q, base_steps=4000,
                        finetune_steps=400, batch_size=16, lr=2e-3, seed=_CIFAR_SEEDS[arch], base_quality=4)


def _independent(arch: str, seed: int) -> LadderConfig:
    # Paper A's lineage control: three qualities of the CIFAR ladder, each trained from scratch with the base's
    # recipe (4000 steps) under its own seed (no other ladder's: _INDEP_SEEDS), so that no two qualities share
    # weights; the chain ladder's neighbours are fine-tunes of each other.
    return LadderConfig(arch, N=48, M=64, data="cifar10-64-nearest", qualities=(2, 4, 6), base_steps=4000,
                        finetune_steps=0, batch_size=16, lr=2e-3, seed=seed, independent=True)


#: Paper B's replication: a second training of each natural-image ladder, its own seed (crops, initialisation
#: and batch order), named ``mini-nat-s2-ARCH``; the first keeps seed 0, its cached models' recipe.
_NAT_S2_SEEDS = {"bmshj2018-hyperprior": 7, "mbt2018-mean": 8}


def _nat(arch: str, seed: int = 0) -> LadderConfig:
    # 64×64 crops keep a training step as cheap as a CIFAR one (the whole zoo must train on a 2-core CPU).
    # 8000 base steps: at 4000 the q4 base underfit (Kodak 27.66 dB at 0.491 bpp, 1.28 dB under JPEG); 4000 more
    # steps gave 28.87 dB at 0.514 bpp (0.32 dB under JPEG). Upward fine-tuning, a cosine lr and 128×128 crops
    # at batch 4 did not help (reports/zoo/STATUS.md).
    return LadderConfig(arch, N=48, M=64, data="imagenet-crops-64", qualities=_NAT_Q, base_steps=8000,
                        finetune_steps=400, batch_size=16, lr=2e-3, train_limit=16, seed=seed)


LADDER_CONFIGS: dict[str, MiniLadder] = {
    lad.name: lad
    for lad in (
        *(MiniLadder(f"mini-{a}", _cifar(a), f"{ARCHS[a][0].__name__} at CIFAR scale (64×64), trained by liccs")
          for a in ARCHS),
        *(MiniLadder(f"mini-nat-{a}", _nat(a), f"{ARCHS[a][0].__name__} for natural images, trained by liccs "
                     "on imagenet-samples crops") for a in ("bmshj2018-hyperprior", "mbt2018-mean")),
        *(MiniLadder(f"mini-nat-s2-{a}", _nat(a, seed), f"{ARCHS[a][0].__name__} for natural images, mini-nat-{a}'s "
                     f"recipe under seed {seed} (paper B's second training)", replicates=f"mini-nat-{a}")
          for a, seed in _NAT_S2_SEEDS.items()),
        *(MiniLadder(name, _independent("bmshj2018-hyperprior", seed),
                     f"ScaleHyperprior at CIFAR scale, q2/q4/q6 each trained from scratch (seed {seed}, no shared "
                     "weights): paper A's lineage control",
                     replicates="" if name == "mini-indep-bmshj2018-hyperprior" else "mini-indep-bmshj2018-hyperprior")
          for name, seed in _INDEP_SEEDS.items()),
        MiniLadder("mini-tiny-bmshj2018-hyperprior",
                   LadderConfig("bmshj2018-hyperprior", N=8, M=8, data="cifar10-64-nearest", qualities=(1, 6),
                                base_steps=6, finetune_steps=3, batch_size=4, train_limit=20),
                   "toy scale hyperprior for tests (seconds)"),
        MiniLadder("mini-tiny-indep-bmshj2018-hyperprior",
                   LadderConfig("bmshj2018-hyperprior", N=8, M=8, data="cifar10-64-nearest", qualities=(1, 3, 6),
                                base_steps=6, finetune_steps=0, batch_size=4, train_limit=20, seed=1,
                                independent=True),
                   "toy independent ladder for tests (paper A's lineage control at toy scale)"),
        MiniLadder("mini-tiny-mbt2018-mean",
                   LadderConfig("mbt2018-mean", N=8, M=8, data="cifar10-64-nearest", qualities=(1, 6),
                                base_steps=6, finetune_steps=3, batch_size=4, train_limit=20),
                   "toy scale mean-scale hyperprior for tests (seconds; a second architecture for transfer)"),
        MiniLadder("mini-tiny-s2-mbt2018-mean",
                   LadderConfig("mbt2018-mean", N=8, M=8, data="cifar10-64-nearest", qualities=(1, 6),
                                base_steps=6, finetune_steps=3, batch_size=4, train_limit=20, seed=9),
                   "toy mean-scale hyperprior under a second seed, for tests (paper B's replication at toy scale)",
                   replicates="mini-tiny-mbt2018-mean"),
    )
}


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


# --- resolution: one set of bytes per name and source ----------------------------------------------
#: ``auto`` (default): the weights the package ships, where it ships every quality a run asks of a ladder; else the
#: liccs cache (trained on this machine by the recipe, where missing). ``shipped`` / ``cache`` force one source.
SOURCE_ENV = "LICCS_MINI_WEIGHTS"
SOURCES = ("auto", "shipped", "cache")


def source_preference() -> str:
    """The user's choice of mini-zoo weights (``$LICCS_MINI_WEIGHTS``), checked."""
    pref = os.environ.get(SOURCE_ENV, "auto").strip() or "auto"
    if pref not in SOURCES:
        raise WeightsError(f"{SOURCE_ENV}={pref!r} is not a weights source; valid: {', '.join(SOURCES)}")
    return pref


def _on_demand(what: str, minutes: str) -> None:
    log.warning("mini-zoo: %s is not in the liccs cache and has no shipped weights; training it now "
                "(about %s on a 2-core CPU; `liccs zoo train` trains the whole zoo ahead of time)", what, minutes)


def _shipped(name: str, key: str, cache_hint: str) -> ResolvedWeights:
    """The shipped file of ``name``; a cache entry under the same name from another training is named, not used."""
    path = store.committed(name, key)
    assert path is not None
    other = store.cached(name, key)
    note = None
    if other is not None and not store.same_training(other, path):
        note = (f"{name}: the liccs cache holds other weights ({other}, sha256 {sha256_of(other)[:12]}) than the "
                f"shipped ones ({path}, sha256 {sha256_of(path)[:12]}); the shipped weights are used "
                f"({cache_hint} uses the cache's)")
        warnings.warn(note, store.MiniZooWarning, stacklevel=4)
    return ResolvedWeights(path, "shipped", note)


def _from_cache(name: str, key: str, path: Path, reason: str | None) -> ResolvedWeights:
    shipped = store.committed(name, key)
    note = reason
    if shipped is not None:
        note = f"{name}: from the liccs cache ({path}), not the shipped {shipped}" + (f": {reason}" if reason else "")
        log.warning("mini-zoo: %s", note)
    return ResolvedWeights(path, "cache", note)


def resolve_classifier(name: str) -> ResolvedWeights:
    """Weights of a mini-zoo classifier: shipped, else cache, else trained now (``$LICCS_MINI_WEIGHTS`` forces one)."""
    mc = CLASSIFIER_CONFIGS[name]
    pref = source_preference()
    if store.committed(name, mc.key) is not None and pref != "cache":
        return _shipped(name, mc.key, f"{SOURCE_ENV}=cache")
    if pref == "shipped":
        raise WeightsError(f"{SOURCE_ENV}=shipped, but the package ships no weights for {name}")
    path = store.cached(name, mc.key)
    if path is None:
        _on_demand(name, "seconds" if "tiny" in name else "5 minutes")
        path = train_mini_classifier(mc)
    return _from_cache(name, mc.key, path, f"{SOURCE_ENV}={pref}" if pref != "auto" else None)


def ladder_source(name: str, qualities: Iterable[int]) -> tuple[str, str | None]:
    """Where the ``qualities`` of ladder ``name`` asked for together come from, and why when it is not obvious.

    A ladder is one training (its qualities are fine-tuned from each other), so it comes whole from one source:
    shipped when the package ships every quality asked for, else the liccs cache.
    """
    ml = LADDER_CONFIGS[name]
    asked = set(qualities)
    shipped = set(store.shipped_entries([(ml.entry_name(q), ml.key) for q in ml.config.qualities]))
    shipped_q = {q for q in ml.config.qualities if ml.entry_name(q) in shipped}
    pref = source_preference()
    if pref == "cache":
        return "cache", f"{SOURCE_ENV}=cache"
    if asked <= shipped_q:
        return "shipped", None
    if pref == "shipped":
        raise WeightsError(f"{SOURCE_ENV}=shipped, but the package ships no weights for "
                           f"{', '.join(ml.entry_name(q) for q in sorted(asked - shipped_q))} "
                           f"(shipped: {', '.join(ml.entry_name(q) for q in sorted(shipped_q)) or 'none'})")
    if shipped_q:
        return "cache", (f"the package ships {', '.join(f'q{q}' for q in sorted(shipped_q))} of {name} but not "
                         f"{', '.join(f'q{q}' for q in sorted(asked - shipped_q))}; a ladder is one training, so "
                         f"every quality of it comes from the liccs cache (recipe key {ml.key})")
    return "cache", None


def resolve_codec(name: str, quality: int, source: tuple[str, str | None] | None = None) -> ResolvedWeights:
    """Weights of ``name@qN`` from :func:`ladder_source` (of this quality alone unless ``source`` is given):
    shipped, or cache → trained now (with the qualities its chain needs)."""
    ml = LADDER_CONFIGS[name]
    entry = ml.entry_name(quality)
    where, reason = source or ladder_source(name, [quality])
    if where == "shipped":
        return _shipped(entry, ml.key, f"{SOURCE_ENV}=cache")
    path = store.cached(entry, ml.key)
    if path is None:
        _on_demand(entry, "seconds" if "tiny" in name else "10-15 minutes")
        path = train_mini_ladder(ml, only=quality)[quality]
    return _from_cache(entry, ml.key, path, reason)


def replicate_of(codec: str) -> str:
    """The codec that ``codec`` (``LADDER@qN``) repeats under another training seed, or ``codec`` itself where its
    ladder replicates none (every non-mini name too)."""
    arch, sep, q = codec.partition("@q")
    ml = LADDER_CONFIGS.get(arch)
    return f"{ml.replicates}@q{q}" if sep and ml is not None and ml.replicates else codec


def seed_of(codec: str) -> int | None:
    """The training seed of a mini-zoo codec ``LADDER@qN`` (None for other names)."""
    ml = LADDER_CONFIGS.get(codec.partition("@q")[0])
    return None if ml is None else ml.config.seed


def resolve_models(names: Iterable[str]) -> dict[str, ResolvedWeights]:
    """The weights of every mini-zoo model among ``names`` (``LADDER@qN`` or a classifier), each ladder as one unit
    (:func:`ladder_source` over the qualities asked of it); other names are left out."""
    ladders: dict[str, list[int]] = {}
    out: dict[str, ResolvedWeights] = {}
    for n in names:
        arch, _, q = n.partition("@q")
        if arch in LADDER_CONFIGS and q.isdigit():
            ladders.setdefault(arch, []).append(int(q))
        elif n in CLASSIFIER_CONFIGS:
            out[n] = resolve_classifier(n)
    for arch, qs in ladders.items():
        source = ladder_source(arch, qs)
        for q in qs:
            out[f"{arch}@q{q}"] = resolve_codec(arch, q, source)
    return out


def _register() -> None:
    for mc in CLASSIFIER_CONFIGS.values():
        CLASSIFIERS.register(mc.name, ClassifierEntry(
            name=mc.name,
            build=lambda w=mc.config.width: ResNet9(w, flip_tta=True),
            preprocess=PreprocessConfig(resize=32, crop=32, mean=CIFAR_MEAN, std=CIFAR_STD, interpolation="area"),
            num_classes=10,
            pretrained=lambda n=mc.name: resolve_classifier(n),
            dataset="cifar10",
            description=mc.description,
            extra={**WEIGHTS_SOURCE, "categories": list(CIFAR10_CLASSES)},
        ))
    for ml in LADDER_CONFIGS.values():
        c = ml.config

        def build(quality: int, c: LadderConfig = c) -> nn.Module:
            return build_codec(c.arch, c.N, c.M)

        def pretrained(quality: int, metric: str, n: str = ml.name) -> ResolvedWeights:
            return resolve_codec(n, quality)

        CODECS.register(ml.name, CodecEntry(
            arch=ml.name, family=ARCHS[c.arch][1], qualities=c.qualities, build=build, pretrained=pretrained,
            description=ml.description,
            extra={**WEIGHTS_SOURCE, "base_arch": c.arch,
                   **(_CIFAR_GEOMETRY if c.data.startswith("cifar10-64") else {}),
                   "lambdas": {q: LAMBDAS[q] for q in c.qualities}},
        ))


_register()
