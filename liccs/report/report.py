"""A run's report folder: tables, figures, ``report.md``, ``report.html`` and ``manifest.json``.

::

    rep = Report("quick-cpu", notes=["models from the offline mini zoo, not pretrained"], config=cfg_dict)
    rep.add_table("latency", latency_df)
    rep.add_table("transfer", transfer_df)
    rep.skip("trt-fp16", "needs TensorRT; not installed")
    rep.add_standard_figures()
    files = rep.write("reports/quick")

Layout of the folder: ``manifest.json``, ``report.md``, ``report.html``, ``tables/NAME.{csv,json[,parquet]}``,
``figures/NAME.png``. The report renders what it is given and runs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from liccs.core.errors import InputError
from liccs.core.fileio import atomic_write_text
from liccs.core.manifest import manifest as make_manifest
from liccs.core.manifest import write_json
from liccs.core.provenance import code_record
from liccs.report import plots
from liccs.report.html import render_html
from liccs.report.tables import FILES, check_files, parquet_available, slug, to_markdown, write_table


@dataclass
class _Table:
    name: str
    df: pd.DataFrame
    caption: str = ""
    columns: list[str] | None = None  # shown in report.md / report.html; the files keep every column
    files: tuple[str, ...] = FILES  # the formats written (tables.write_table), the first one named in the report

    @property
    def file(self) -> str:
        return f"tables/{slug(self.name)}.{self.files[0]}"

    @property
    def shown(self) -> pd.DataFrame:
        return self.df[[c for c in self.columns if c in self.df.columns]] if self.columns else self.df


@dataclass
class Report:
    """Collects tables, figures, notes and skipped items, then writes the report folder."""

    title: str
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, _Table] = field(default_factory=dict)
    figures: list[tuple[str, bytes, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add_note(self, text: str) -> None:
        """A line in the report's header (e.g. where the models came from)."""
        self.notes.append(text)

    def add_table(self, name: str, df: pd.DataFrame, caption: str = "", columns: Sequence[str] | None = None,
                  files: Sequence[str] = FILES) -> None:
        """A table written as ``files`` (:func:`~liccs.report.tables.write_table`); ``columns`` limits what the
        Markdown and HTML show."""
        if not isinstance(df, pd.DataFrame):
            raise InputError(f"table {name!r} must be a pandas DataFrame, got {type(df).__name__}")
        if slug(name) in {slug(n) for n in self.tables}:
            raise InputError(f"table {name!r} added twice")
        check_files(name, files)
        self.tables[name] = _Table(name, df, caption, list(columns) if columns else None, tuple(files))

    def add_figure(self, title: str, png: bytes, caption: str = "") -> None:
        """A PNG figure (see :mod:`liccs.report.plots`)."""
        if not png.startswith(b"\x89PNG"):
            raise InputError(f"figure {title!r} is not PNG data")
        self.figures.append((title, png, caption))

    def skip(self, name: str, reason: str) -> None:
        """Record something that could not run here (an engine, a model) and why; shown in the header."""
        self.skipped.append((name, reason))

    def add_standard_figures(self) -> list[str]:
        """Draw the usual figures from tables whose columns fit; returns the titles added.

        ASR heatmaps per variant (columns engine, source, target, asr[, variant]); rate-distortion curves
        (bpp, psnr, codec); latency bars (p50_ms, p90_ms, p99_ms, with engine/stage, at most 40 rows);
        throughput against batch size (batch_size, images_per_s, with more than one batch size).
        """
        added = []
        for t in self.tables.values():
            df, cols = t.df, set(t.df.columns)
            if df.empty:
                continue
            if {"engine", "source", "target", "asr"} <= cols:
                for variant, g in (df.groupby("variant", sort=False) if "variant" in cols else [(None, df)]):
                    title = f"ASR, source × target per engine ({t.name}{', ' + str(variant) if variant else ''})"
                    self.add_figure(title, plots.asr_heatmaps(g, title=title))
                    added.append(title)
            if {"bpp", "psnr"} <= cols and ({"codec", "arch"} & cols):
                series = "arch" if "arch" in cols else "codec"
                style = next((c for c in ("engine", "defense", "attack") if c in cols), None)
                title = f"Rate-distortion ({t.name})"
                self.add_figure(title, plots.rd_curves(df, series=series, style=style, title=title))
                added.append(title)
            varying = [c for c in ("batch_size", "height", "width") if c in cols and df[c].nunique() > 1]
            if {"p50_ms", "p90_ms", "p99_ms", "min_ms"} <= cols and ({"engine", "stage"} & cols) and len(df) <= 40:
                title = f"Latency ({t.name})"
                self.add_figure(title, plots.latency_bars(df, label=["engine", "stage", *varying],
                                                          title=f"{title}: bar p50, whiskers p90/p99, dot min"))
                added.append(title)
            if {"batch_size", "images_per_s"} <= cols and df["batch_size"].nunique() > 1:
                title = f"Throughput against batch size ({t.name})"
                panel = ["engine", *[c for c in varying if c != "batch_size"]]  # e.g. engine / height / width
                self.add_figure(title, plots.throughput_vs_batch(df, series=["stage"], panel=panel, title=title))
                added.append(title)
        return added

    def write(self, out: str | os.PathLike[str], **manifest_extra: Any) -> dict[str, Path]:
        """Write the folder; returns the written files by role (``html``, ``md``, ``manifest``,
        ``table:NAME.csv``...)."""
        out = Path(out)
        (out / "tables").mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        for t in self.tables.values():
            for p in write_table(t.df, out / "tables", t.name, t.files):
                files[f"table:{p.name}"] = p
        fig_names: list[str] = []
        if self.figures:
            (out / "figures").mkdir(exist_ok=True)
        for i, (ftitle, png, _) in enumerate(self.figures):
            p = out / "figures" / f"{i:02d}-{slug(ftitle)[:60]}.png"
            p.write_bytes(png)
            files[f"figure:{p.name}"] = p
            fig_names.append(p.name)
        man = make_manifest(self.config, code=code_record(), report={
            "title": self.title, "notes": self.notes, "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
            "tables": {n: {"rows": len(t.df), "columns": [str(c) for c in t.df.columns]}
                       for n, t in self.tables.items()},
            "figures": fig_names,
            "parquet": "written" if parquet_available() else "skipped: pyarrow is not installed",
        }, **manifest_extra)
        files["manifest"] = write_json(out / "manifest.json", man)
        files["md"] = self._write_text(out / "report.md", self._markdown(fig_names))
        tables = [(t.name, t.shown, t.caption, t.file) for t in self.tables.values()]
        page = render_html(self.title, notes=self.notes, skipped=self.skipped, figures=self.figures,
                           tables=tables, manifest=man)
        files["html"] = self._write_text(out / "report.html", page)
        return files

    @staticmethod
    def _write_text(path: Path, text: str) -> Path:
        return atomic_write_text(path, text)

    def _markdown(self, fig_names: list[str]) -> str:
        lines = [f"# {self.title}", ""]
        if self.notes:
            lines += ["**Notes**", ""] + [f"- {n}" for n in self.notes] + [""]
        if self.skipped:
            lines += ["**Skipped**", ""] + [f"- `{n}`: {r}" for n, r in self.skipped] + [""]
        for (ftitle, _, caption), name in zip(self.figures, fig_names):
            lines += [f"![{ftitle}](figures/{name})", ""] + ([f"*{caption}*", ""] if caption else [])
        for t in self.tables.values():
            lines += [f"## {t.name}", ""] + ([t.caption, ""] if t.caption else [])
            lines += [to_markdown(t.shown), "", f"Full table: `{t.file}`", ""]
        lines += ["Environment and configuration: `manifest.json`.", ""]
        return "\n".join(lines)


def write_report(out: str | os.PathLike[str], title: str, tables: Mapping[str, pd.DataFrame], *,
                 notes: Sequence[str] = (), skipped: Sequence[tuple[str, str]] = (),
                 config: Mapping[str, Any] | None = None, standard_figures: bool = True,
                 **manifest_extra: Any) -> dict[str, Path]:
    """One call: a :class:`Report` of ``tables`` with the standard figures, written to ``out``."""
    rep = Report(title, notes=list(notes), config=dict(config or {}))
    for name, df in tables.items():
        rep.add_table(name, df)
    for name, reason in skipped:
        rep.skip(name, reason)
    if standard_figures:
        rep.add_standard_figures()
    return rep.write(out, **manifest_extra)
