"""Reports: tables → CSV/JSON/Parquet, ``report.md`` and a self-contained ``report.html`` with figures.

Renders what it is given and runs nothing; imports nothing of liccs but :mod:`liccs.core.manifest` and
:mod:`liccs.core.errors`.
"""

from liccs.report.report import Report, write_report

__all__ = ["Report", "write_report"]
