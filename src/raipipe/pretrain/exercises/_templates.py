"""Team-written exercise frames, one YAML file per language, validated on load.

Each template names its placeholders; an unknown placeholder, a missing shape or fewer than three
templates of a kind is a load error that names the file, line and field, never a silent gap in the
generated data. The policy text is inserted unchanged, so frames are written natively per language.
"""

from __future__ import annotations

import hashlib
import string
from importlib import resources
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from raipipe.policy.loader import PolicyError, parse_yaml_model, yaml_line
from raipipe.policy.schema import Pillar, Severity
from raipipe.pretrain.exercises._records import ExerciseKind

MIN_TEMPLATES_PER_KIND = 3


def placeholders(text: str) -> set[str]:
    """Named `{field}` placeholders in a str.format template (raises ValueError on broken braces)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _check(text: str, allowed: frozenset[str]) -> str:
    try:
        used = placeholders(text)
    except ValueError as exc:
        raise ValueError(f"broken placeholder braces: {exc}") from None
    unknown = sorted(used - allowed)
    if unknown:
        raise ValueError(f"unknown placeholder(s) {unknown}; allowed: {sorted(allowed)}")
    return text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Phrases(_Strict):
    """Small language-specific pieces the frames are assembled from."""

    severity: dict[Severity, str]
    pillars: dict[Pillar, str]
    and_word: str
    or_word: str
    none_listed: str
    no_exceptions: str
    tier: str = Field(description="a condition on the user's tier; placeholder {value}")
    use: str = Field(description="a condition on the declared use; placeholder {value}")
    no_tier: str
    no_use: str
    paraphrase: str = Field(description="instruction for an optional paraphrasing model; placeholder {text}")

    @field_validator("tier", "use")
    @classmethod
    def _value_only(cls, v: str) -> str:
        return _check(v, frozenset({"value"}))

    @field_validator("paraphrase")
    @classmethod
    def _text_only(cls, v: str) -> str:
        _check(v, frozenset({"text"}))
        if "text" not in placeholders(v):
            raise ValueError("the paraphrase instruction must contain the {text} placeholder")
        return v


_POLICY = frozenset({"title", "policy_id", "pillar", "severity", "statement"})


class _Template(_Strict):
    FIELDS: ClassVar[dict[str, frozenset[str]]] = {}
    id: str = Field(pattern=r"^[a-z]{2}(-[A-Za-z]+)?\.[a-z_]+\.[a-z0-9_-]+$")

    @field_validator("*", mode="after")
    @classmethod
    def _placeholders(cls, v: object, info: ValidationInfo) -> object:
        allowed = cls.FIELDS.get(info.field_name) if info.field_name else None
        return _check(v, allowed) if allowed is not None and isinstance(v, str) else v


class ExplanationTemplate(_Template):
    FIELDS: ClassVar[dict[str, frozenset[str]]] = {
        "policy": _POLICY | {"disallowed", "allowed", "exceptions"},
        "document": frozenset({"document", "section", "passage"}),
    }
    policy: str
    document: str


class ComplianceTemplate(_Template):
    FIELDS: ClassVar[dict[str, frozenset[str]]] = {
        "decline": _POLICY | {"request"},
        "answer": _POLICY | {"request"},
    }
    decline: str = Field(description="the request must be declined")
    answer: str = Field(description="a look-alike request that must be answered")


class ViolationTemplate(_Template):
    FIELDS: ClassVar[dict[str, frozenset[str]]] = {
        "violating": _POLICY | {"clause", "clause_path"},
        "allowed": _POLICY | {"clause", "clause_path"},
    }
    violating: str
    allowed: str


class CounterfactualTemplate(_Template):
    FIELDS: ClassVar[dict[str, frozenset[str]]] = {
        "condition": _POLICY | {"exception", "allowed_context", "denied_context", "difference", "still_disallowed"},
        "lookalike": _POLICY | {"violating", "benign"},
    }
    condition: str = Field(description="same request; an exception condition present vs absent")
    lookalike: str = Field(description="a request to decline and its benign look-alike")


class KindTemplates(_Strict):
    explanation: list[ExplanationTemplate] = Field(min_length=MIN_TEMPLATES_PER_KIND)
    compliance_qa: list[ComplianceTemplate] = Field(min_length=MIN_TEMPLATES_PER_KIND)
    violation: list[ViolationTemplate] = Field(min_length=MIN_TEMPLATES_PER_KIND)
    counterfactual: list[CounterfactualTemplate] = Field(min_length=MIN_TEMPLATES_PER_KIND)

    def of(self, kind: ExerciseKind) -> list[_Template]:
        return list(getattr(self, kind.value))


class LanguageTemplates(_Strict):
    """One file: a language's phrases and its templates for every exercise kind."""

    language: str = Field(pattern=r"^[a-z]{2}(-[A-Za-z]+)?$")
    phrases: Phrases
    templates: KindTemplates


class TemplateSet(BaseModel):
    """All loaded languages, plus a digest of the files for the manifest."""

    by_language: dict[str, LanguageTemplates]
    digest: str

    def get(self, language: str) -> LanguageTemplates:
        if language not in self.by_language:
            raise KeyError(f"no exercise templates for language {language!r}; have {sorted(self.by_language)}")
        return self.by_language[language]


def default_templates_dir() -> Path:
    return Path(str(resources.files("raipipe.resources") / "pretrain" / "templates"))


def _fail(path: Path, text: str, field_path: str, message: str) -> PolicyError:
    loc = [int(k) if k.isdigit() else k for k in field_path.split(".")]
    line = yaml_line(text, loc)
    return PolicyError(path, line, field_path, message)


def _check_file(path: Path, lt: LanguageTemplates, text: str) -> None:
    """Cross-field checks pydantic can't express per field; errors still name file, line and field."""
    for enum, key in ((Severity, "severity"), (Pillar, "pillars")):
        missing = sorted(e.value for e in enum if e not in getattr(lt.phrases, key))
        if missing:
            raise _fail(path, text, f"phrases.{key}", f"missing entries: {', '.join(missing)}")
    if lt.language != path.stem:
        raise _fail(path, text, "language", f"{lt.language!r} does not match the file name {path.name!r}")
    for kind in ExerciseKind:
        for i, tpl in enumerate(lt.templates.of(kind)):
            if not tpl.id.startswith(f"{lt.language}.{kind.value}."):
                raise _fail(path, text, f"templates.{kind.value}.{i}.id",
                            f"{tpl.id!r} must start with '{lt.language}.{kind.value}.'")


def load_templates(directory: Path | str | None = None) -> TemplateSet:
    """Load every `<lang>.yaml` in `directory` (default: the shipped templates)."""
    root = Path(directory) if directory else default_templates_dir()
    files = sorted(root.glob("*.yaml"))
    if not files:
        raise PolicyError(root, None, "<templates>", "no template files (*.yaml) found")
    by_language: dict[str, LanguageTemplates] = {}
    seen_ids: set[str] = set()
    h = hashlib.sha256()
    for path in files:
        text = path.read_text(encoding="utf-8")
        h.update(path.name.encode() + b"\0" + text.encode())
        lt: LanguageTemplates = parse_yaml_model(path, LanguageTemplates, text)
        _check_file(path, lt, text)
        for kind in ExerciseKind:
            for i, tpl in enumerate(lt.templates.of(kind)):
                if tpl.id in seen_ids:
                    raise _fail(path, text, f"templates.{kind.value}.{i}.id", f"duplicate template id {tpl.id!r}")
                seen_ids.add(tpl.id)
        by_language[lt.language] = lt
    return TemplateSet(by_language=by_language, digest=h.hexdigest()[:16])
