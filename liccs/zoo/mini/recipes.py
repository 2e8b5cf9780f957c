"""The mini zoo's recipes: each classifier and codec ladder by name, with its training config (seed, data,
qualities) and the recipe key that names its trained weights; which ladder repeats which under another seed."""

from __future__ import annotations

from dataclasses import dataclass

from liccs.zoo.mini import store
from liccs.zoo.mini.train_classifier import ClassifierTrainConfig
from liccs.zoo.mini.train_codec import ARCHS, LadderConfig

WEIGHTS_SOURCE = {"weights_source": "mini-zoo"}
#: How CIFAR images reach a CIFAR-scale mini codec (read by ``liccs run`` when it loads the images).
CIFAR_GEOMETRY = {"image_size": 64, "upsample": "nearest"}


@dataclass(frozen=True)
class MiniClassifier:
    """A mini-zoo classifier: registry name and training config."""

    name: str
    config: ClassifierTrainConfig
    description: str

    @property
    def key(self) -> str:
        """12 hex digits naming the trained classifier (:func:`~liccs.zoo.mini.store.config_key`)."""
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
        """12 hex digits naming the trained ladder (:func:`~liccs.zoo.mini.store.config_key`)."""
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
    # at batch 4 did not help.
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
