"""Arguments of ``liccs attack``, ``liccs defend``, ``liccs export`` and ``liccs check`` (kept here so that
``liccs/cli.py`` stays thin): each ``add_*`` fills a subparser, each ``*_job`` turns the parsed namespace into the
API's job.

Importing this module imports neither torch nor the attacks, so building the CLI's parser stays fast;
names and ranges are checked by the API when the job runs.
"""

from __future__ import annotations

import argparse
import tomllib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from liccs.jobs.attack import AttackJob
    from liccs.jobs.defend import DefendJob


def _api_name(transform: str) -> str:
    return transform.replace("shift=", "shift:").replace(":", ",").replace("shift,", "shift:", 1) \
        if transform.startswith("shift=") else transform


ATTACK_HELP = ("a registered attack (liccs.attack.ATTACKS): fgsm | ifgsm | pgd | mifgsm | apgd | square | standard; "
               "an unknown name lists the valid ones")


def _attack_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--attack-param``; the value read as TOML (``0.5``, ``3``, ``true``), else as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} must look like KEY=VALUE, e.g. decay=0.5")
    try:
        return key.strip(), tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip(), raw.strip()


def _add_attack_param(s: argparse.ArgumentParser) -> None:
    s.add_argument("--attack-param", type=_attack_param, action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter of the attack itself (repeatable): decay=0.5 (mifgsm), restarts=3, rho=0.75 "
                        "(apgd), queries=1000, p_init=0.05 (square); an unknown one lists the attack's parameters")


def add_attack_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--codec", required=True,
                   help="ARCH@qN[,ARCH@qN...] (an ensemble), or 'none' for the classifier alone")
    s.add_argument("--classifier", required=True, help="a registered classifier, or 'none' to attack the codecs alone")
    s.add_argument("--weights", default="pretrained",
                   help="pretrained (default; mini-… models: the cache, the committed weights, or training) | random | "
                        "PATH (codecs, and classifier unless --classifier-weights)")
    s.add_argument("--classifier-weights", default=None, help="random | pretrained | PATH for the classifier")
    s.add_argument("--attack", default="pgd", help=ATTACK_HELP)
    _add_attack_param(s)
    s.add_argument("--eps", default="8/255", help="radius, a number or a fraction like 8/255")
    s.add_argument("--norm", default="linf", help="linf | l2")
    s.add_argument("--steps", type=int, default=None, help="gradient steps (default: the attack's own; FGSM is 1)")
    s.add_argument("--alpha", default=None, help="step size (default: the attack's own rule)")
    s.add_argument("--objective", default="ce",
                   help="ce | margin | dlr | distortion | distortion-clean | distortion-recon | rate | "
                        "sums like ce+10*rate")
    s.add_argument("--rounding", default="ste", help="surrogate through the quantizers: ste | noise | identity | cubic")
    s.add_argument("--reduce", default="loss", choices=("loss", "logits"), help="ensemble: average losses or logits")
    s.add_argument("--target", type=int, default=None, help="targeted attack toward this class index")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--di", type=float, default=0.0, metavar="PROB", help="input diversity probability (0: off)")
    s.add_argument("--eot", type=int, default=1, metavar="N", help="EoT draws per step (for random surrogates)")
    s.add_argument("--images", required=True,
                   help="a folder, an ImageNet-style CSV, or kodak | imagenet-samples | cifar10-test")
    s.add_argument("--limit", type=int, default=None, help="attack only the first N images")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--out", required=True, help="folder for the PNGs, adversarial.pt and attack.json")


def attack_job(a: argparse.Namespace) -> AttackJob:
    from liccs.jobs.attack import AttackJob

    return AttackJob(codec=a.codec, classifier=a.classifier, images=a.images, out=a.out, weights=a.weights,
                     classifier_weights=a.classifier_weights, attack=a.attack, eps=a.eps, norm=a.norm, steps=a.steps,
                     alpha=a.alpha, objective=a.objective, rounding=a.rounding, reduce=a.reduce, target=a.target,
                     seed=a.seed, di=a.di, eot=a.eot, limit=a.limit, batch_size=a.batch_size,
                     params=dict(a.attack_param))


def add_defend_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--codec", required=True, help="ARCH@qN")
    s.add_argument("--weights", default="pretrained", help="pretrained (default) | random | PATH")
    s.add_argument("--images", required=True, help="clean images: a folder, a CSV, or kodak | ...")
    s.add_argument("--adv", default=None, help="folder of attacked PNGs with the same stems (default: craft them here)")
    s.add_argument("--k", default="2,4", help="comma-separated K values of the K-way defense")
    s.add_argument("--lmbda", type=float, default=None,
                   help="λ of R + λ·255²·MSE (default: CompressAI's for the quality)")
    s.add_argument("--rate", default="bytes", choices=("bytes", "likelihood"))
    s.add_argument("--transforms", default=None,
                   help="pool of transforms, comma-separated: hflip,vflip,rot90,rot180,rot270,transpose,"
                        "antitranspose,shift=DY:DX (default: the 7 flips/rotations and 8 shifts of 1-2 px)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--attack", default="pgd", help=ATTACK_HELP)
    _add_attack_param(s)
    s.add_argument("--objective", default="distortion", help="distortion | distortion-clean | rate | sums")
    s.add_argument("--eps", default="4/255")
    s.add_argument("--steps", type=int, default=10)
    s.add_argument("--rounding", default="ste")
    s.add_argument("--eot", type=int, default=0, metavar="N", help="adaptive EoT attack with N draws per step (0: off)")
    s.add_argument("--limit", type=int, default=None)
    s.add_argument("--out", required=True, help="folder for defense.json")


def defend_job(a: argparse.Namespace) -> DefendJob:
    from liccs.jobs.defend import DefendJob

    extra = {} if a.transforms is None else {
        "transforms": tuple(_api_name(t.strip()) for t in a.transforms.split(",") if t.strip())}
    return DefendJob(codec=a.codec, images=a.images, out=a.out, weights=a.weights, adv=a.adv,
                     k=tuple(int(v) for v in a.k.split(",") if v.strip()), lmbda=a.lmbda, rate=a.rate,
                     seed=a.seed, attack=a.attack, objective=a.objective, eps=a.eps,
                     steps=a.steps, rounding=a.rounding, eot=a.eot, limit=a.limit, params=dict(a.attack_param),
                     **extra)


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """Codecs × engines, weights, images, output folder, exporter and parity tolerances."""
    p.add_argument("--codec", type=_csv, required=True, metavar="ARCH@qN[,...]", help="codecs at qualities")
    p.add_argument("--engine", type=_csv, default=["torch", "ort-cpu"], metavar="NAME[,...]",
                   help="engines (liccs doctor lists them; unavailable ones are reported with the reason)")
    p.add_argument("--weights", default="pretrained", help="pretrained | random | PATH (codec checkpoint)")
    p.add_argument("--images", default=None, metavar="DIR", help="image folder for parity (default: Kodak)")
    p.add_argument("--out", default="runs/export", metavar="DIR", help="artifacts/, parity.json, reports")
    p.add_argument("--classifier", default=None, help="also export the classifier and the liccs graph")
    p.add_argument("--classifier-weights", default=None, help="default: random with --weights random, else pretrained")
    p.add_argument("--exporter", default="auto", choices=("auto", "dynamo", "torchscript"),
                   help="auto: torch.onnx dynamo exporter, TorchScript where it fails")
    p.add_argument("--stages", type=_csv, default=None, metavar="NAME[,...]",
                   help="only these graphs (g_a,h_a,h_s,g_s,context_prediction,context_step,entropy_parameters,"
                        "reconstruct,liccs,classifier,codec)")
    p.add_argument("--max-abs-err", type=float, default=1e-3)
    p.add_argument("--max-rel-err", type=float, default=None)
    p.add_argument("--min-psnr-db", type=float, default=None)
    p.add_argument("--min-top1-agreement", type=float, default=0.99)
    p.add_argument("--calibration-images", type=int, default=4, help="int8 calibration images (not the parity ones)")
    p.add_argument("--no-cross-decode", action="store_true", help="skip the cross-engine decode matrix")
