"""The replicas an engine-aware attack differentiates, and their parity against the real engine.

A replica (:mod:`liccs.engines.replica`) is used only where it predicts what the engine predicts: its top-1
agreement with the engine on the run's clean images must reach ``export.min_top1_agreement`` (0.99 by default),
like any exported graph against PyTorch. The parity record (max and mean absolute logit error, top-1 agreement,
images) is a table of the run.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import Tensor, nn

from liccs.checks.predictors import Route, routes
from liccs.core.errors import LiccsError
from liccs.stage import Context, Exports


def _batched(fn: object, images: Tensor, batch_size: int) -> Tensor:
    with torch.no_grad():
        return torch.cat([torch.as_tensor(fn(images[i:i + batch_size])).float().cpu()  # type: ignore[operator]
                          for i in range(0, len(images), batch_size)])


def route_parity(route: Route, replica: nn.Module, images: Tensor, batch_size: int) -> dict[str, float | int]:
    """The replica against the real engine on ``images``: logit errors and top-1 agreement."""
    engine = _batched(route.predict, images, batch_size)
    rep = _batched(replica, images, batch_size)
    err = (engine - rep).abs()
    return {"n": len(images), "max_abs_err": float(err.max()), "mean_abs_err": float(err.mean()),
            "top1_agreement": float((engine.argmax(1) == rep.argmax(1)).float().mean())}


def replica_files(replica: nn.Module) -> list[str]:
    """The ONNX files a replica executes (their names carry the artifact key), for the attack's cache key."""
    return sorted(str(m.path.name) for m in replica.modules() if hasattr(m, "path"))


def replicas(ctx: Context, engine: str, exports: Exports, targets: list[str]) -> dict[str, nn.Module]:
    """Target → the replica of its route on ``engine``, on ``run.device``."""
    device = torch.device(ctx.cfg.run.device)
    with routes(ctx, engine, exports, targets) as rs:
        return {t: r.replica().to(device).eval() for t, r in rs.items()}


def replica_parity(ctx: Context, engine: str, exports: Exports, targets: list[str]) -> pd.DataFrame:
    """One row per target: its route on ``engine``, the replica's parity on the run's clean images, whether it may
    be used (top-1 agreement ≥ ``export.min_top1_agreement``) and the files it executes."""
    rows = []
    with routes(ctx, engine, exports, targets) as rs:
        for t, route in rs.items():
            row: dict[str, object] = {"engine": engine, "target": t, "route": route.how}
            try:
                rep = route.replica().eval()
            except LiccsError as e:  # no replica for this route (bitstreams, an op it lacks): said in the table
                rows.append(row | {"usable": False, "why": str(e)})
                continue
            p = route_parity(route, rep, ctx.images, ctx.cfg.data.batch_size)
            ok = p["top1_agreement"] >= ctx.cfg.export.min_top1_agreement
            rows.append(row | p | {"usable": ok, "files": ";".join(replica_files(rep)), "why": "" if ok else
                                   f"top-1 agreement {p['top1_agreement']:.3f} < export.min_top1_agreement "
                                   f"{ctx.cfg.export.min_top1_agreement}"})
    return pd.DataFrame(rows)

