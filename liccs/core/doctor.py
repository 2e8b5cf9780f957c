"""``liccs doctor``: what this machine can run."""

from __future__ import annotations

import importlib
import subprocess
import sys
from dataclasses import dataclass

from liccs.core import isa
from liccs.core.paths import cache_dir, data_dir, hub_checkpoint_dir


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _version(mod: str) -> str:
    return getattr(importlib.import_module(mod), "__version__", "?")


def _entropy_coder() -> str:
    import torch
    from compressai.entropy_models import EntropyBottleneck

    eb = EntropyBottleneck(4).eval()
    eb.update(force=True)
    x = torch.randn(1, 4, 8, 8) * 3
    strings = eb.compress(x)
    back = eb.decompress(strings, x.shape[-2:])
    expect = torch.round(x - eb.quantiles[:, 0, 1].view(1, -1, 1, 1)) + eb.quantiles[:, 0, 1].view(1, -1, 1, 1)
    if not torch.allclose(back, expect):
        raise RuntimeError("decoded symbols differ from the encoded ones")
    import compressai

    return f"{compressai.get_entropy_coder()} round-trips ({len(strings[0])} bytes for 256 symbols)"


def _dependency_warnings() -> str:
    """The warnings the dependencies raise at import (the CLI hides them unless ``-v``), named once here."""
    code = "import torch, torchvision, compressai, onnx, onnxruntime"
    proc = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, timeout=120)
    found = sorted({ln.split("Warning: ", 1)[1].strip() for ln in proc.stderr.splitlines() if "Warning: " in ln})
    if not found:
        return "none at import"
    return f"{len(found)} at import, hidden by the CLI unless -v (not liccs's): " + "; ".join(found)


def isa_info() -> str:
    """The ``ISA`` line: this CPU's features and native precisions (:mod:`liccs.core.isa`; the bf16 engines are
    skipped where bf16 is not native) and what OpenVINO itself reports of the CPU."""
    cpu = isa.this_cpu()
    ov = isa.engine_view().get("openvino", {})
    seen = (f"; OpenVINO sees {', '.join(ov['capabilities'])}" if "capabilities" in ov
            else f"; OpenVINO: {ov['error']}" if "error" in ov else "")
    skipped = "" if cpu.native("bf16") else "; bf16 engines skipped"
    return cpu.line() + skipped + seen


def run_checks() -> list[Check]:
    """Every check, in order; a failing required check makes ``liccs doctor`` exit 1."""
    checks: list[Check] = []

    def attempt(name: str, fn, required: bool = True, hint: str = "") -> None:
        try:
            checks.append(Check(name, True, fn(), required))
        except Exception as e:  # doctor reports every failure instead of stopping at the first
            checks.append(Check(name, False, f"{type(e).__name__}: {e}{'; ' + hint if hint else ''}", required))

    def torch_info() -> str:
        import torch

        cuda = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
        if torch.cuda.is_available():
            gpu = f"GPU {torch.cuda.get_device_name(0)}"
        else:
            gpu = "no GPU visible (CPU only)"
        return f"torch {torch.__version__} ({cuda}); {gpu}; {torch.get_num_threads()} threads"

    def ort_info() -> str:
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__}; providers: {', '.join(ort.get_available_providers())}"

    def trt_info() -> str:
        import tensorrt as trt

        trt.Builder  # noqa: B018  (the lean runtime has no builder)
        return f"tensorrt {trt.__version__}"

    def openvino_info() -> str:
        import openvino

        try:
            import nncf
        except ImportError:
            return (f"openvino {openvino.__version__} (ov-cpu); nncf is missing, so ov-cpu-int8 is unavailable: "
                    "`pip install 'liccs[openvino]'`")
        return f"openvino {openvino.__version__}, nncf {nncf.__version__} (ov-cpu, ov-cpu-int8)"

    def data_info() -> str:
        d = data_dir()
        if not d.is_dir():
            raise FileNotFoundError(f"{d} (set LICCS_DATA)")
        kodak = len(list((d / "kodak").glob("*.png")))
        return (f"{d}: {kodak} Kodak images, imagenet-samples.csv "
                f"{'found' if (d / 'imagenet-samples.csv').is_file() else 'missing'}")

    attempt("torch", torch_info)
    attempt("ISA", isa_info, required=False)
    attempt("torchvision", lambda: _version("torchvision"))
    attempt("compressai", lambda: _version("compressai"))
    attempt("entropy coder", _entropy_coder)
    attempt("onnx", lambda: _version("onnx"))
    attempt("onnxruntime", ort_info)
    attempt("tensorrt", trt_info, required=False,
            hint="install with `pip install 'liccs[tensorrt]'` (needs NVIDIA's package index and a GPU); "
                 "TensorRT engines are unavailable until then")
    attempt("openvino", openvino_info, required=False,
            hint="install with `pip install 'liccs[openvino]'`; the OpenVINO engines (ov-cpu, ov-cpu-int8) are "
                 "unavailable until then")
    attempt("shared data", data_info, required=False)
    attempt("dependency warnings", _dependency_warnings, required=False)
    attempt("cache", lambda: f"{cache_dir()} (LICCS_CACHE); pretrained weights looked for in {hub_checkpoint_dir()}")
    return checks


def format_checks(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "--  ")
        lines.append(f"[{mark}] {c.name:<{width}}  {c.detail}")
    return "\n".join(lines)
