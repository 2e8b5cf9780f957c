"""``top_operators`` and ``liccs reports operators``: a stage's slowest operators per engine from a run's table."""

from __future__ import annotations

import math

import pandas as pd

from liccs.cli import main
from liccs.profiling.op_tables import top_operators


def _operators() -> pd.DataFrame:
    rows = []
    for engine, ceiling in (("torch", 50.0), ("ort-cpu-int8", None)):
        for stage in ("g_a", "g_s"):
            for i, ms in enumerate((1.0, 6.0, 3.0)):
                gflops = 10.0 * (i + 1)
                rows.append({"engine": engine, "codec": "mini@q1", "stage": stage, "batch_size": 1, "height": 64,
                             "width": 64, "op_type": "Conv", "node": f"{stage}_conv{i}", "calls": 5,
                             "ms_per_run": ms, "share": ms / 12.0, "precision": "fp32", "gflop": gflops * ms / 1e3,
                             "achieved_gflops": gflops,
                             "fraction_of_ceiling": gflops / ceiling if ceiling else float("nan")})
    return pd.DataFrame(rows)


def test_the_slowest_operators_of_the_stage_per_engine_with_their_shares():
    top = top_operators(_operators(), "g_s", top=2)
    assert list(top["engine"]) == ["torch", "torch", "ort-cpu-int8", "ort-cpu-int8"]
    assert list(top["node"]) == ["g_s_conv1", "g_s_conv2"] * 2  # slowest first, g_a's left out
    assert list(top["of_ops"]) == [0.6, 0.3] * 2  # of the stage's operator time (10 ms per run)
    assert top.loc[0, "share"] == 0.5 and top.loc[0, "fraction_of_ceiling"] == 0.4
    assert math.isnan(top.loc[2, "fraction_of_ceiling"])  # no ceiling for that precision: left empty


def test_reports_operators_prints_the_table_and_names_a_missing_stage(tmp_path, capsys):
    (tmp_path / "tables").mkdir()
    _operators().to_csv(tmp_path / "tables" / "operators.csv", index=False)
    assert main(["reports", "operators", str(tmp_path), "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| engine | op_type | node |") and out.count("g_s_conv1") == 2 and "codec" not in out
    assert main(["reports", "operators", str(tmp_path), "--stage", "h_s"]) == 2
    assert "no operator of stage 'h_s' (the table profiles: g_a, g_s)" in capsys.readouterr().err
    assert main(["reports", "operators", str(tmp_path / "nowhere")]) == 2
    assert "no operator table" in capsys.readouterr().err
