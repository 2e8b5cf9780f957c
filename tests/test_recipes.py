"""The extension recipes of docs/architecture.md, docs/engines.md and docs/attacks.md, followed in a module outside
liccs: a run stage with its own config section, an attack, an engine and a codec family (with a codec of it in the
zoo), registered from that module and run together by one `liccs run --quick`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from liccs.attack.base import ATTACKS
from liccs.cli import main
from liccs.config import ConfigError, load_config
from liccs.config.sections import EXTENSION_SECTIONS
from liccs.engines.base import ENGINES
from liccs.engines.coders import CODERS
from liccs.families import unregister_family
from liccs.stage import STAGES
from liccs.zoo.codecs import CODECS

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "liccs" / "configs" / "quick-cpu.toml"

EXTENSION = '''
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from compressai.models import ScaleHyperprior as CompressAIScaleHyperprior

from liccs.attack.base import register_attack
from liccs.attack.pgd import PGD
from liccs.config import register_section
from liccs.engines.arrays import graph_meta, to_torch
from liccs.engines.base import ENGINES, EngineSpec, Runner
from liccs.engines.coders import CODERS, HyperpriorCoder
from liccs.families import ScaleHyperprior, register_family
from liccs.stage import StageBase, StageResult, TableSpec, register
from liccs.zoo.codecs import CODECS, CodecEntry


@dataclass
class ToySection:
    enabled: bool = False
    label: str = "toy"


register_section("toy", ToySection)


class ToyStage(StageBase):
    name, section, order = "toy", "toy", 95
    tables = (TableSpec("toy_codecs", "A toy stage: the run's codecs and the section's label."),)

    def run(self, ctx, results):
        label = ctx.cfg.section("toy").label
        return StageResult(tables={"toy_codecs": pd.DataFrame({"codec": ctx.names.codecs, "label": label})})


register(ToyStage())


@register_attack("toy-pgd")
class ToyPGD(PGD):
    """PGD under another name (a new attack only declares what differs)."""


class ToyRunner(Runner):
    """A GraphSpec's module run eagerly: only the four backend methods."""

    def __init__(self, graph, name=None):
        super().__init__(name or "toy")
        self.graph, self.module = graph, None

    def activate_impl(self):
        self.module = self.graph.module.eval()

    def get_input_metadata_impl(self):
        return graph_meta(self.graph)

    def infer_impl(self, feed):
        with torch.no_grad():
            out = self.module(*[to_torch(feed[t.name], "cpu") for t in self.graph.inputs])
        return {n: o.float() for n, o in zip(self.graph.outputs, out if isinstance(out, tuple) else (out,))}

    def deactivate_impl(self):
        self.module = None


ENGINES.register("toy", EngineSpec("toy", "toy", "fp32", "cpu", lambda graph, name=None, **kw: ToyRunner(graph, name)))


class ToyHyperprior(CompressAIScaleHyperprior):
    """A CompressAI model class of its own (a narrow scale hyperprior)."""


class ToyFamily(ScaleHyperprior):
    """The toy model's family: what differs from the scale hyperprior is only its name."""

    name = "toy-hyperprior"
    _global = "TOY_FAMILY"


TOY_FAMILY = register_family(ToyFamily(), ToyHyperprior)
CODERS[TOY_FAMILY.name] = HyperpriorCoder()


def toy_weights(quality, metric):
    path = Path(__file__).with_name(f"toy-hp-q{quality}.pt")
    if not path.exists():
        torch.manual_seed(quality)
        model = ToyHyperprior(16, 24)
        model.update(force=True)
        torch.save(model.state_dict(), path)
    return path


CODECS.register("toy-hp", CodecEntry(arch="toy-hp", family=TOY_FAMILY, qualities=(1,),
                                     build=lambda quality: ToyHyperprior(16, 24), pretrained=toy_weights,
                                     extra={"image_size": 64, "upsample": "nearest"}))
'''


@pytest.fixture
def extension(tmp_path: Path):
    path = tmp_path / "liccs_toy_extension.py"
    path.write_text(EXTENSION)
    spec = importlib.util.spec_from_file_location("liccs_toy_extension", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)
    for registry, name in ((STAGES, "toy"), (ATTACKS, "toy-pgd"), (ENGINES, "toy"), (CODECS, "toy-hp")):
        registry._entries.pop(name, None)
    EXTENSION_SECTIONS.pop("toy", None)
    unregister_family("toy-hyperprior")
    CODERS.pop("toy-hyperprior", None)


def test_a_stage_with_its_own_section_an_attack_an_engine_and_a_family_run_from_outside_liccs(
        extension, tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "run"
    codecs = ["mini-tiny-bmshj2018-hyperprior@q1", "toy-hp@q1"]
    args = ["run", str(QUICK), "--quick", "--no-progress", "--out", str(out), "--set", "toy.enabled=true",
            "--set", f"models.codecs={codecs!r}".replace("'", '"'),
            "--set", 'toy.label="from the config"', "--set", 'attack.name="toy-pgd"',
            "--set", 'export.engines=["torch", "toy"]', "--set", 'transfer.engines=["torch", "toy"]',
            "--set", "profile.enabled=false", "--set", "robustness.enabled=false"]
    assert main(args) == 0
    toy = pd.read_csv(out / "tables" / "toy_codecs.csv")
    assert list(toy["codec"]) == codecs and set(toy["label"]) == {"from the config"}
    assert "toy-pgd" in (out / "manifest.json").read_text()
    assert "A toy stage" in (out / "report.md").read_text()
    parity = pd.read_csv(out / "tables" / "parity.csv")
    mine = parity[parity["engine"] == "toy"]
    assert len(mine) and mine["passed"].all()  # the engine computes what PyTorch computes, every graph
    transfer = pd.read_csv(out / "tables" / "transfer.csv")
    assert set(codecs) <= set(transfer.loc[transfer["engine"] == "toy", "source"])  # and the classifier
    # the family: every stage graph of its codec passes parity on every engine, and its deployed codec's
    # bitstreams decode
    family = parity[parity["model"] == "toy-hp@q1"]
    assert {"g_a", "h_a", "h_s", "g_s"} <= set(family["stage"]) and family["passed"].all()
    rd = pd.read_csv(out / "tables" / "rate_distortion.csv")
    assert (rd["codec"] == "toy-hp@q1").any() and (rd.loc[rd["codec"] == "toy-hp@q1", "bpp"] > 0).all()


def test_an_extension_section_is_checked_as_liccs_own(extension) -> None:
    with pytest.raises(ConfigError, match=r"toy\.nope.*Valid keys of \[toy\]: enabled, label"):
        load_config(QUICK, overrides=["toy.nope=1"])
    with pytest.raises(ConfigError, match=r"toy\.enabled: expected bool"):
        load_config(QUICK, overrides=['toy.enabled="yes"'])
    assert load_config(QUICK).section("toy").enabled is False  # its defaults where the config does not set it
