"""Installed as a package (a wheel, not this checkout), the main job runs from any folder with the built-in configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_runs_the_quick_job_from_another_folder(tmp_path: Path, shared_data: Path) -> None:
    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)], check=True,
                   capture_output=True, cwd=tmp_path)
    (wheel,) = wheels.glob("liccs-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site),
                                                                         "LICCS_DATA": str(shared_data)}
    where = subprocess.run([sys.executable, "-c", "import liccs; print(liccs.__file__)"], env=env, cwd=elsewhere,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), where  # the installed package, not the checkout
    run = subprocess.run([sys.executable, "-m", "liccs.cli", "run", "quick-cpu", "--quick", "--no-progress"], env=env,
                         cwd=elsewhere, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (elsewhere / "runs" / "quick-cpu-quick" / "report.md").stat().st_size > 0  # under the current folder
    assert "FutureWarning" not in run.stderr
