"""``liccs compare RUN_A RUN_B [...]``: report folders side by side, what users of trtexec and Polygraphy do by hand.

1. **Manifests first**: every key whose value differs between the runs (package versions, device, commit, config),
   flattened to dotted keys.
2. **Every table the runs share**, aligned on its key columns (the text columns: engine, codec, stage, source,
   target, variant, ...), the first run as the baseline:
   - timings (``p50_ms``): the ratio to the baseline, flagged when the change is larger than either run's own spread
     (``p90_ms − min_ms`` of that row);
   - every other number (ASR, accuracy, parity errors, bpp, ...): the difference to the baseline, flagged when it
     is not 0 (exact: the same code on the same data gives the same numbers); other times (columns named with a
     part ``s``, ``ms``, ``seconds``, ``overhead`` or ``speedup``, e.g. ``encode_s_plain``) are not compared;
   - rows that only some runs have are listed as such.

Markdown to stdout; with ``out``, also ``compare.md`` and ``compare.html`` (the report's page style).

3. **A regression view** (:mod:`liccs.jobs.regression`): per stage × engine of the ``latency`` table (or
   ``timing_table``), each run's median over the baseline's, flagged outside both runs' own spread; a table, and with
   ``out`` a figure (one bar per stage × engine, a line at 1, flagged bars hatched).

4. **A reproduction gate** (:func:`gate`, ``liccs compare --fail-on verdicts|results|any``, exit 1), the way to check a
   regenerated report against a committed one. ``verdicts``: a claim's verdict changed, or a claim exists in one run
   only. ``results``: that, or a result row exists in one run only, or a claim's effect lies outside the other run's
   95% CI in both directions. ``any``: that, or any result cell differs. Timing tables (``p50_ms``: latency, sweep,
   growth, dominant stage, operator profiles) stay informational: they never fail the gate. ``fail_on_slower``
   (``--fail-on-slower RATIO``) is the one timing gate, asked for on its own: a flagged stage at least ``RATIO``
   times slower than the baseline.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from liccs import papers
from liccs.core.errors import InputError
from liccs.jobs.regression import TIMING_TABLE, regression_view, shown, slower_than
from liccs.report import Report
from liccs.report.figures_compare import stage_ratio_figure
from liccs.report.plots import to_png
from liccs.report.tables import to_markdown
from liccs.stage import STAGES

#: Timing columns: compared as ratios against each run's spread, not as exact numbers.
TIMED = ("p50_ms",)
#: Columns that describe how a run went, not what it found (not compared).
IGNORED = {"seconds", "duration_s", "n", "mean_ms", "std_ms", "min_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms",
           "images_per_s", "megapixels_per_s", "peak_rss_mib", "share", "achieved_gflops", "fraction_of_ceiling",
           "ceiling_gflops", "sum_p50_ms", "end_to_end_p50_ms", "a", "b", "r2", "path", "file", "key", "cached",
           "status", "summary", "dominant_stage", "fallback_reason", "reason", "notes", "exporter", "error", "why",
           "files", "trace", "artifact", "missing", "export_status"}
#: Text columns that are results (compared exactly), not keys that identify a row.
RESULT_TEXT = {"verdict", "test", "chosen", "nonmember_best_set", "other_arch_best_set", "failures"}
#: Tables that only describe timings: shown, never a reason for the gate to fail.
INFORMATIONAL = {"latency", "sweep", "growth", "dominant", "operators", "operator_coverage"}
GATES = ("verdicts", "results", "any")
#: The caption of the regression view.
REGRESSION_NOTE = ("ratio = p50 / the baseline's p50 per stage × engine; flagged slower (faster) when above (below) "
                   "both runs' own spread band_low … band_high (p10 or min, and p90, over each run's p50). "
                   "Informational: it fails no --fail-on gate.")


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def manifest_diff(runs: Sequence[Path]) -> pd.DataFrame:
    """One row per manifest key whose value differs between ``runs`` (the run's own timings left out)."""
    skip = ("seconds", "executor", "report", "created")
    flats = [_flat({k: v for k, v in _read_manifest(r).items() if k not in skip}) for r in runs]
    keys = sorted(set().union(*flats))
    rows = [{"key": k, **{r.name: f.get(k, "—") for r, f in zip(runs, flats, strict=True)}} for k in keys
            if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1]
    return pd.DataFrame(rows)


#: Name parts of columns that measure time (``encode_s_plain``, ``build_ms``, ``encode_overhead``): how a run went on
#: this machine, not what it found; not compared (``p50_ms`` is, as a ratio against the runs' spread).
TIME_PARTS = {"s", "ms", "seconds", "overhead", "speedup"}
#: Name parts of artifact sizes (``onnx_fp32_mib``): an exported file embeds names that differ between exports of
#: the same weights, so its size varies by bytes; not a finding.
SIZE_PARTS = {"mib"}


@functools.cache
def declared_timing() -> dict[str, frozenset[str]]:
    """Each registered table's declared timing columns (:attr:`liccs.stage.TableSpec.timing`), every stage and
    paper driver loaded."""
    import liccs.jobs.run  # noqa: F401  (registers the generic stages)

    papers.load()
    return {t.name: frozenset(t.timing) for s in STAGES for t in STAGES.get(s).tables if t.timing}


def _ignored(col: str, table: str = "") -> bool:
    parts = set(str(col).split("_"))
    return (col in IGNORED or col in declared_timing().get(table, ())
            or (col not in TIMED and bool((TIME_PARTS | SIZE_PARTS) & parts)))


def _keys(df: pd.DataFrame, table: str = "") -> list[str]:
    return [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c]) and not _ignored(c, table)
            and c not in RESULT_TEXT]


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        raise InputError(f"{path}: not a readable table ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def _read_manifest(run: Path) -> dict[str, Any]:
    path = run / "manifest.json"
    if not path.is_file():
        raise InputError(f"{run} is not a liccs report folder (no manifest.json)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise InputError(f"{path}: not a readable manifest ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a readable manifest (a JSON object was expected)")
    return data


def compare_table(name: str, frames: Sequence[pd.DataFrame], labels: Sequence[str]) -> pd.DataFrame:
    """Every compared cell of one table across runs: key columns, column, values per run, change, flagged."""
    keys = [k for k in _keys(frames[0], name) if all(k in f.columns for f in frames)]
    numeric = [c for c in frames[0].columns if c not in keys and not _ignored(c, name) and all(c in f for f in frames)
               and (all(pd.api.types.is_numeric_dtype(f[c]) for f in frames) or c in RESULT_TEXT)]
    indexed = [f.assign(_n=f.groupby(keys, dropna=False).cumcount() if keys else range(len(f)))
               .set_index([*keys, "_n"]) for f in frames]
    rows = []
    for idx in sorted(set().union(*(set(f.index) for f in indexed)), key=str):
        where = dict(zip([*keys, "_n"], idx if isinstance(idx, tuple) else (idx,), strict=True))
        where.pop("_n")
        present = [idx in f.index for f in indexed]
        if not all(present):
            rows.append({"table": name, **where, "column": "(row)", "flag": "only in "
                         + ", ".join(lab for lab, p in zip(labels, present, strict=True) if p)})
            continue
        for col in numeric:
            vals = [f.loc[idx, col] for f in indexed]
            vals = [v.iloc[0] if isinstance(v, pd.Series) else v for v in vals]
            base = vals[0]
            if col in TIMED:
                spread = [f.loc[idx, "p90_ms"] - f.loc[idx, "min_ms"] if {"p90_ms", "min_ms"} <= set(f.columns)
                          else 0.0 for f in indexed]
                moved = [abs(v - base) > max(spread[0], spread[i]) for i, v in enumerate(vals)]
                change = ", ".join(f"×{v / base:.3g}" if base else "—" for v in vals[1:])
            else:
                same = [(pd.isna(v) and pd.isna(base)) or v == base for v in vals]
                if col in RESULT_TEXT:
                    vals = [str(v) for v in vals]
                moved = [not s for s in same]
                change = ", ".join("0" if s else (f"{v - base:+.4g}" if isinstance(v, int | float) and
                                                  not (isinstance(v, float) and math.isnan(v)) else "≠")
                                   for s, v in zip(same[1:], vals[1:], strict=True))
            if col == "effect" and {"ci_low", "ci_high"} <= set(frames[0].columns):
                cis = [(f.loc[idx, "ci_low"], f.loc[idx, "ci_high"]) for f in indexed]
                cis = [tuple(c.iloc[0] if isinstance(c, pd.Series) else c for c in ci) for ci in cis]
                if any(_outside(vals[0], cis[i]) and _outside(v, cis[0]) for i, v in enumerate(vals)):
                    rows.append({"table": name, **where, "column": "effect vs 95% CI",
                                 **dict(zip(labels, [f"{v:.4g} [{lo:.4g}, {hi:.4g}]" for v, (lo, hi) in
                                                     zip(vals, cis, strict=True)], strict=True)),
                                 "change": "outside each other's CI", "flag": "OUTSIDE CI"})
            if any(moved) or col in TIMED:
                rows.append({"table": name, **where, "column": col, **dict(zip(labels, vals, strict=True)),
                             "change": change, "flag": "CHANGED" if any(moved) else ""})
    df = pd.DataFrame(rows)
    constant = [k for k in keys if k in df.columns and df[k].nunique(dropna=False) <= 1 and len(df) > 1]
    return df.drop(columns=constant)  # key columns with one value say nothing in the comparison


def _outside(value: Any, ci: tuple[Any, Any]) -> bool:
    lo, hi = ci
    return not any(pd.isna(x) for x in (value, lo, hi)) and not lo <= value <= hi


def gate(flagged: pd.DataFrame, claims: set[str], fail_on: str) -> pd.DataFrame:
    """The flagged cells that fail the reproduction gate ``fail_on`` (:data:`GATES`; see the module's docstring);
    ``claims``: the tables that hold verdicts."""
    if fail_on not in GATES:
        raise InputError(f"--fail-on {fail_on!r} is not a gate; valid: {', '.join(GATES)}")
    if flagged.empty:
        return flagged
    kind = flagged["flag"].astype(str)
    row = kind.str.startswith("only in")
    verdict = (flagged["column"] == "verdict") | (row & flagged["table"].isin(claims))
    results = verdict | ((row | (kind == "OUTSIDE CI")) & ~flagged["table"].isin(INFORMATIONAL))
    every = results | ((kind == "CHANGED") & ~flagged["table"].isin(INFORMATIONAL) & (flagged["column"] != "p50_ms"))
    return flagged[{"verdicts": verdict, "results": results, "any": every}[fail_on]]


def _regression(paths: Sequence[Path], labels: Sequence[str], table: str | None) -> tuple[pd.DataFrame, str]:
    """The regression view of ``table`` (default :data:`TIMING_TABLE`; a named table that is missing or is not a
    stage timing table raises :class:`InputError`, the default one is only noted)."""
    name = table or TIMING_TABLE
    frames = [_read_table(p / "tables" / f"{name}.csv") if (p / "tables" / f"{name}.csv").is_file() else None
              for p in paths]
    view, why = regression_view(frames, labels, name)
    if why and table:
        timed = sorted({t.stem for p in paths for t in (p / "tables").glob("*.csv")
                        if "p50_ms" in t.read_text(errors="replace").partition("\n")[0].split(",")})
        raise InputError(f"--timing-table {table}: {why}; tables with p50_ms: {', '.join(timed) or 'none'}")
    return view, why


def compare_runs(runs: Sequence[str | Path], out: str | Path | None = None, fail_on: str | None = None,
                 timing_table: str | None = None, fail_on_slower: float | None = None) -> dict[str, Any]:
    """Compare report folders (the first is the baseline); returns {"manifest", "tables", "flagged", "markdown",
    "failed", "regression", "slower"} (``failed``: the cells that fail the gate ``fail_on``, when one is given;
    ``regression``: the view of :mod:`liccs.jobs.regression` on ``timing_table``; ``slower``: its rows that fail
    ``fail_on_slower``, when given)."""
    paths = [Path(r) for r in runs]
    if len(paths) < 2:
        raise InputError("compare needs two or more report folders")
    labels = [p.name if [q.name for q in paths].count(p.name) == 1 else str(p) for p in paths]
    man = manifest_diff(paths)
    shared = sorted(set.intersection(*({t.stem for t in (p / "tables").glob("*.csv")} for p in paths)))
    if fail_on is not None and fail_on not in GATES:
        raise InputError(f"--fail-on {fail_on!r} is not a gate; valid: {', '.join(GATES)}")
    if fail_on_slower is not None and not (math.isfinite(fail_on_slower) and fail_on_slower >= 1):
        raise InputError(f"--fail-on-slower {fail_on_slower}: a ratio of at least 1 was expected (e.g. 1.5)")
    frames = {n: [_read_table(p / "tables" / f"{n}.csv") for p in paths] for n in shared}
    view, why = _regression(paths, labels, timing_table)
    slower = slower_than(view, fail_on_slower) if fail_on_slower is not None else None
    tables = {n: compare_table(n, fs, labels) for n, fs in frames.items()}
    tables = {n: t for n, t in tables.items() if not t.empty}
    flagged = pd.concat([t[t["flag"] != ""] for t in tables.values()], ignore_index=True) if tables else pd.DataFrame()
    every_table = set().union(*({t.stem for t in (p / "tables").glob("*.csv")} for p in paths))
    only = [{"table": n, "column": "(table)", "flag": "only in " + ", ".join(
        lab for lab, p in zip(labels, paths, strict=True) if (p / "tables" / f"{n}.csv").is_file())}
        for n in sorted(every_table - set(shared))]
    flagged = pd.concat([flagged, pd.DataFrame(only)], ignore_index=True) if only else flagged
    claims = {n for n, fs in frames.items() if any("verdict" in f.columns for f in fs)}
    claims |= {n for n in every_table - set(shared) for p in paths if (p / "tables" / f"{n}.csv").is_file()
               and "verdict" in _read_table(p / "tables" / f"{n}.csv").columns}
    failed = gate(flagged, claims, fail_on) if fail_on else None
    md = [f"# liccs compare: {' vs '.join(labels)} (baseline {labels[0]})", "",
          f"{len(flagged)} flagged cell(s) in {len(shared)} shared table(s).", ""]
    if failed is not None:
        md += [f"Gate --fail-on {fail_on}: " + (f"FAILED by {len(failed)} cell(s)" if len(failed) else "passed"), ""]
        md += [to_markdown(failed.dropna(axis=1, how="all")), ""] if len(failed) else []
    if slower is not None:
        md += [f"Gate --fail-on-slower {fail_on_slower:g}: " + (f"FAILED by {len(slower)} stage(s)" if len(slower)
                                                                 else "passed"), ""]
    md += ["## Manifests: what differs", "", to_markdown(man) if not man.empty else "nothing", ""]
    name = timing_table or TIMING_TABLE
    md += [f"## Regression view: {name} p50 against {labels[0]}", "",
           f"skipped: {why}" if why else REGRESSION_NOTE + "\n\n" + to_markdown(shown(view)), ""]
    for n, t in tables.items():
        md += [f"## {n}", "", to_markdown(t), ""]
    text = "\n".join(md)
    if out is not None:
        rep = Report(f"liccs compare: {' vs '.join(labels)}", notes=[f"baseline: {labels[0]}",
                                                                    f"{len(flagged)} flagged cell(s)"])
        if not man.empty:
            rep.add_table("manifest_diff", man, "Manifest keys whose values differ.")
        for n, t in tables.items():
            rep.add_table(f"compare_{n}", t, f"{n}: timings as ratios (flagged beyond each run's spread), other "
                          "numbers as differences (flagged when not 0).")
        if not view.empty:
            rep.add_table(f"regression_{name}", view, REGRESSION_NOTE)
            if view["ratio"].notna().any():
                rep.add_figure(f"Regression view ({name})", to_png(stage_ratio_figure(view, labels[0])),
                               REGRESSION_NOTE)
        else:
            rep.add_note(f"regression view: skipped: {why}")
        rep.write(out, compared=[str(p) for p in paths])
    return {"manifest": man, "tables": tables, "flagged": flagged, "markdown": text, "failed": failed,
            "regression": view, "slower": slower}

