"""Tables to files: CSV, JSON, Parquet (where pyarrow is installed) and Markdown text."""

from __future__ import annotations

import gzip
import importlib.util
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from liccs.core.errors import InputError
from liccs.core.fileio import atomic_write

_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def slug(name: str) -> str:
    """A file-name-safe version of ``name``."""
    s = _SLUG.sub("-", name).strip("-.")
    if not s:
        raise InputError(f"name {name!r} has no character usable in a file name")
    return s


def parquet_available() -> bool:
    """Whether pyarrow is installed, so that tables are written as Parquet too."""
    return importlib.util.find_spec("pyarrow") is not None


#: The formats a table is written in by default; ``csv.gz`` (gzip-compressed CSV, read by ``pandas.read_csv``)
#: suits a large per-item table.
FILES: tuple[str, ...] = ("csv", "json")
FORMATS: tuple[str, ...] = ("csv", "json", "csv.gz")


def check_files(name: str, files: Sequence[str]) -> None:
    """Refuse an empty or unknown list of formats for table ``name``, naming the valid ones."""
    bad = [f for f in files if f not in FORMATS]
    if not files or bad:
        raise InputError(f"table {name!r}: formats {list(files)} — each must be one of {', '.join(FORMATS)}")


def write_table(df: pd.DataFrame, folder: Path, name: str, files: Sequence[str] = FILES) -> list[Path]:
    """``name.csv``, ``name.json`` (records), ``name.csv.gz`` as ``files`` asks, and, with pyarrow,
    ``name.parquet`` under ``folder``."""
    check_files(name, files)
    folder.mkdir(parents=True, exist_ok=True)
    stem = slug(name)
    writers = {"csv": lambda p: df.to_csv(p, index=False),
               # no name and mtime 0 in the gzip header: the same table gives the same bytes
               "csv.gz": lambda p: p.write_bytes(gzip.compress(df.to_csv(index=False).encode(), mtime=0)),
               "json": lambda p: df.to_json(p, orient="records", indent=1, default_handler=str)}
    paths = [atomic_write(folder / f"{stem}.{f}", writers[f]) for f in files]
    if parquet_available():
        # object columns of mixed types (None next to str) are stored as text
        safe = df.copy()
        for col in safe.columns[safe.dtypes == np.dtype(object)]:
            safe[col] = safe[col].map(
                lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
        paths.append(atomic_write(folder / f"{stem}.parquet", lambda p: safe.to_parquet(p, index=False)))
    return paths


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, max_rows: int = 60) -> str:
    """A GitHub-flavoured Markdown table (floats to 4 significant digits; at most ``max_rows`` rows)."""
    if df.empty:
        return "*(empty table)*"
    head = df.head(max_rows)
    cols = [str(c) for c in head.columns]
    lines = ["| " + " | ".join(_cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in head.itertuples(index=False)]
    if len(df) > max_rows:
        lines.append(f"\n*({len(df) - max_rows} more rows in the CSV)*")
    return "\n".join(lines)
