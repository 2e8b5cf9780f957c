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
Its parts: :mod:`.recipes` (the names and their training configs), :mod:`.training` and :mod:`.store` (training
into the keyed, sha256-checked cache), :mod:`.resolve` (which bytes a name loads; the registration),
:mod:`.zoo_train` and :mod:`.report` (``liccs zoo train`` and its report), :mod:`.train_codec`,
:mod:`.train_classifier`, :mod:`.train_data` (the trainers). ``load_codec(name, PATH)`` takes an explicit
checkpoint as for every entry. Quality ``qN`` uses CompressAI's λ for ``qN``
(:data:`~liccs.zoo.mini.train_codec.LAMBDAS`).
"""

from liccs.zoo.mini.recipes import (
    CLASSIFIER_CONFIGS,
    LADDER_CONFIGS,
    WEIGHTS_SOURCE,
    MiniClassifier,
    MiniLadder,
    replicate_of,
    seed_of,
)
from liccs.zoo.mini.resolve import (
    SOURCE_ENV,
    SOURCES,
    ladder_source,
    resolve_classifier,
    resolve_codec,
    resolve_models,
    source_preference,
)
from liccs.zoo.mini.training import train_mini_classifier, train_mini_ladder

__all__ = ["CLASSIFIER_CONFIGS", "LADDER_CONFIGS", "SOURCES", "SOURCE_ENV", "WEIGHTS_SOURCE", "MiniClassifier",
           "MiniLadder", "ladder_source", "replicate_of", "resolve_classifier", "resolve_codec", "resolve_models",
           "seed_of", "source_preference", "train_mini_classifier", "train_mini_ladder"]
