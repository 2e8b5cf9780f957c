"""Which precisions this CPU computes natively: the ISA features that decide it, from ``/proc/cpuinfo``'s flags.

:func:`parse_flags` is a pure function over a flag set (tested on recorded sets); :func:`this_cpu` reads this
machine's once. bf16 pays only with AVX-512 BF16 or AMX-BF16 (elsewhere it runs emulated, slower than fp32);
int8 runs exactly only with VNNI (AVX-VNNI, AVX-512 VNNI) or AMX-INT8: without it ONNX Runtime's uint8 × int8
kernels add pairs of products in 16 bits and saturate, so liccs quantizes weights to 7 bits there
(:mod:`liccs.export.quantize`). :func:`engine_view` adds what the engines themselves report (guarded imports).
"""

from __future__ import annotations

import copy
import functools
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
#: Linux's flag → the feature's name, in the order shown
FEATURES = {"avx2": "AVX2", "avx512f": "AVX-512F", "avx_vnni": "AVX-VNNI", "avx512_vnni": "AVX-512 VNNI",
            "avx512_bf16": "AVX-512 BF16", "avx512_fp16": "AVX-512 FP16", "amx_bf16": "AMX-BF16",
            "amx_int8": "AMX-INT8"}
#: a precision → the flags of which any one makes it native, and how the reason names them
NATIVE = {"bf16": (("avx512_bf16", "amx_bf16"), "AVX-512 BF16 or AMX-BF16"),
          "int8": (("avx_vnni", "avx512_vnni", "amx_int8"), "VNNI (AVX-VNNI, AVX-512 VNNI) or AMX-INT8"),
          "fp16": (("avx512_fp16",), "AVX-512 FP16")}
_COST = {"bf16": "bf16 would run emulated, slower than fp32",
         "int8": "ONNX Runtime's int8 kernels saturate there (liccs uses 7-bit weights)",
         "fp16": "fp16 would run converted to fp32, slower than fp32"}


@dataclass(frozen=True)
class Isa:
    """The features of :data:`FEATURES` one CPU has, its model name, and whether its flags could be read."""

    flags: frozenset[str]
    model: str | None = None
    known: bool = True

    @property
    def name(self) -> str:
        """``this CPU (MODEL)``, or ``this CPU`` when the model is unknown."""
        return f"this CPU ({self.model})" if self.model else "this CPU"

    @property
    def features(self) -> list[str]:
        """The names of the features present, in :data:`FEATURES` order."""
        return [name for flag, name in FEATURES.items() if flag in self.flags]

    def missing(self, precision: str) -> str | None:
        """None when ``precision`` (fp32, bf16, int8, fp16) runs natively here, else why not, in one sentence."""
        if precision == "fp32":
            return None
        if precision not in NATIVE:
            raise ValueError(f"unknown precision {precision!r}; one of fp32, {', '.join(NATIVE)}")
        flags, names = NATIVE[precision]
        if not self.known:
            return f"this CPU's flags could not be read ({CPUINFO} missing): {precision} is not known to be native"
        if any(f in self.flags for f in flags):
            return None
        return f"{self.name} has no {names}: {_COST[precision]}"

    def native(self, precision: str) -> bool:
        """True when ``precision`` runs natively here."""
        return self.missing(precision) is None

    @property
    def int8_weight_bits(self) -> int:
        """The weight bits of ONNX Runtime's int8 graphs here: 8 with VNNI/AMX-INT8, else 7 (``reduce_range``)."""
        return 8 if self.native("int8") else 7

    def line(self) -> str:
        """One line for ``liccs doctor``: the model, the features, which precisions are native and which are not."""
        if not self.known:
            return f"unknown: {CPUINFO} could not be read; fp32 only (bf16 engines skipped, int8 with 7-bit weights)"
        native = ["fp32", *(p for p in ("bf16", "int8") if self.native(p))]
        short = {"bf16": "no AVX-512 BF16/AMX-BF16", "int8": "no VNNI/AMX-INT8"}
        lacking = [f"{p} ({short[p]})" for p in ("bf16", "int8") if not self.native(p)]
        return (f"{self.model or 'unknown model'}: {', '.join(self.features) or 'no AVX2'}; native: {', '.join(native)}"
                f"{'; not native: ' + ', '.join(lacking) if lacking else ''}; ONNX Runtime int8 uses "
                f"{self.int8_weight_bits}-bit weights")

    def as_dict(self) -> dict[str, Any]:
        """Flat fields for a manifest's device info (and timing rows): ``isa`` (the features, comma-joined),
        ``native_precisions`` and ``ort_int8_weight_bits``."""
        return {"isa": ", ".join(self.features) if self.known else "unknown",
                "native_precisions": ", ".join(["fp32", *(p for p in NATIVE if self.native(p))]),
                "ort_int8_weight_bits": self.int8_weight_bits}


def parse_flags(flags: str | Iterable[str], model: str | None = None) -> Isa:
    """The :class:`Isa` of a CPU from its flags (a ``/proc/cpuinfo`` flags line or a set of flag names)."""
    names = flags.split() if isinstance(flags, str) else [str(f) for f in flags]
    return Isa(frozenset(f.strip().lower() for f in names) & frozenset(FEATURES), model)


def read_cpuinfo(path: Path = CPUINFO) -> tuple[list[str] | None, str | None]:
    """The first processor's flags (x86 ``flags``, Arm ``Features``) and model name; None for what is absent."""
    flags: list[str] | None = None
    model: str | None = None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("flags", "features") and flags is None:
                    flags = value.split()
                elif key == "model name" and model is None:
                    model = value.strip() or None
                if flags is not None and model is not None:
                    break
    except OSError:
        pass
    return flags, model


@functools.cache
def this_cpu() -> Isa:
    """This machine's :class:`Isa` (read once; tests monkeypatch this function to stand for other CPUs)."""
    flags, model = read_cpuinfo(CPUINFO)
    model = model or platform.processor() or platform.machine() or None
    if flags is None:
        return Isa(frozenset(), model, known=False)
    return parse_flags(flags, model)


def engine_view() -> dict[str, Any]:
    """What the engines report about this CPU: OpenVINO's ``OPTIMIZATION_CAPABILITIES`` and device name, ONNX
    Runtime's version and providers (asked once per process). An engine not installed is ``{"installed": False}``;
    one that fails to answer gives its error."""
    return copy.deepcopy(_engine_view())


def engine_fields() -> dict[str, str | None]:
    """:func:`engine_view` as flat fields for a manifest: ``openvino_capabilities``, ``onnxruntime_providers``
    (comma-joined; None where the engine is not installed, ``error: ...`` where it failed to answer)."""
    view = _engine_view()

    def field(engine: str, key: str) -> str | None:
        got = view.get(engine, {})
        return ", ".join(got[key]) if key in got else f"error: {got['error']}" if "error" in got else None

    return {"openvino_capabilities": field("openvino", "capabilities"),
            "onnxruntime_providers": field("onnxruntime", "providers")}


@functools.cache
def _engine_view() -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        import openvino as ov

        core = ov.Core()
        out["openvino"] = {"version": ov.__version__,
                           "capabilities": [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")],
                           "device": str(core.get_property("CPU", "FULL_DEVICE_NAME"))}
    except ImportError:
        out["openvino"] = {"installed": False}
    except Exception as e:  # an installed OpenVINO that cannot see its CPU plugin: record why, never stop a report
        out["openvino"] = {"error": f"{type(e).__name__}: {(str(e).splitlines() or [''])[-1]}"}
    try:
        import onnxruntime as ort

        out["onnxruntime"] = {"version": ort.__version__, "providers": list(ort.get_available_providers())}
    except ImportError:
        out["onnxruntime"] = {"installed": False}
    return out
