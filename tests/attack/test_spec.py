"""AttackSpec: the one place an attack is built. A run's settings map onto what each registered attack takes, the
built attack carries them, and no module of liccs builds an attack another way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from liccs.attack import ATTACKS, AttackSpec
from liccs.attack.base import load_families
from liccs.core.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


class Toy(nn.Module):
    num_classes = 10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :10]


@pytest.mark.parametrize("name", load_families().names())
def test_a_runs_settings_reach_each_attack_as_it_takes_them(name: str) -> None:
    cls = ATTACKS.get(name)
    spec = AttackSpec.from_run(name, eps=4 / 255, steps=7, step_size=8 / 255, random_start=False, norm="linf",
                               seed=3)
    iterative = not (cls.one_step or cls.score_only)
    assert (spec.steps == 7) is iterative and (spec.random_start is False) is iterative
    # the step size is capped at eps, and given only to the attacks that do not set their own
    assert spec.alpha == (4 / 255 if iterative and not cls.own_step_size else None)
    atk = spec.build(Toy())
    assert isinstance(atk, cls) and atk.threat.eps == pytest.approx(4 / 255) and atk.seed == 3
    if iterative:
        assert atk.steps == 7 and atk.random_start is False
        if not cls.own_step_size:
            assert atk.alpha == pytest.approx(4 / 255)
    assert spec.check("attack.params") is cls


def test_params_and_bad_values_are_checked_naming_the_key() -> None:
    assert AttackSpec("mifgsm", eps=4 / 255, steps=2, params={"decay": 0.5}).build(Toy()).decay == 0.5
    with pytest.raises(InputError, match=r"attack\.params\.nope: attack 'pgd' has no parameter 'nope'"):
        AttackSpec("pgd", eps=4 / 255, params={"nope": 1}).check("attack.params")
    with pytest.raises(LookupError, match="Valid attacks: apgd"):
        AttackSpec("nosuch").build(Toy())


def test_no_module_builds_an_attack_but_the_spec() -> None:
    calls = [f"{p.relative_to(ROOT)}:{i + 1}" for p in sorted((ROOT / "liccs").rglob("*.py"))
             for i, line in enumerate(p.read_text().splitlines())
             if re.search(r"\bcreate_attack\(", line) and not line.lstrip().startswith("def ")]
    assert calls == ["liccs/attack/spec.py:" + str(next(
        i + 1 for i, line in enumerate((ROOT / "liccs/attack/spec.py").read_text().splitlines())
        if "create_attack(" in line and "import" not in line))]
