"""Product profiles: describe a deployment once, derive the harms to test and the gaps to fill.

`map_profile` applies the rule table in `harm_rules` to a profile, then looks up which policies of a
pack list each anticipated harm in `Policy.harms`. Harms no policy covers are returned as gaps:
they are what a product team most needs to see, because nothing downstream will test them.
"""

from __future__ import annotations

import re
from enum import StrEnum
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from raipipe.policy.harm_rules import HARM_RULES, HarmRule
from raipipe.policy.loader import PolicyError, PolicyPack, parse_yaml_model
from raipipe.policy.schema import Pillar, Severity

_HARM_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_SEVERITY_ORDER = [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


class ModelKind(StrEnum):
    GENERAL_ASSISTANT = "general-assistant"
    CODING_ASSISTANT = "coding-assistant"
    CUSTOMER_SUPPORT = "customer-support"
    TUTOR = "tutor"


class Audience(StrEnum):
    PUBLIC = "public"
    ENTERPRISE = "enterprise"
    MINORS = "minors"
    PROFESSIONALS = "professionals"


class Capability(StrEnum):
    TOOL_USE = "tool-use"
    CODE_EXECUTION = "code-execution"
    WEB_BROWSING = "web-browsing"
    IMAGE_GENERATION = "image-generation"
    VOICE = "voice"
    MEMORY = "memory"


def _check_harm(tag: str) -> str:
    if not _HARM_RE.match(tag):
        raise ValueError(f"harm tag {tag!r} must be lower-case kebab-case, e.g. 'medical-misadvice'")
    return tag


class ExtraHarm(BaseModel):
    """A harm the rule table does not anticipate but this product team does."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    harm: str
    pillar: Pillar
    note: str = ""

    @field_validator("harm")
    @classmethod
    def _tag(cls, v: str) -> str:
        return _check_harm(v)


class ProductProfile(BaseModel):
    """What is deployed, to whom and where: the traits the harm rules key on."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    description: str = ""
    model_kind: ModelKind
    audience: Audience
    languages: list[str] = Field(default_factory=lambda: ["en"], description="ISO 639-1 codes")
    regions: list[str] = Field(default_factory=list, description="e.g. EU, US, UK")
    user_tiers: list[str] = Field(default_factory=list, description="tiers that policy exceptions name")
    declared_uses: list[str] = Field(default_factory=list)
    capabilities: list[Capability] = Field(default_factory=list)
    extra_harms: list[ExtraHarm] = Field(default_factory=list)
    excluded_harms: list[str] = Field(default_factory=list, description="harms judged out of scope")

    @field_validator("languages")
    @classmethod
    def _langs(cls, v: list[str]) -> list[str]:
        return [lang.strip().lower() for lang in v]

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        return [r.strip().upper() for r in v]

    @field_validator("excluded_harms")
    @classmethod
    def _excluded(cls, v: list[str]) -> list[str]:
        return [_check_harm(h) for h in v]


class AnticipatedHarm(BaseModel):
    harm: str
    pillar: Pillar
    reasons: list[str] = Field(description="rule names (or 'profile.extra_harms') that anticipated it")
    covered_by: list[str] = Field(default_factory=list, description="policy ids listing this harm")
    emphasised: bool = Field(default=False, description="a covering policy had its severity raised")


class PillarMap(BaseModel):
    pillar: Pillar
    harms: list[AnticipatedHarm] = Field(default_factory=list)
    policies: list[str] = Field(default_factory=list, description="policies covering these harms")
    gaps: list[str] = Field(default_factory=list, description="harms no policy in the pack covers")


class SeverityChange(BaseModel):
    """A policy emphasised by a profile rule: severity one level up (capped at critical)."""

    policy_id: str
    base: Severity
    effective: Severity
    because: list[str]


class ExceptionInScope(BaseModel):
    policy_id: str
    exception_id: str
    still_disallowed: list[str]


class ProfileMap(BaseModel):
    """The result of mapping a profile onto a pack: per pillar, harms → policies, plus gaps."""

    profile: str
    pack: str
    rules_applied: list[str]
    pillars: dict[Pillar, PillarMap]
    severity_changes: list[SeverityChange] = Field(default_factory=list)
    exceptions_in_scope: list[ExceptionInScope] = Field(default_factory=list)
    excluded: list[str] = Field(default_factory=list)
    unused_policies: list[str] = Field(default_factory=list, description="pack policies no harm reached")
    notes: list[str] = Field(default_factory=list)

    def gaps(self) -> list[tuple[Pillar, str]]:
        return [(pm.pillar, g) for pm in self.pillars.values() for g in pm.gaps]

    def policies(self) -> list[str]:
        return sorted({pid for pm in self.pillars.values() for pid in pm.policies})

    def effective_severity(self, policy_id: str, pack: PolicyPack) -> Severity:
        for ch in self.severity_changes:
            if ch.policy_id == policy_id:
                return ch.effective
        return pack.get(policy_id).severity


def default_profile_dir() -> Path:
    return Path(str(resources.files("raipipe") / "resources" / "profiles"))


def shipped_profiles() -> list[str]:
    return sorted(p.stem for p in default_profile_dir().glob("*.yaml"))


def load_profile(path_or_name: str | Path) -> ProductProfile:
    """Load a profile from a YAML path, or by the name of a shipped profile (file stem)."""
    path = Path(path_or_name)
    if not path.is_file():
        shipped = default_profile_dir() / f"{path_or_name}.yaml"
        if not shipped.is_file():
            known = shipped_profiles()
            raise PolicyError(path, None, "<profile>", f"no such file or shipped profile; shipped: {known}")
        path = shipped
    return parse_yaml_model(path, ProductProfile)


def _raise(sev: Severity) -> Severity:
    return _SEVERITY_ORDER[min(_SEVERITY_ORDER.index(sev) + 1, len(_SEVERITY_ORDER) - 1)]


def map_profile(profile: ProductProfile, pack: PolicyPack, rules: tuple[HarmRule, ...] = HARM_RULES) -> ProfileMap:
    """Anticipate harms for `profile` (rule table + extras − exclusions) and match them to `pack`."""
    applied = [r for r in rules if r.applies(profile)]
    notes: list[str] = []
    found = _anticipate(profile, applied, notes)
    excluded = [h for h in profile.excluded_harms if found.pop(h, None) is not None]
    notes += [f"excluded harm {h!r} was not anticipated anyway" for h in profile.excluded_harms if h not in excluded]
    raised = _raised_severities(applied, pack, notes)
    pillars = _by_pillar(found, pack, raised)
    used = {pid for pm in pillars.values() for pid in pm.policies}
    return ProfileMap(
        profile=profile.name,
        pack=pack.ref,
        rules_applied=[r.name for r in applied],
        pillars=pillars,
        severity_changes=_severity_changes(raised, pack, used),
        exceptions_in_scope=_exceptions_in_scope(profile, pack, used),
        excluded=excluded,
        unused_policies=sorted(set(pack.policies) - used),
        notes=notes,
    )


def _anticipate(profile: ProductProfile, applied: list[HarmRule], notes: list[str]) -> dict[str, AnticipatedHarm]:
    """Harm tag → anticipated harm, from the applied rules then the profile's extras; a harm claimed by
    two pillars stays under the first, with a note."""
    found: dict[str, AnticipatedHarm] = {}

    def add(harm: str, pillar: Pillar, reason: str) -> None:
        if harm in found:
            if reason not in found[harm].reasons:
                found[harm].reasons.append(reason)
            if found[harm].pillar != pillar:
                notes.append(f"harm {harm!r} kept under {found[harm].pillar}, not {pillar} ({reason})")
        else:
            found[harm] = AnticipatedHarm(harm=harm, pillar=pillar, reasons=[reason])

    for rule in applied:
        for pillar, harms in rule.harms.items():
            for harm in harms:
                add(harm, pillar, rule.name)
    for extra in profile.extra_harms:
        add(extra.harm, extra.pillar, "profile.extra_harms")
    return found


def _raised_severities(applied: list[HarmRule], pack: PolicyPack, notes: list[str]) -> dict[str, list[str]]:
    """Policy id → the rules that raise its severity; a rule naming a policy missing from the pack is noted."""
    raised: dict[str, list[str]] = {}
    for rule in applied:
        for pid in rule.raise_severity:
            if pid in pack.policies:
                raised.setdefault(pid, []).append(rule.name)
            else:
                notes.append(f"rule {rule.name} raises {pid!r}, which is not in pack {pack.ref}")
    return raised


def _by_pillar(found: dict[str, AnticipatedHarm], pack: PolicyPack,
               raised: dict[str, list[str]]) -> dict[Pillar, PillarMap]:
    """Each anticipated harm matched to the policies listing it, grouped by pillar; uncovered ones are gaps."""
    pillars = {p: PillarMap(pillar=p) for p in Pillar}
    for harm, ah in sorted(found.items()):
        ah.covered_by = sorted(pid for pid, pol in pack.policies.items() if harm in pol.harms)
        ah.emphasised = any(pid in raised for pid in ah.covered_by)
        pm = pillars[ah.pillar]
        pm.harms.append(ah)
        pm.policies = sorted(set(pm.policies) | set(ah.covered_by))
        if not ah.covered_by:
            pm.gaps.append(harm)
    return pillars


def _severity_changes(raised: dict[str, list[str]], pack: PolicyPack, used: set[str]) -> list[SeverityChange]:
    changes = []
    for pid, because in sorted(raised.items()):
        base = pack.get(pid).severity
        if pid in used:  # kept even when already CRITICAL: the emphasis is still worth showing
            changes.append(SeverityChange(policy_id=pid, base=base, effective=_raise(base), because=because))
    return changes


def _exceptions_in_scope(profile: ProductProfile, pack: PolicyPack, used: set[str]) -> list[ExceptionInScope]:
    """Exceptions of the used policies that one of the profile's user tiers or declared uses can trigger."""
    in_scope = []
    tiers: list[str | None] = [*profile.user_tiers, None]
    uses: list[str | None] = [*profile.declared_uses, None]
    for pid in sorted(used):
        for exc in pack.get(pid).exceptions:
            if any(exc.applies(t, u) for t in tiers for u in uses):
                in_scope.append(
                    ExceptionInScope(policy_id=pid, exception_id=exc.id, still_disallowed=exc.still_disallowed)
                )
    return in_scope
