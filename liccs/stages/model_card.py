"""The run's model card: per model, its parameters, MACs at the profiled resolutions, the size of every artifact
the run deployed, export and engine build times, and the weights' sha256.

MACs are the dense multiply-adds of one image (batch 1): convolutions ``C_in/groups · C_out · k_h · k_w · H_out ·
W_out``, transposed convolutions ``C_in · C_out/groups · k_h · k_w · H_in · W_in``, matmuls, counted by
:class:`torch.utils.flop_counter.FlopCounterMode` (:func:`~liccs.profiling.flops.count_flops`, 2 FLOPs per MAC)
on the modules the engines run: a codec's ``g_a``, ``h_a``, ``h_s`` and ``g_s`` once each (a compress +
decompress runs ``h_s`` twice) at the smallest profiled resolution, scaled to the others by the padded pixels
(:func:`padded_pixels`: exact for these fully convolutional networks); the classifier at its crop after the host
resize. Qualities whose parameters have the same shapes are counted once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from liccs.engines import ENGINES, Runner
from liccs.export.cache import ArtifactCache
from liccs.export.graphs import stage_feeds
from liccs.pipeline import PAD_MULTIPLE
from liccs.profiling.flops import count_flops
from liccs.stage import Context, Results, StageBase, StageResult, TableSpec, register
from liccs.zoo.classifiers import to_geometry

#: the codec's networks one image passes through (in a compress + decompress, h_s runs twice)
CODEC_NETWORKS = ("g_a", "h_a", "h_s", "g_s")
#: artifact kind of an engine's files: by backend and precision
ARTIFACT_KINDS = ("onnx_fp32", "onnx_int8", "openvino_ir", "tensorrt_plan")
MIB = 2**20


def macs(module: nn.Module | Any, *inputs: Any) -> int:
    """Multiply-adds of one call ``module(*inputs)`` (FLOPs / 2; convolutions and matmuls)."""
    return count_flops(module, *inputs) // 2


def codec_macs(codec: nn.Module, hw: tuple[int, int]) -> dict[str, int]:
    """MACs of each of the codec's networks on one ``hw`` image (their inputs as the coder makes them)."""
    x = torch.full((1, 3, *hw), 0.5)
    with torch.no_grad():
        feeds = stage_feeds(codec, x)
    return {s: macs(getattr(codec, s), *feeds[s].values()) for s in CODEC_NETWORKS if s in feeds}


def padded_pixels(hw: tuple[int, int]) -> int:
    """Pixels of an ``hw`` image padded as the codec pads it (each side to a multiple of ``PAD_MULTIPLE``): a fully
    convolutional codec's MACs are proportional to them, since every layer's output shrinks or grows by its
    stride exactly on such sizes."""
    return math.ceil(hw[0] / PAD_MULTIPLE) * PAD_MULTIPLE * math.ceil(hw[1] / PAD_MULTIPLE) * PAD_MULTIPLE


def shapes_signature(module: nn.Module) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Every parameter's name and shape: two modules with the same signature do the same MACs."""
    return tuple((n, tuple(p.shape)) for n, p in module.named_parameters())


def artifact_kind(engine: str, path: Path) -> str | None:
    """``onnx_fp32``, ``onnx_int8``, ``openvino_ir`` or ``tensorrt_plan`` for a file an engine runs."""
    spec = ENGINES.get(engine)
    if spec.backend == "tensorrt":
        return "tensorrt_plan"
    if path.suffix == ".xml":
        return "openvino_ir"
    if path.suffix == ".onnx":
        return "onnx_int8" if spec.precision == "int8" else "onnx_fp32"
    return None


def runner_files(runner: Runner | str | None) -> list[Path]:
    """The files an activated runner (or a file it ran) loaded: an OpenVINO IR's ``.bin`` with its ``.xml``; none
    for PyTorch."""
    src = runner if isinstance(runner, str) or runner is None else (getattr(runner, "path", None)
                                                                    or getattr(runner, "source", None))
    if not src or not Path(str(src)).is_file():
        return []
    path = Path(str(src))
    return [path] + ([path.with_suffix(".bin")] if path.suffix == ".xml" and path.with_suffix(".bin").is_file()
                     else [])


def artifact_sizes(files: Iterable[tuple[str, Path]]) -> dict[str, float]:
    """MiB per artifact kind from ``(engine, file)`` pairs (each file counted once)."""
    seen: dict[Path, str] = {}
    for engine, path in files:
        main = path.with_suffix(".xml") if path.suffix == ".bin" else path
        kind = artifact_kind(engine, main)
        if kind:
            seen.setdefault(path, kind)
    return {k: sum(p.stat().st_size for p, kk in seen.items() if kk == k) / MIB for k in ARTIFACT_KINDS}


def recorded_build_s(path: Path) -> float | None:
    """The build seconds the artifact cache recorded for ``path`` (TensorRT plans record ``build_s``), if any."""
    try:
        meta = json.loads(ArtifactCache.sidecar(path).read_text()).get("meta", {})
    except (OSError, ValueError, AttributeError):
        return None
    value = meta.get("build_s") if isinstance(meta, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def model_card(ctx: Context, results: Results) -> pd.DataFrame:
    """One row per model (every codec of the run, then the classifier)."""
    sides = [tuple(int(v) for v in r) for r in ctx.cfg.profile.resolutions]
    export = results.exports.export
    cov = results.tables.get("operator_coverage")
    pre = ctx.classifier.preprocess.cfg
    rows = []
    counted: dict[tuple[Any, ...], int] = {}
    smallest = min(sides, key=padded_pixels)
    models: list[tuple[str, nn.Module]] = [*ctx.codecs.items(), (ctx.cfg.models.classifier, ctx.classifier)]
    for name, module in models:
        is_clf = module is ctx.classifier
        row: dict[str, Any] = {"model": name, "kind": "classifier" if is_clf else "codec",
                               "params": sum(p.numel() for p in module.parameters())}
        key = (type(module).__name__, shapes_signature(module))  # the qualities of one shape: counted once
        if key not in counted:
            counted[key] = (macs(module, to_geometry(torch.full((1, 3, *smallest), 0.5), pre)) if is_clf
                            else sum(codec_macs(module, smallest).values()))
        for hw in sides:  # a classifier runs at its crop; a codec's MACs grow with its padded pixels, exactly
            scale = 1.0 if is_clf else padded_pixels(hw) / padded_pixels(smallest)
            row[f"gmacs_{hw[0]}x{hw[1]}"] = counted[key] * scale / 1e9
        files = [(e, f) for e, ds in results.exports.deployed.items() if e in ENGINES.names() and name in ds
                 for r in ds[name].runners.values() for f in runner_files(r)] if not is_clf else []
        if is_clf and cov is not None and "artifact" in cov.columns:  # the files the operator profiles ran
            files += [(e, f) for e, a in cov.loc[cov["stage"] == "classifier", ["engine", "artifact"]].itertuples(
                index=False) for f in runner_files(a if isinstance(a, str) else None)]
        if not export.empty and "path" in export.columns:
            mine = export[(export["model"] == name)
                          & export["graph"].isin(["classifier"] if is_clf else list(CODEC_NETWORKS))]
            files += [("ort-cpu", Path(p)) for p in mine["path"].dropna() if Path(p).is_file()]
            row["export_s"] = float(mine["seconds"].sum()) if "seconds" in mine.columns else float("nan")
            row["export_status"] = ",".join(sorted(set(mine["status"].astype(str)))) if "status" in mine else ""
        row |= {f"{k}_mib": (v if v else float("nan")) for k, v in artifact_sizes(files).items()}
        plans = [recorded_build_s(f) for e, f in files if artifact_kind(e, f) == "tensorrt_plan"]
        row["tensorrt_build_s"] = sum(s for s in plans if s is not None) if any(plans) else float("nan")
        if cov is not None and not cov.empty:
            mine = cov[cov["stage"] == "classifier"] if is_clf else cov[(cov["codec"] == name)
                                                                       & (cov["stage"] != "classifier")]
            built = mine.groupby("engine", sort=False)["build_s"].sum()
            row["engine_build_s"] = ", ".join(f"{e} {s:.2f}" for e, s in built.items() if s > 0)
        elif not is_clf:  # no operator profile: the deployed codecs' own activations (sessions built, compiled)
            built = {e: sum(r.activate_s or 0.0 for r in ds[name].runners.values())
                     for e, ds in results.exports.deployed.items() if name in ds}
            row["engine_build_s"] = ", ".join(f"{e} {s:.2f}" for e, s in built.items() if s > 0)
        w = ctx.weights.get(name, {})
        row["weights_sha256"] = w.get("sha256", "")
        row["weights_source"] = w.get("source", w.get("origin", ""))
        rows.append(row)
    return pd.DataFrame(rows)


class ModelCardStage(StageBase):
    """The model card: each model's parameters, MACs, artifact sizes, export and build times and weights' sha256."""

    name, section, order = "model_card", "export", 22
    tables = (TableSpec("model_card", "Model card: parameters; GMACs of one image at each profiled resolution (codec: "
                        "g_a + h_a + h_s + g_s once each; classifier: at its crop); size of each artifact the run "
                        "deployed (MiB; ONNX fp32/int8, OpenVINO IR .xml+.bin, TensorRT plan); export seconds "
                        "(0 when read from the artifact cache); engine build seconds (session creation or "
                        "compilation, summed over the stages, where the operator profiles measured it; a TensorRT "
                        "plan's build as the cache recorded it); the weights' sha256. The classifier's row counts "
                        "its exported ONNX and the files its operator profiles ran.", order=62),)

    def run(self, ctx: Context, results: Results) -> StageResult:
        return StageResult({"model_card": model_card(ctx, results)})


register(ModelCardStage())
