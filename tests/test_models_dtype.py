"""dtype resolution: auto means bfloat16 only where it is measured faster (x86 native bf16), float32 elsewhere and
on CUDA; a spec option or RAIPIPE_DTYPE overrides it, and the model id records a non-float32 choice."""

import pytest

from raipipe.models import dtype as dt
from raipipe.models import load_model

SAPPHIRE_RAPIDS = frozenset({"fpu", "avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
COOPER_LAKE = frozenset({"avx2", "avx512f", "avx512_bf16"})
SKYLAKE = frozenset({"fpu", "avx2", "avx512f", "avx512bw"})
GRAVITON3 = frozenset({"fp", "asimd", "sve", "bf16", "i8mm"})


@pytest.fixture
def cpu(monkeypatch):
    """Pretend to run on a CPU with the given flags, with no RAIPIPE_DTYPE set."""
    monkeypatch.delenv("RAIPIPE_DTYPE", raising=False)

    def use(flags):
        monkeypatch.setattr(dt, "cpu_flags", lambda: frozenset(flags))

    return use


@pytest.mark.parametrize(("flags", "expected"), [
    (SAPPHIRE_RAPIDS, "bfloat16"), (COOPER_LAKE, "bfloat16"), (GRAVITON3, "float32"),
    (SKYLAKE, "float32"), (frozenset(), "float32"),
])
def test_auto_picks_bf16_only_with_native_x86_bf16(cpu, flags, expected):
    cpu(flags)
    assert dt.resolve_dtype("auto", "cpu") == expected
    assert dt.resolve_dtype(None, "cpu") == expected


def test_cuda_keeps_float32_and_explicit_choices_win(cpu):
    cpu(SAPPHIRE_RAPIDS)
    assert dt.resolve_dtype("auto", "cuda") == "float32"
    assert dt.resolve_dtype("auto", "cuda:1") == "float32"
    assert dt.resolve_dtype("float32", "cpu") == "float32"
    cpu(SKYLAKE)
    assert dt.resolve_dtype("BFloat16", "cpu") == "bfloat16"
    assert dt.resolve_dtype("float16", "cuda") == "float16"
    with pytest.raises(ValueError, match="float64"):
        dt.resolve_dtype("float64", "cpu")


def test_environment_replaces_auto_but_not_an_explicit_choice(cpu, monkeypatch):
    cpu(SAPPHIRE_RAPIDS)
    monkeypatch.setenv("RAIPIPE_DTYPE", "float32")
    assert dt.resolve_dtype("auto", "cpu") == "float32"
    assert dt.resolve_dtype("bfloat16", "cpu") == "bfloat16"
    monkeypatch.setenv("RAIPIPE_DTYPE", "int4")
    with pytest.raises(ValueError, match="int4"):
        dt.resolve_dtype(None, "cpu")


def test_cpuinfo_parsing(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512f amx_tile\n\n"
                    "processor\t: 1\nflags\t\t: fpu avx2 avx512f amx_tile\n")
    monkeypatch.setattr(dt, "CPUINFO", info)
    monkeypatch.setattr(dt.platform, "system", lambda: "Linux")
    assert dt.cpu_flags() == frozenset({"fpu", "avx2", "avx512f", "amx_tile"})
    assert not dt.cpu_has_native_bf16()
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert dt.cpu_has_native_bf16()
    monkeypatch.setattr(dt.platform, "system", lambda: "Darwin")
    assert dt.cpu_flags() == frozenset() and not dt.cpu_has_native_bf16()


def test_spec_options():
    assert dt.split_spec_options("smollm2") == ("smollm2", {})
    assert dt.split_spec_options("./m+./lora?dtype=bfloat16") == ("./m+./lora", {"dtype": "bfloat16"})
    with pytest.raises(ValueError, match="unknown model option"):
        dt.split_spec_options("smollm2?dtyp=bfloat16")
    assert dt.id_suffix("float32") == "" and dt.id_suffix("bfloat16") == "?dtype=bfloat16"


def test_spec_loads_the_requested_dtype_and_names_it(monkeypatch):
    """A real load: the weights are bfloat16, it answers, and its id (a cache key) differs from float32's
    while staying a spec that loads the same model again."""
    import torch

    monkeypatch.setenv("RAIPIPE_DTYPE", "float32")
    m = load_model("embedded:smollm2?dtype=bfloat16", batch_size=4)
    assert next(m.model.parameters()).dtype == torch.bfloat16 and m.dtype == "bfloat16"
    assert m.model_id == "embedded:smollm2?dtype=bfloat16"
    assert m.generate_one("Say hello.")
    assert load_model(m.model_id).dtype == "bfloat16"
