"""Paper B's stage (liccs.papers.b.stage): the quick variant end to end writes every table and report file (the
random defense, its oracle, the controls, the adaptive attacks, one claims row per declared claim, the replay on the
deployed codec), one scoring gives every K's choice exactly as KWayDefense.encode, BD-rate on known cases, the
deployed defense chooses as PyTorch's and its streams decode exactly on a second fp32 engine, and bad [paper_b] keys
are refused naming the key."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from liccs.cli import main
from liccs.config import ConfigError, load_config
from liccs.papers.b import stage as paper_b
from liccs.papers.b.tables import bd_rate

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "liccs" / "configs" / "paper-b.toml"
#: The quick variant, cut to fit the test's time on a fresh cache: one ladder, random weights (no training),
#: two fp32 engines (the replay on ort-cpu, its defended streams decoded on torch), two eps, one attacked codec. The
#: quick variant itself (both ladders, trained tiny models, the int8 engines) runs with `liccs run paper-b --quick`.
FAST = ['models.codecs=["mini-tiny-bmshj2018-hyperprior@q1", "mini-tiny-bmshj2018-hyperprior@q6"]',
        'export.engines=["torch", "ort-cpu"]', 'paper_b.deployed_engines=["ort-cpu"]', 'models.weights="random"',
        "run.threads=1", "data.images=3", 'paper_b.eps=["2/255", "4/255"]',
        'paper_b.attack_codecs=["mini-tiny-bmshj2018-hyperprior@q6"]',
        'export.codecs=["mini-tiny-bmshj2018-hyperprior@q6"]']


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    out = tmp_path_factory.mktemp("paper-b") / "quick"
    args = ["run", str(CONFIG), "--quick", "--no-progress", "--out", str(out)]
    for o in FAST:
        args += ["--set", o]
    assert main(args) == 0
    return out


def test_quick_run_writes_every_table_and_report_file(quick: Path) -> None:
    for f in ("manifest.json", "report.md", "report.html"):
        assert (quick / f).stat().st_size > 0, f
    for spec in paper_b.TABLES:
        if spec.name == "paper_b_replication":  # only with a model attacked under two seeds: not in FAST
            assert not (quick / "tables" / f"{spec.name}.csv").exists()
            continue
        df = pd.read_csv(quick / "tables" / f"{spec.name}.csv")
        assert len(df), spec.name
        assert set(spec.columns or []) <= set(df.columns), spec.name
    md = (quick / "report.md").read_text()
    assert "Paper B pgd on distortion-clean" in md and "Paper B claim defense-raises-psnr" in md
    assert "Paper B share of the damage recovered" in md
    man = json.loads((quick / "manifest.json").read_text())
    assert man["config"]["paper_b"]["enabled"] and not man["config"]["attack"]["enabled"]
    images = pd.read_csv(quick / "tables" / "paper_b_images.csv")
    assert set(images["attack"]) == {"none", "pgd", "noise", "eot", "select-0.005", "select-0.05"}
    assert set(images["defense"]) == {"none", "random", "oracle", "oracle-rd", "kway"}
    assert set(images["objective"]) >= {"distortion", "distortion-clean", "rate"}
    assert set(images[images["objective"] == "distortion-clean"]["steps"]) == {2, 3, 4}  # ladder + adaptive steps
    assert set(images[images["attack"] == "eot"]["objective"]) == {"distortion-clean", "rate"}
    assert set(images[images["attack"].str.startswith("select")]["objective"]) == {"distortion-clean"}
    assert set(images[(images["attack"] == "pgd") & (images["defense"] == "random")]["k"]) == {2, 4}
    assert images["bpp"].gt(0).all() and images["psnr_clean"].between(5, 100).all()
    claims = pd.read_csv(quick / "tables" / "paper_b_claims.csv")
    declared = list(load_config(CONFIG).paper_b.claims)
    assert list(claims["claim"].str.split(" ").str[0]) == declared  # one attacked codec: one row per claim
    assert set(claims["codec"]) == {"mini-tiny-bmshj2018-hyperprior@q6"}
    check = pd.read_csv(quick / "tables" / "paper_b_adaptive_check.csv")
    assert set(check["attack"]) == {"eot", "select-0.005", "select-0.05"} and check["flagged"].isin([True, False]).all()
    assert (quick / "paper-b" / "adversarial").is_dir()


def test_oracle_never_below_the_defense_and_identity_rows(quick: Path) -> None:
    images = pd.read_csv(quick / "tables" / "paper_b_images.csv")
    keys = ["codec", "attack", "objective", "eps_255", "steps", "image"]
    att = images[images["attack"] != "none"]
    m = att[att["defense"] == "oracle"].merge(att[(att["defense"] == "random")], on=[*keys, "k"], suffixes=("_o", "_r"))
    assert len(m) and (m["psnr_clean_o"] >= m["psnr_clean_r"] - 1e-9).all()
    plain = images[images["defense"] == "none"]
    assert (plain["chosen"] == "identity").all()
    clean = images[(images["attack"] == "none") & (images["defense"] == "none")]
    assert (clean["psnr_recon"] == math.inf).all()  # the plain clean reconstruction is the reference itself


def test_deployed_defense_chooses_as_pytorch_and_decodes_exactly_on_a_second_fp32_engine(quick: Path) -> None:
    """Issue 31, item 7: the random defense around the deployed ort-cpu codec, with PyTorch's request seeds, picks
    PyTorch's candidate on most images; its defended streams decode on torch (a second fp32 engine) on the encoder's
    entropy tables (the checksums: the latent symbols decode bit-exactly), the image within float noise."""
    dep = pd.read_csv(quick / "tables" / "paper_b_deployed_images.csv")
    assert set(dep["engine"]) == {"ort-cpu"} and set(dep["codec"]) == {"mini-tiny-bmshj2018-hyperprior@q6"}
    sets = set(zip(dep["attack"], dep["objective"]))
    assert {("none", "none"), ("pgd", "distortion-clean"), ("pgd", "rate")} < sets  # + the strongest adaptive one
    assert len(sets) == 4 and any(a == "eot" or a.startswith("select") for a, _ in sets)
    rnd = dep[dep["defense"] == "random"]
    assert len(rnd) == 4 * 3 and (rnd["k"] == 4).all() and (rnd["header_bits"] == 5).all()
    assert rnd["same_choice"].mean() >= 0.75, rnd[["attack", "image", "chosen", "chosen_torch"]]
    assert (rnd["chosen"] == rnd["chosen_torch"]).equals(rnd["same_choice"])
    assert dep["bytes"].gt(0).all() and dep["encode_s"].gt(0).all() and dep["decode_s"].gt(0).all()
    summary = pd.read_csv(quick / "tables" / "paper_b_deployed.csv")
    assert (summary[summary["defense"] == "random"]["encode_x"] > 1).all()  # K candidates encoded and decoded
    assert (summary[summary["attack"] == "none"]["bytes_x"] == 1).all()
    cross = pd.read_csv(quick / "tables" / "paper_b_deployed_cross.csv").set_index(["encoder", "decoder"])
    assert set(cross.index) == {("ort-cpu", "torch"), ("ort-cpu", "compressai"), ("compressai", "ort-cpu")}
    second = cross.loc[("ort-cpu", "torch")]
    assert second["images"] == 12 and second["tables_match"] == 1.0 and second["psnr_min"] > 100
    assert cross["psnr_min"].gt(100).all() and cross["max_abs"].lt(1e-4).all()
    md = (quick / "report.md").read_text()
    assert "Paper B deployed, mini-tiny-bmshj2018-hyperprior@q6 on ort-cpu" in md
    assert "Paper B rate attack as denial of service on the deployed ort-cpu codec" in md


def test_paper_b_on_ray_crafts_every_attack_as_a_task_and_gives_the_serial_images(quick: Path, tmp_path: Path,
                                                                                   ray_session) -> None:
    """Every (attacked codec, attack) crafted as a task on a local Ray instance: the per-image measurements equal
    the serial run's (times apart), and each task is recorded as done."""
    out = tmp_path / "ray"
    args = ["run", str(CONFIG), "--quick", "--no-progress", "--out", str(out), "--executor", "ray"]
    for o in FAST:
        args += ["--set", o]
    assert main(args) == 0
    a, b = (pd.read_csv(d / "tables" / "paper_b_images.csv") for d in (quick, out))
    timing = [c for c in a.columns if c.endswith(("_ms", "_s"))]
    pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing), check_exact=True)
    tasks = [t for t in json.loads((out / "manifest.json").read_text())["executor"]["tasks"]
             if t["stage"] == "paper-b"]
    crafted = a[~a["attack"].isin(["none", "noise"])].drop_duplicates(["codec", "attack", "objective", "eps_255",
                                                                        "steps"])
    assert len(tasks) == len(crafted) > 0  # one task per (attacked codec, crafted attack)
    assert {t["status"] for t in tasks} == {"done"}
    assert all(not t["label"].endswith("noise none") for t in tasks)  # the noise control is drawn, not crafted


def test_claims_replicate_only_where_every_training_seed_agrees() -> None:
    from liccs.papers.b.claims import TOO_CLOSE, replication_table

    base, rep, other = "mini-nat-mbt2018-mean@q4", "mini-nat-s2-mbt2018-mean@q4", "mini-nat-bmshj2018-hyperprior@q1"
    rows = [("attack-lowers-psnr", base, 1.0, "holds"), ("attack-lowers-psnr", rep, 0.8, "holds"),
            ("defense-raises-psnr", base, 0.3, "holds"), ("defense-raises-psnr", rep, 0.1, "does not hold"),
            ("attack-lowers-psnr", other, 0.2, "holds")]  # one seed only: not in the table
    claims = pd.DataFrame([{"claim": f"{n} [{c}]", "codec": c, "effect": e, "verdict": v} for n, c, e, v in rows])
    t = replication_table(claims).set_index("claim")
    assert list(t.index) == ["attack-lowers-psnr", "defense-raises-psnr"] and set(t["model"]) == {base}
    assert t.loc["attack-lowers-psnr", "replicated"] == "holds"
    assert t.loc["defense-raises-psnr", "replicated"] == TOO_CLOSE
    assert t.loc["defense-raises-psnr", "seeds"] == "0, 8"
    assert replication_table(claims[claims["codec"] != rep]).empty


def test_bd_rate_known_cases() -> None:
    rate, psnr = [0.25, 0.5, 1.0, 2.0], [30.0, 33.0, 36.0, 39.0]
    assert bd_rate(rate, psnr, rate, psnr) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(rate, psnr, [0.9 * r for r in rate], psnr) == pytest.approx(-10.0)  # 10% fewer bits everywhere
    # log2(rate) linear in PSNR (one octave per 3 dB): +1.5 dB at equal rate = half an octave fewer bits
    assert bd_rate(rate, psnr, rate, [p + 1.5 for p in psnr]) == pytest.approx((2 ** -0.5 - 1) * 100)
    assert bd_rate(rate[:2], psnr[:2], rate[:2], [p + 1.5 for p in psnr[:2]]) == pytest.approx((2 ** -0.5 - 1) * 100)
    assert math.isnan(bd_rate(rate, psnr, rate, [p + 20 for p in psnr]))  # no overlap
    assert math.isnan(bd_rate(rate[:1], psnr[:1], rate, psnr))


@pytest.mark.parametrize("override, key", [
    ('paper_b.focus_eps="3/255"', "paper_b.focus_eps"),
    ('paper_b.transforms=["hflip", "rot45"]', "paper_b.transforms"),
    ("paper_b.k=[2, 40]", "paper_b.k[1]"),
    ("paper_b.kway_k=9", "paper_b.kway_k"),
    ("paper_b.claims={bogus=1.0}", "paper_b.claims"),
    ('paper_b.attack_codecs=["mini-tiny-mbt2018-mean@q2"]', "paper_b.attack_codecs[0]"),
    ('paper_b.rate="likelihood"', "paper_b.rate"),
    ('paper_b.lmbda="auto"', "paper_b.lmbda"),
    ('paper_b.objectives=["ce"]', "paper_b.objectives[0]"),
    ("paper_b.strength_steps=[10, 10]", "paper_b.strength_steps"),
    ("paper_b.focus_k=3", "paper_b.focus_k"),
    ("paper_b.tau=0.02", "paper_b.tau"),
    ("paper_b.eps=[]", "paper_b.eps"),
    ('paper_b.deployed_engines=["ort-cpu"]', "paper_b.deployed_engines[0]"),  # not one of export.engines
    ('paper_b.deployed_engines=["torch", "torch"]', "paper_b.deployed_engines"),
    ("export.enabled=false", "paper_b.deployed_engines"),  # the config's int8 engines, with no export to build them
])
def test_bad_defense_keys_are_refused_naming_the_key(override: str, key: str) -> None:
    from liccs.jobs.run import check_names

    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        cfg = load_config(CONFIG, quick=True, overrides=[override])
        paper_b.check_config(cfg, check_names(cfg))
