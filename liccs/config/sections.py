"""The sections of a run's configuration (``[run]``, ``[models]``, …): typed dataclasses with their defaults.
:mod:`liccs.config` reads, checks and overrides them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal


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
    executor: Literal["serial", "ray"] = "serial"  # where the attack tasks run (liccs.core.executor)
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
    # "auto" chooses among the engines of these precisions; a reduced one (bf16, int8) wins a stage only within
    # auto_rd_budget, the relative rate-distortion cost it may add (liccs.profiling.choose)
    auto_precisions: list[str] = _cv(["fp32"])
    auto_rd_budget: float = 0.01
    codecs: list[str] = _cv([])  # the codecs of models.codecs to export and deploy; [] = every one


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
class PaperASection:
    """Paper A's stage (``liccs.papers.a.stage``): the eps × steps sweep over one codec ladder, the quality
    transfer matrix, the lineage control, the classifier alone, and the saliency score against every k-set.

    ``arch``: the ladder swept and sampled (a codec architecture of [models]); ``lineage_archs``: ladders of the
    same architecture whose qualities share no weights, each one replicate (a seed) of the lineage control ([]:
    none); the other codecs of [models] are the cross-architecture targets. ``eps`` are swept at ``steps[0]``;
    ``focus_eps`` (``"steepest"``: the eps whose off-diagonal ASR falls fastest with |Δq| at ``steps[0]``, or a
    number) also gets ``steps[1:]`` and hosts the lineage, classifier-alone and sampling experiments; the sweep that
    chooses it runs on ``focus_images`` images disjoint from the run's and the sampling's (0: on the run's images,
    which then both choose the focus and test the claims).
    ``candidates``: the qualities the ensembles are drawn from (empty: the whole ladder); every k-set of them is
    crafted on ``images`` held-out images. ``score``/``interpolation``: the primary saliency score (every variant is
    reported); ``far_dq``: the neighbour claim's far cells (|Δq| ≥ far_dq); ``sesoi_*``: each claim's smallest
    effect of interest, ``alpha`` (Holm). ``units``: more ladders (other architectures, or seeds of one) on which
    the saliency selection is repeated, each with its own candidates and common targets; the chosen set's
    percentile per unit is tested against the median set (``sesoi_percentile``) across ``arch`` and ``units``.
    ``deployed_engines``: engines on which the focus setting's ladder cells are replayed, each with two more claims
    (the neighbour contrast there; its ASR non-inferior to PyTorch's within ``sesoi_deployed``).
    """

    enabled: bool = False
    arch: str = ""
    lineage_archs: list[str] = _cv([])
    eps: list[float] = _cv([1 / 255, 2 / 255, 3 / 255])
    steps: list[int] = _cv([10, 30])
    focus_eps: float | str = "steepest"
    focus_images: int = 64
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
    units: list[str] = _cv([])
    sesoi_percentile: float = 0.1
    deployed_engines: list[str] = _cv([])
    sesoi_deployed: float = 0.05


@dataclass
class PaperBSection:
    """Paper B (:mod:`liccs.papers.b.stage`): attacks, the random K-way defense (``k``; the fixed one at ``kway_k``),
    controls, adaptive attacks at ``focus_eps``, and ``claims`` (name → smallest effect of interest).

    ``method``: the gradient attack of every PGD-style row (``pgd`` or ``apgd``); ``claim_objective``: the
    distortion objective the claims and the adaptive attacks use; ``adaptive_steps``: the adaptive attacks' steps
    (0: ``steps``); ``tau``: the selection-aware attack's temperature(s), one attack per value on the claims'
    objective (the rate's adaptive attack is EoT alone); ``focus_k``: the K the claims, the adaptive attacks and the
    oracles use (every K of ``k`` is evaluated on every image set); ``deployed_engines``: engines of
    ``export.engines`` on whose deployed codecs the defense and the attacks are replayed (``[]``: none;
    :mod:`liccs.papers.b.deployed`)."""

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
    tau: list[float] = _cv([0.02])
    method: Literal["pgd", "apgd"] = "pgd"
    adaptive_steps: int = 0
    claim_objective: Literal["distortion", "distortion-clean", "distortion-recon"] = "distortion"
    focus_k: int = 0  # the random defense's K of the claims, the adaptive attacks and the oracles (0: the largest)
    claims: dict[str, float] = field(default_factory=dict)
    alpha: float = 0.05
    deployed_engines: list[str] = _cv([])  # engines of export.engines to replay on ([]: PyTorch only)


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
class RobustnessSection:
    """The attack evaluation's own checks on one ``target`` (a codec of [models], or the classifier; "" : the
    first codec), white-box on the PyTorch model, over the first ``images`` images at [attack]'s eps and norm.

    ``standard``: the standard evaluation (per image the worst case over APGD-CE, APGD-T toward the
    ``target_classes`` top classes, and Square with ``queries``; Croce & Hein 2020) beside the run's attack on the
    same images, with the attack that found each success. ``sanity``: the run's attack at ``sanity_eps`` (multiples
    of attack.eps, step size scaled alike), at ``sanity_steps``, and at an unbounded eps (Carlini et al. 2019); a
    failed check is named at the top of the report."""

    enabled: bool = False
    target: str = ""
    images: int = 16
    standard: bool = True
    restarts: int = 1
    target_classes: int = 3
    queries: int = 100
    sanity: bool = True
    sanity_eps: list[float] = _cv([0.5, 1.0, 2.0])
    sanity_steps: list[int] = _cv([2, 5, 10])


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
    paper_a: PaperASection = field(default_factory=PaperASection)
    paper_b: PaperBSection = field(default_factory=PaperBSection)
    transfer: TransferSection = field(default_factory=TransferSection)
    robustness: RobustnessSection = field(default_factory=RobustnessSection)
    report: ReportSection = field(default_factory=ReportSection)
    quick: dict[str, Any] = field(default_factory=dict)
    #: the sections of stages outside liccs's own (:func:`liccs.config.register_section`), by name
    extensions: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> Any:
        """The section ``name``: one of the fields above, or a registered extension's (its defaults when the
        config does not set it)."""
        if name in _BUILTIN and name not in ("quick", "extensions"):
            return getattr(self, name)
        if name in self.extensions:
            return self.extensions[name]
        if name in EXTENSION_SECTIONS:
            return EXTENSION_SECTIONS[name]()
        raise KeyError(f"no config section {name!r}; sections: {', '.join([*_BUILTIN, *EXTENSION_SECTIONS])}")

    def to_dict(self) -> dict[str, Any]:
        """Every section and key as nested dicts."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)


#: The built-in sections' names (the fields of :class:`RunConfig`).
_BUILTIN = [f.name for f in dataclasses.fields(RunConfig)]

#: The sections of stages outside liccs's own, by name: a dataclass each, with ``enabled`` where it turns a stage
#: on (:func:`liccs.config.register_section`).
EXTENSION_SECTIONS: dict[str, type] = {}
