"""The export report: one record per model × graph (exported, cached, failed, or not exportable, with why)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from liccs.core.manifest import write_json
from liccs.export.cache import Artifact, ArtifactCache
from liccs.export.errors import ExportError
from liccs.export.graphs import GraphSpec, classifier_graph, codec_graphs, liccs_graph
from liccs.export.onnx import OnnxFromTorch


@dataclass
class ExportRecord:
    """What happened to one graph. ``status``: exported | cached | failed | not-exportable."""

    model: str
    graph: str
    status: str
    exporter: str | None = None
    fallback_reason: str = ""
    path: str | None = None
    seconds: float = 0.0
    reason: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class ExportReport:
    """Records of an export run; :meth:`to_dict` is what ``export_report.json`` holds."""

    records: list[ExportRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Every record, and those not exported (failed or not exportable) again on their own."""
        return {"records": [asdict(r) for r in self.records],
                "not_exported": [asdict(r) for r in self.records if r.status in ("failed", "not-exportable")]}

    def table(self) -> str:
        """The records as a plain-text table: model, graph, status, exporter, note."""
        head = f"{'model':<34} {'graph':<20} {'status':<15} {'exporter':<12} note"
        rows = [head, "-" * len(head)]
        for r in self.records:
            note = r.reason or r.fallback_reason or "; ".join(r.notes)
            rows.append(f"{r.model:<34} {r.graph:<20} {r.status:<15} {r.exporter or '-':<12} {note[:90]}")
        return "\n".join(rows)


def export_graphs(graphs: Iterable[GraphSpec], report: ExportReport, cache: ArtifactCache | None = None,
                  exporter: str = "auto") -> dict[str, Artifact]:
    """Export each graph to ONNX (cached); failures go into ``report`` instead of stopping the run."""
    out: dict[str, Artifact] = {}
    for g in graphs:
        t = time.perf_counter()
        try:
            art = OnnxFromTorch(g, cache, exporter)()
        except ExportError as e:
            report.records.append(ExportRecord(g.model, g.name, "failed", reason=str(e), notes=g.notes,
                                               seconds=round(time.perf_counter() - t, 2)))
            continue
        out[g.name] = art
        report.records.append(ExportRecord(
            g.model, g.name, "cached" if art.cached else "exported", art.meta.get("exporter"),
            art.meta.get("fallback_reason", ""), str(art.path), round(time.perf_counter() - t, 2), notes=g.notes))
    return out


def export_codec(codec: nn.Module, cache: ArtifactCache | None = None, exporter: str = "auto",
                 classifier: nn.Module | None = None, stages: Iterable[str] | None = None,
                 report: ExportReport | None = None) -> tuple[dict[str, GraphSpec], dict[str, Artifact], ExportReport]:
    """Export a codec's graphs (all, or ``stages``), plus ``liccs`` and the classifier when one is given.

    Returns (graph specs, ONNX artifacts, report); what cannot be exported is in the report with the reason.
    """
    report = report if report is not None else ExportReport()
    graphs, skipped = codec_graphs(codec)
    model = getattr(codec, "liccs_name", type(codec).__name__)
    if classifier is not None:
        combined = liccs_graph(codec, classifier)
        if isinstance(combined, str):
            skipped["liccs"] = combined
        else:
            graphs["liccs"] = combined
        graphs["classifier"] = classifier_graph(classifier)
    if stages is not None:
        wanted = set(stages)
        graphs = {k: v for k, v in graphs.items() if k in wanted}
        skipped = {k: v for k, v in skipped.items() if k in wanted}
    for name, why in skipped.items():
        report.records.append(ExportRecord(model, name, "not-exportable", reason=why))
    return graphs, export_graphs(graphs.values(), report, cache, exporter), report


def write_report(report: ExportReport, path: str | Path) -> Path:
    """``export_report.json`` (atomic)."""
    return write_json(path, report.to_dict())
