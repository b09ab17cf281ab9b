"""Which float type a local model runs in.

`auto` picks bfloat16 on CPUs with Intel AMX, where greedy generation measured about 1.7× faster than
float32, and float32 everywhere else. AVX512-BF16 alone is not enough: there bfloat16 generation
measured slower than float32 (benchmarks/bench_dtype.py), and Arm BF16 is unmeasured. CUDA keeps float32,
as before. A spec suffix overrides it (`embedded:smollm2?dtype=float32`); the RAIPIPE_DTYPE environment
variable replaces `auto` for every model of a process, e.g. to reproduce a float32 run on an AMX machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from urllib.parse import parse_qsl

DTYPES = ("auto", "bfloat16", "float32", "float16")
BF16_FLAGS = frozenset({"amx_bf16"})  # /proc/cpuinfo flag of CPUs whose bfloat16 matmuls beat float32
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (Linux); empty where there is no /proc/cpuinfo."""
    if platform.system() != "Linux" or not CPUINFO.exists():
        return frozenset()
    for line in CPUINFO.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in {"flags", "Features"}:
            return frozenset(value.split())
    return frozenset()


def cpu_has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    return bool(BF16_FLAGS & (cpu_flags() if flags is None else flags))


def resolve_dtype(requested: str | None, device: str) -> str:
    """The concrete dtype name for `requested` (None means auto) on `device` ('cpu', 'cuda', 'cuda:1')."""
    requested = (requested or "auto").lower()
    if requested == "auto":
        requested = os.environ.get("RAIPIPE_DTYPE", "auto").lower() or "auto"
    if requested not in DTYPES:
        raise ValueError(f"dtype {requested!r} is not one of {', '.join(DTYPES)}")
    if requested != "auto":
        return requested
    if device.startswith("cpu") and cpu_has_native_bf16():
        return "bfloat16"
    return "float32"


def split_spec_options(arg: str) -> tuple[str, dict[str, str]]:
    """`DIR?dtype=bfloat16` → ('DIR', {'dtype': 'bfloat16'}); only known options are accepted."""
    base, sep, query = arg.partition("?")
    if not sep:
        return arg, {}
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True))
    unknown = sorted(set(options) - {"dtype"})
    if unknown:
        raise ValueError(f"unknown model option(s) {unknown} in {arg!r}; known: dtype")
    return base, options


def id_suffix(dtype: str) -> str:
    """What a model id gains for a non-default dtype, so cached float32 answers are never reused for
    another dtype (and the id stays a loadable spec)."""
    return "" if dtype == "float32" else f"?dtype={dtype}"
