"""Typed evaluation config, saved in every run's manifest, and the checks run on it before any compute."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from raipipe.errors import ConfigError, UsageError, require_writable
from raipipe.judges.base import JUDGES
from raipipe.models.base import GenerationParams
from raipipe.models.registry import check_model_spec
from raipipe.policy.loader import parse_yaml_model

EFFECTIVE_CONFIG = "effective-config.yaml"  # written beside the results: what the run actually used


class Scaffolding(BaseModel):
    """What is attached around the model at deployment: a system prompt (more: guardrails)."""

    model_config = ConfigDict(extra="forbid")
    system_prompt: str | None = None


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="model spec: embedded:smollm2, hf:DIR, openai:MODEL@URL")
    datasets: list[str] = Field(min_length=1, description="dataset specs: seed:test, file.jsonl, xstest:PATH")
    judges: list[str] = Field(default_factory=lambda: ["refusal"], min_length=1,
                              description="first one drives the metrics")
    judge_model: str | None = Field(default=None, description="backend spec for the rubric judge")
    scaffolding: Scaffolding = Field(default_factory=Scaffolding)
    params: GenerationParams = Field(default_factory=lambda: GenerationParams(max_new_tokens=80))
    policy_pack: str | None = Field(default=None, description="policy directory; default: the shipped pack")
    store: str = Field(default="raipipe.db", description="SQLite path or SQLAlchemy URL")
    out: Path = Path("out/eval")
    chunk_size: int = Field(default=64, ge=1, description="items per committed chunk (resume granularity)")
    limit: int | None = Field(default=None, ge=1, description="keep at most N records per dataset, stratified "
                              "by pillar x label x language")
    on_long_prompt: Literal["truncate", "reject"] = Field(
        default="truncate", description="a prompt over max_prompt_chars is cut (the reason recorded on the "
        "record and in the manifest) or the run is refused before it starts")
    max_prompt_chars: int = Field(default=24_000, ge=1, description="longest prompt sent to the model; the "
                                  "default stays inside an 8k-token context (~4 characters per token)")
    seed: int = 0
    name: str = ""


def load_config(path: Path, overrides: Mapping[str, Any] | None = None) -> EvalConfig:
    """Read a YAML EvalConfig; `overrides` (flags given on the command line) win over the file's values."""
    return parse_yaml_model(Path(path), EvalConfig, error=ConfigError, overrides=overrides)


def check_judges(judges: list[str], judge_model: str | None, extra: tuple[str, ...] = ()) -> None:
    """Unknown judge names list the choices; a rubric judge must be told which model reads the rubric.

    `extra`: names a command accepts beside the registered judges (e.g. `specificity`)."""
    known = sorted([*JUDGES.all(), *extra])
    for name in judges:
        if name not in known:
            raise UsageError(f"unknown judge {name!r}", field="judge", hint=f"choose one of {', '.join(known)}")
    if "rubric" in judges and not judge_model:
        raise UsageError("the rubric judge needs a model to read the rubric", field="judge_model",
                         hint="add --judge-model SPEC (e.g. --judge-model embedded:smollm2)")
    if judge_model:
        check_model_spec(judge_model)


def check_store_target(store: str) -> None:
    """A SQLite path must be creatable; a database URL is checked when it is opened."""
    if "://" not in store:
        require_writable(store, "--store", kind="file")


def preflight(cfg: EvalConfig) -> None:
    """Every check that needs no model, no data load and no write: a typo fails in a second, not an hour."""
    require_writable(cfg.out, "--out", kind="dir")
    check_store_target(cfg.store)
    check_model_spec(cfg.model)
    check_judges(cfg.judges, cfg.judge_model)
