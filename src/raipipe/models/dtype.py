"""Which float type a local model runs in.

`auto` picks bfloat16 on x86 CPUs with native bfloat16 arithmetic (AVX512-BF16, or AMX), and float32
everywhere else. On an AVX512-BF16 CPU (no AMX), greedy generation of the seed test measured 2.6× faster in
bfloat16, with neither two-sided rate moving (benchmarks/bench_dtype.py prints both, paired). Arm BF16 is
unmeasured, so it keeps float32; CUDA keeps float32, as before. In bfloat16 an answer can depend on the
batch it was generated in (rounding differs with the batch's shape), so a run is reproducible at the same
batch size rather than across batch sizes. A spec suffix overrides the choice (`embedded:smollm2?dtype=float32`);
the RAIPIPE_DTYPE environment variable replaces `auto` for every model of a process, e.g. to reproduce a
float32 run on a bfloat16 machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from urllib.parse import parse_qsl

DTYPES = ("auto", "bfloat16", "float32", "float16")
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # /proc/cpuinfo flags of CPUs whose bfloat16 matmuls beat float32
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
