"""Policy-written refusal candidates: one per prompt, in the prompt's language, naming the prompt's harm.

A 135M model sampled four times often produces no refusal at all for a harmful prompt (and a safety
system prompt barely changes that), so best-vs-worst pairs end up partial-vs-comply and DPO learns
little. Adding a written refusal to every prompt's candidates fixes both sides at once: the judges
rank it first on a harmful prompt and last on its benign look-alike, so the same kind of refusal is
'chosen' for one and 'rejected' for the other. Candidates made here are stored with their own origin
and the template file's digest, so they are never mistaken for the model's own samples. The reason
sentence is the prompt's policy's where the templates have one (it names the harm: drugs, stalking,
deepfakes), else its pillar's: a pillar sentence is abstract enough that a small model learned to attach
it to the wrong harms."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from raipipe.policy.loader import parse_yaml_model
from raipipe.policy.schema import Pillar

TEMPLATE_ORIGIN = "policy-template-refusal"
FALLBACK_LANGUAGE = "en"


def key_number(key: str) -> int:
    """A fixed pseudo-random number per key (a record id): which template sentence a prompt gets, on every run."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16)


class LanguageTemplates(BaseModel):
    model_config = ConfigDict(extra="forbid")
    openers: list[str] = Field(min_length=1, description="first sentence: the refusal itself")
    reasons: dict[Pillar, str] = Field(description="why, one sentence per pillar")
    policy_reasons: dict[str, str] = Field(default_factory=dict, description=(
        "why, one sentence per policy id, naming the harm itself; used over the pillar's where present"))
    offers: list[str] = Field(min_length=1, description="a safe alternative offered instead")

    @field_validator("reasons")
    @classmethod
    def _every_pillar(cls, v: dict[Pillar, str]) -> dict[Pillar, str]:
        missing = sorted(p.value for p in Pillar if p not in v)
        if missing:
            raise ValueError(f"missing a reason for pillar(s): {', '.join(missing)}")
        return v


class RefusalTemplates(RootModel[dict[str, LanguageTemplates]]):
    """Language code → templates; validated so a missing pillar is a load error, not a silent gap."""

    @field_validator("root")
    @classmethod
    def _has_fallback(cls, v: dict[str, LanguageTemplates]) -> dict[str, LanguageTemplates]:
        if FALLBACK_LANGUAGE not in v:
            raise ValueError(f"templates must include the fallback language {FALLBACK_LANGUAGE!r}")
        return v

    def for_language(self, language: str) -> LanguageTemplates:
        """The templates of `language` ('es-MX' falls back to 'es', an unknown one to the fallback)."""
        return self.root.get(language) or self.root.get(language.split("-")[0]) or self.root[FALLBACK_LANGUAGE]

    def reason(self, language: str, pillar: Pillar | str, policy_id: str | None = None) -> str:
        """The sentence that says why: the policy's own where the templates have one, else the pillar's."""
        lang = self.for_language(language)
        return lang.policy_reasons.get(policy_id or "") or lang.reasons[Pillar(pillar)]

    def refusal(self, key: str, language: str, pillar: Pillar | str, policy_id: str | None = None) -> str:
        """A deterministic refusal for one prompt: `key` (the record id) picks opener and offer."""
        lang = self.for_language(language)
        h = key_number(key)
        opener = lang.openers[h % len(lang.openers)]
        offer = lang.offers[(h // len(lang.openers)) % len(lang.offers)]
        return f"{opener} {self.reason(language, pillar, policy_id)} {offer}"


def default_templates_path() -> Path:
    return Path(str(resources.files("raipipe.resources") / "posttrain" / "refusal_templates.yaml"))


def load_templates(path: Path | str | None = None) -> tuple[RefusalTemplates, str]:
    """The templates and their content digest (recorded in the sample batch manifest)."""
    p = Path(path) if path else default_templates_path()
    if not p.is_file():
        raise FileNotFoundError(f"refusal templates {p} do not exist")
    text = p.read_text(encoding="utf-8")
    return parse_yaml_model(p, RefusalTemplates, text), hashlib.sha256(text.encode()).hexdigest()[:16]
