"""``liccs run``: a tiny end-to-end run (the default config's --quick variant, tiny mini-zoo models) writes
every report file, skips an engine this machine cannot run with its reason, and bad configs are refused
before any work, naming the key."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from liccs.cli import main
from liccs.config import ConfigError
from liccs.engines import ENGINES

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "liccs" / "configs" / "quick-cpu.toml"
MISSING = "ort-cuda"  # a GPU engine: unavailable on a CPU-only machine
ENGINES_SET = f'["torch", "ort-cpu", "{MISSING}"]'
# the quick run (and its Ray twin) also deploys the codecs with g_s split across two engines ([export.deployments])
QUICK = ["--set", f"export.engines={ENGINES_SET}", "--set", f"transfer.engines={ENGINES_SET}",
         "--set", 'export.deployments={split={g_s="torch>ort-cpu", default="ort-cpu"}}']


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    if ENGINES.get(MISSING).available:
        pytest.skip(f"{MISSING} runs on this machine; the skip test needs an unavailable engine")
    out = tmp_path_factory.mktemp("run") / "quick"
    rc = main(["run", str(DEFAULT), "--quick", "--no-progress", "--out", str(out), *QUICK])
    assert rc == 0
    return out


def test_quick_run_writes_every_report_file(quick_run: Path) -> None:
    for f in ("manifest.json", "report.md", "report.html"):
        assert (quick_run / f).stat().st_size > 0, f
    for t in ("parity", "export", "rate_distortion", "latency", "sweep", "growth", "dominant", "attacks",
              "transfer", "transfer_gap", "transfer_gap_summary", "whitebox"):
        assert (quick_run / "tables" / f"{t}.csv").is_file(), t
    man = json.loads((quick_run / "manifest.json").read_text())
    assert man["config"]["models"]["classifier"] == "mini-tiny-cifar-resnet"
    from liccs.core.manifest import git_commit

    assert man["commit"] == git_commit() and "commit_at_end" not in man  # the commit the run started from
    assert "offline mini zoo" in man["report"]["notes"][1]
    # how to reproduce it: the command, the weights and data checksums, the gate
    assert man["command"].startswith("liccs run ") and "--quick" in man["command"] and str(out := quick_run) in \
        man["command"] and man["command"].count("--out") == 1
    reproduce = man["report"]["notes"][0]
    assert reproduce.startswith("Reproduce: `liccs run ") and "liccs compare --fail-on verdicts" in reproduce
    assert man["weights"]["mini-tiny-cifar-resnet"]["sha256"][:12] in reproduce
    assert man["weights"]["mini-tiny-cifar-resnet"]["origin"] == "cache"  # tiny models are never shipped
    assert {len(man["data"][k]) for k in ("files_sha256", "pixels_sha256", "labels_sha256")} == {64}
    assert man["data"]["images"] == man["config"]["data"]["images"] and out.is_dir()
    html = (quick_run / "report.html").read_text()
    assert "offline mini zoo" in html and "data:image/png;base64," in html
    # PGD through each LICCS source and through the classifier alone, in PyTorch, cached under the run folder
    attacks = (quick_run / "tables" / "attacks.csv").read_text()
    assert "mini-tiny-cifar-resnet" in attacks and "mini-tiny-bmshj2018-hyperprior@q6" in attacks
    assert len(list((quick_run / "adversarial").glob("*.pt"))) == 3
    transfer = (quick_run / "tables" / "transfer.csv").read_text()
    assert "ort-cpu" in transfer and "uint8" in transfer and "float" in transfer
    dominant = pd.read_csv(quick_run / "tables" / "dominant.csv")  # end to end against the stages in sequence too
    assert set(dominant["engine"]) == {"torch", "ort-cpu", "split"} and (dominant["e2e_over_sequence"] > 0).all()
    stages = set(pd.read_csv(quick_run / "tables" / "latency.csv")["stage"])  # the index search is a stage too
    assert {"g_a", "h_s", "g_s", "build_indexes", "entropy_encode", "entropy_decode"} <= stages


def test_a_deployment_is_one_more_row_beside_the_engines(quick_run: Path) -> None:
    """``split`` encodes on ort-cpu's g_a, h_a and h_s (its bytes are ort-cpu's) and decodes with g_s split."""
    deployments = pd.read_csv(quick_run / "tables" / "deployments.csv")
    engine = deployments.set_index(["codec", "stage"])["engine"]
    assert set(deployments["deployment"]) == {"split"} and set(deployments["chosen"]) == {"config"}
    assert all(engine[(c, "g_s")] == "torch>ort-cpu" and engine[(c, "g_a")] == "ort-cpu"
               for c in deployments["codec"].unique())
    rd = pd.read_csv(quick_run / "tables" / "rate_distortion.csv").set_index(["engine", "codec"])
    assert (rd.loc["split", "bpp"] == rd.loc["ort-cpu", "bpp"]).all()
    assert (rd.loc["split", "psnr"] - rd.loc["torch", "psnr"]).abs().max() < 0.01
    assert "split" in set(pd.read_csv(quick_run / "tables" / "bd_rate.csv")["engine"])
    recorded = json.loads((quick_run / "manifest.json").read_text())["deployments"]  # the manifest has them too
    assert {(r["codec"], r["stage"], r["engine"]) for r in recorded} == {(c, s, e) for (c, s), e in engine.items()}


def test_operator_profiles_model_card_and_pictures(quick_run: Path) -> None:
    """Per-operator tables with one Chrome trace per engine × network stage, the model card, the engine pictures;
    the mixed deployment is left to its engines' rows, saying so."""
    from liccs.profiling.trace import check_trace

    cov = pd.read_csv(quick_run / "tables" / "operator_coverage.csv")
    ops = pd.read_csv(quick_run / "tables" / "operators.csv")
    assert set(cov["engine"]) == {"torch", "ort-cpu"} and set(cov["stage"]) == {"g_a", "h_a", "h_s", "g_s",
                                                                                "classifier"}
    assert ((cov["height"] == 64) & (cov["batch_size"] == 1)).all()  # the sweep's smallest point only
    assert (cov["flagged"] == ((cov["ops_over_stage"] - 1).abs() > 0.1)).all()
    assert (cov.loc[cov["flagged"], "missing"].str.len() > 0).all()
    for row in cov.itertuples():
        events = check_trace(json.loads((quick_run / row.trace).read_text()))
        calls = ops[(ops["engine"] == row.engine) & (ops["stage"] == row.stage)]["calls"].sum()
        assert len(events) == calls == row.calls > 0
    card = pd.read_csv(quick_run / "tables" / "model_card.csv").set_index("model")
    assert set(card.index) == {"mini-tiny-bmshj2018-hyperprior@q1", "mini-tiny-bmshj2018-hyperprior@q6",
                               "mini-tiny-cifar-resnet"}
    assert (card["gmacs_128x128"] > 0).all() and (card["onnx_fp32_mib"] > 0).all()
    assert card.loc["mini-tiny-bmshj2018-hyperprior@q1", "gmacs_128x128"] == pytest.approx(
        4 * card.loc["mini-tiny-bmshj2018-hyperprior@q1", "gmacs_64x64"])  # convolutions: linear in pixels
    assert (card["weights_sha256"].str.len() == 64).all()
    pictures = pd.read_csv(quick_run / "tables" / "pictures.csv")
    assert pictures["drawn"].all() and (pictures["max_series"] <= 8).all()
    man = json.loads((quick_run / "manifest.json").read_text())
    assert any(f.endswith("Transfer-gap-heatmap.png") for f in man["report"]["figures"])
    assert "operators:split" in {s["name"] for s in man["report"]["skipped"]}
    assert any(n.startswith("Per-operator profiles:") and "s of extra run time" in n for n in man["report"]["notes"])


def test_unavailable_engine_is_skipped_with_its_reason(quick_run: Path) -> None:
    man = json.loads((quick_run / "manifest.json").read_text())
    skipped = {s["name"]: s["reason"] for s in man["report"]["skipped"]}
    assert MISSING in skipped and "CUDA" in skipped[MISSING]
    assert MISSING in (quick_run / "report.md").read_text()
    assert MISSING not in (quick_run / "tables" / "transfer.csv").read_text()


def test_rerun_reuses_the_adversarial_images(quick_run: Path) -> None:
    from liccs.config import load_config
    from liccs.jobs.run import check_names, load_context
    from liccs.stages.attack import run_attacks

    cfg = load_config(DEFAULT, quick=True, overrides=[f'run.out="{quick_run}"'])
    ctx = load_context(cfg, check_names(cfg), progress=False)
    _, table, _ = run_attacks(ctx, quick_run, progress=False)
    assert table["cached"].all() and len(table) == 3


@pytest.mark.parametrize("override, key", [
    ("data.imagez=4", "data.imagez"),
    ('data.images="four"', "data.images"),
    ('transfer.engines=["torch", "ort-gpu"]', "transfer.engines[1]"),
    ('models.codecs=["mini-bmshj2018-hyperprior@q9"]', "models.codecs[0]"),
    ('models.classifier="resnet9000"', "models.classifier"),
    ('export.deployments={fast={g_s="ort-cpu>ov-gpu"}}', "export.deployments.fast.g_s"),
    ('profile.stages=["g_a", "g_z"]', "profile.stages[1]"),
])
def test_bad_config_is_refused_before_any_work_naming_the_key(override: str, key: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import liccs.jobs.run as run_job

    def no_work(*a: object, **k: object) -> None:
        raise AssertionError("a model or an image was loaded before the config was refused")

    monkeypatch.setattr(run_job, "load_context", no_work)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        run_job.run_config(DEFAULT, quick=True, overrides=[override], out=str(tmp_path / "x"), progress=False)
    assert not (tmp_path / "x").exists()


def test_unknown_key_in_a_config_file_is_a_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT.read_text().replace("[profile]\n", "[profile]\nmin_itres = 3\n", 1))
    assert main(["run", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "profile.min_itres" in err and "min_iters" in err


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is not installed (pip install 'liccs[distributed]')")
def test_the_ray_executor_gives_the_serial_tables(quick_run: Path, tmp_path: Path, ray_session) -> None:
    """The same run with its attack tasks on a local Ray instance: every table cell equal (timings aside)."""
    out = tmp_path / "ray"
    # no profile: its tables are timings, which differ from run to run and are not compared
    rc = main(["run", str(DEFAULT), "--quick", "--no-progress", "--out", str(out), "--executor", "ray", *QUICK,
               "--set", "profile.enabled=false"])
    assert rc == 0
    # timings differ from run to run; the operator profiles, the model card (its build seconds and profiled files)
    # and the pictures read the profile, which the Ray twin skips
    timed = {"latency", "sweep", "growth", "dominant", "operators", "operator_coverage", "model_card", "pictures"}
    compared = 0
    for f in sorted((quick_run / "tables").glob("*.csv")):
        if f.stem in timed:
            continue
        a, b = pd.read_csv(f), pd.read_csv(out / "tables" / f.name)
        drop = ["status", "path"] if f.stem == "export" else []  # artifact cache hits
        drop += [c for c in a.columns if {"s", "seconds"} & set(c.split("_"))]  # how long a step took
        a, b = a.drop(columns=drop), b.drop(columns=drop)
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=f.name)
        compared += 1
    assert compared >= 9
    man = json.loads((out / "manifest.json").read_text())
    tasks = man["executor"]["tasks"]
    per_stage = {st: sum(t["stage"] == st for t in tasks) for st in ("attack", "transfer")}
    assert man["executor"]["name"] == "ray" and {t["status"] for t in tasks} == {"done"}
    assert per_stage == {"attack": 3, "transfer": 2}  # 3 sources; torch and ort-cpu (ort-cuda cannot run here)
    assert man["executor"]["critical_path_seconds"] <= man["executor"]["work_seconds"]


def test_quick_run_with_engine_aware_sources(tmp_path: Path, shared_data: Path) -> None:
    """Sources crafted on the int8 replica and the differential ones: their parity gate, transfer rows on the real
    int8 engine and the paired summary reach the tables and the report."""
    out = tmp_path / "aware"
    engines = '["torch", "ort-cpu-int8"]'
    rc = main(["run", str(DEFAULT), "--quick", "--no-progress", "--out", str(out), "--set", "profile.enabled=false",
               "--set", f"export.engines={engines}", "--set", f"transfer.engines={engines}",
               "--set", 'attack.engine_aware=["ort-cpu-int8", "ort-cpu-int8:differential"]'])
    assert rc == 0
    parity = pd.read_csv(out / "tables" / "replica_parity.csv")
    assert len(parity) == 3 and parity["usable"].all() and (parity["top1_agreement"] >= 0.99).all()
    transfer = pd.read_csv(out / "tables" / "transfer.csv")
    aware = transfer[transfer["source"].str.contains("~ort-cpu-int8")]
    assert set(aware["engine"]) == {"torch", "ort-cpu-int8"} and aware["source"].nunique() == 6
    summary = pd.read_csv(out / "tables" / "engine_aware.csv")
    assert set(summary["measure"]) == {"gap", "recovered", "deployed-only"}
    assert {"ci_low", "ci_high", "mde", "p_holm", "verdict"} <= set(summary.columns)
    report = (out / "report.md").read_text()
    assert "~ort-cpu-int8:differential on ort-cpu-int8 (deployed-only)" in report


def test_check_validates_a_config_without_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never-written"
    assert main(["run", "quick-cpu", "--check", "--set", "attack.name=ifgsm", "--out", str(out)]) == 0
    assert "config OK: stages export" in capsys.readouterr().out and not out.exists()
    assert main(["run", "quick-cpu", "--check", "--set", "attack.name=nosuch"]) == 2
    assert "attack.name: unknown attack 'nosuch'" in capsys.readouterr().err
