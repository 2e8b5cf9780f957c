"""On a CUDA run: each PyTorch engine's network stages timed as host→device copy, compute and device→host
copy, eagerly and as CUDA-graph replay (``profile.cuda_graph``), at the sweep's first batch and resolution.

The runners of the main sweep take host arrays, so their times include both copies and a synchronization;
this table says how much of a stage's time is copying, and what graph replay saves in launch overhead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch

from liccs.engines import ENGINES
from liccs.export.graphs import codec_graphs, stage_feeds
from liccs.profiling.timer import TimerConfig, measure_copy_compute
from liccs.stage import Context

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
STAGES = ("g_a", "h_a", "h_s", "g_s")


def _call(module: torch.nn.Module, precision: str) -> Callable[..., Any]:
    dtype = _DTYPES.get(precision)

    def fn(*args: torch.Tensor) -> Any:
        # autocast's weight cache off: a CUDA graph must not capture casts cached outside it
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None,
                                             cache_enabled=False):
            return module(*args)
    return fn


def torch_cuda_engines(ctx: Context) -> list[str]:
    """The run's available PyTorch engines on the GPU that are not compiled (graph capture needs eager modules)."""
    return [e for e in ctx.names.engines("export") if ENGINES.get(e).backend == "torch"
            and ENGINES.get(e).device == "cuda" and "compiler" not in ENGINES.get(e).extra]


def copy_compute_table(ctx: Context, codecs: list[str], x: torch.Tensor, config: TimerConfig) -> pd.DataFrame:
    """Rows per (engine, codec, stage, cuda_graph) with ``h2d_*``, ``compute_*``, ``d2h_*`` and total times.

    ``x``: host images of the sweep's first point. Empty unless ``run.device`` is a CUDA device.
    """
    if torch.device(ctx.cfg.run.device).type != "cuda":
        return pd.DataFrame()
    rows = []
    b, hw = int(x.shape[0]), (int(x.shape[-2]), int(x.shape[-1]))
    modes = (False, True) if ctx.cfg.profile.cuda_graph else (False,)
    for name in codecs:
        graphs = codec_graphs(ctx.on_device(ctx.codecs[name]), with_reconstruct=False)[0]
        feeds = stage_feeds(ctx.codecs[name], x)
        for engine in torch_cuda_engines(ctx):
            precision = ENGINES.get(engine).precision
            for stage in (s for s in STAGES if s in graphs and s in feeds):
                g = graphs[stage]
                inputs = tuple(feeds[stage][t.name].contiguous() for t in g.inputs)
                for graph_mode in modes:
                    meta = {"engine": engine, "codec": name, "stage": stage, "cuda_graph": graph_mode}
                    try:
                        r = measure_copy_compute(_call(g.module, precision), inputs,
                                                 dataclasses.replace(config, cuda_graph=graph_mode), name=stage,
                                                 batch_size=b, image_shape=hw, meta=meta)
                        rows.append(r.to_dict(env=False) | {"error": None})
                    except (RuntimeError, torch.cuda.OutOfMemoryError) as e:  # a capture that fails is a row
                        rows.append(meta | {"batch_size": b, "height": hw[0], "width": hw[1],
                                            "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"})
    return pd.DataFrame(rows)
