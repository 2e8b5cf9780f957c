"""A report written from small hand-made tables: every file, self-contained HTML, headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from liccs.core.errors import InputError
from liccs.report import Report, write_report
from liccs.report.tables import parquet_available, to_markdown

NOTE = "models from the offline mini zoo, not pretrained <b>&</b>"


def _tables() -> dict[str, pd.DataFrame]:
    transfer = pd.DataFrame([
        {"engine": e, "source": s, "target": t, "variant": v, "asr": a}
        for e, off in (("torch", 0.0), ("ort-cpu-int8", 0.1))
        for s in ("q1", "q4") for t in ("q1", "q4") for v in ("float", "uint8")
        for a in [max(0.0, (0.9 if s == t else 0.4) - off - (0.05 if v == "uint8" else 0))]])
    latency = pd.DataFrame({"engine": ["torch", "torch", "ort-cpu"], "stage": ["g_a", "g_s", "g_a"],
                            "min_ms": [9.0, 20.0, 7.0], "p50_ms": [10.0, 22.0, 8.0], "p90_ms": [11.0, 25.0, 8.5],
                            "p99_ms": [13.0, 30.0, 9.0], "env_note": [None, "x", None]})
    rd = pd.DataFrame({"codec": ["hyperprior"] * 3 + ["mean"] * 3, "quality": [1, 4, 8] * 2,
                       "bpp": [0.1, 0.4, 1.2, 0.09, 0.35, 1.1], "psnr": [27.0, 31.0, 36.0, 27.5, 31.6, 36.4]})
    throughput = pd.DataFrame({"engine": ["torch"] * 3 + ["ort-cpu"] * 3, "batch_size": [1, 2, 4] * 2,
                               "images_per_s": [10.0, 18.0, 30.0, 12.0, 22.0, 35.0]})
    return {"transfer": transfer, "latency": latency, "rd": rd, "throughput": throughput}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("report")
    files = write_report(out, "liccs test report", _tables(), notes=[NOTE],
                         skipped=[("trt-fp16", "needs TensorRT; not installable here")], config={"run": {"name": "t"}})
    return out, files


def test_every_file_is_written(written):
    out, files = written
    for name in ("manifest.json", "report.md", "report.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    for table, df in _tables().items():
        assert pd.read_csv(out / "tables" / f"{table}.csv").shape == df.shape
        assert len(json.loads((out / "tables" / f"{table}.json").read_text())) == len(df)
        assert (out / "tables" / f"{table}.parquet").is_file() == parquet_available()
    pngs = sorted((out / "figures").glob("*.png"))
    assert len(pngs) == 5  # ASR heatmaps (float, uint8), RD, latency, throughput
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    man = json.loads((out / "manifest.json").read_text())
    assert man["config"] == {"run": {"name": "t"}} and "packages" in man and "device" in man
    assert set(man["report"]["tables"]) == set(_tables()) and man["report"]["notes"] == [NOTE]
    assert man["report"]["skipped"][0]["name"] == "trt-fp16"
    assert not list(out.rglob("*.tmp"))


def test_markdown_carries_notes_skips_figures_tables(written):
    out, _ = written
    md = (out / "report.md").read_text()
    assert NOTE in md and "trt-fp16" in md
    assert md.count("](figures/") == 5
    for table in _tables():
        assert f"## {table}" in md and f"tables/{table}.csv" in md
    assert to_markdown(pd.DataFrame({"a|b": [1.23456789]})) == "| a\\|b |\n|---|\n| 1.235 |"


def test_html_is_self_contained_and_escaped(written):
    out, _ = written
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 5
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)
    assert "<link" not in page and "@import" not in page
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in page and "<b>&</b>" not in page
    assert "trt-fp16" in page and "needs TensorRT" in page


def test_report_refuses_bad_input():
    rep = Report("x")
    rep.add_table("a", pd.DataFrame({"x": [1]}))
    with pytest.raises(InputError, match="twice"):
        rep.add_table("a", pd.DataFrame({"x": [1]}))
    with pytest.raises(InputError, match="DataFrame"):
        rep.add_table("b", [1, 2])
    with pytest.raises(InputError, match="PNG"):
        rep.add_figure("f", b"GIF89a")


# --- headless Chromium ------------------------------------------------------------------------------------
def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _open_in_chromium(page: Path, profile: Path) -> tuple[str, list[str]]:
    """(the DOM after load, console messages) of ``page`` in headless Chromium."""
    exe = _chromium()
    if exe is None:
        pytest.skip("headless Chromium not found (Debian: apt-get install chromium); HTML check not run")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]


def test_html_opens_in_headless_chromium_without_console_errors(written, tmp_path):
    out, _ = written
    dom, console = _open_in_chromium(out / "report.html", tmp_path / "profile")
    assert console == []  # the page logs nothing unless something failed
    assert 'data-figures-ok="5"' in dom  # its load handler ran and every figure decoded
    assert 'data-figures-wide="0"' in dom  # every figure fits the page's column at its own size


def test_chromium_check_catches_a_broken_figure(tmp_path):
    rep = Report("broken")
    rep.add_figure("bad", b"\x89PNG not really a png")
    rep.write(tmp_path / "r")
    dom, console = _open_in_chromium(tmp_path / "r" / "report.html", tmp_path / "profile")
    assert any("figure failed to decode: bad" in ln for ln in console), console
    assert 'data-figures-ok="0"' in dom
