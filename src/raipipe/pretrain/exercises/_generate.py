"""Render drafts through the team templates into exercise records, deterministically given a seed.

The template for a unit is chosen by a random generator seeded with (seed, unit key, language), so
adding a policy or a language never reshuffles the choices made for the others.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from raipipe.policy.loader import PACK_FILE, PolicyPack
from raipipe.pretrain.exercises._documents import Passage
from raipipe.pretrain.exercises._policy_kinds import BUILDERS, Draft
from raipipe.pretrain.exercises._records import Exercise, ExerciseKind, SourceRef, exercise_id
from raipipe.pretrain.exercises._templates import TemplateSet, load_templates


class ExerciseConfig(BaseModel):
    """What to generate; saved in the manifest so a run can be repeated exactly."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    languages: list[str] = Field(default=["en", "es", "fr"], min_length=1, description="template frame languages")
    kinds: list[ExerciseKind] = Field(default=list(ExerciseKind), min_length=1)
    seed: int = Field(default=0, description="seeds template choice and shard order")
    variants: int = Field(default=1, ge=1, description="distinct templates rendered per unit and language")
    source_language: str = Field(default="en", description="language the policy pack and documents are written in")
    max_passage_chars: int = Field(default=1500, ge=200, description="guidance passages are packed up to this size")


def _policy_files(pack: PolicyPack) -> dict[str, str]:
    """policy id → its file name in the pack (provenance); '<pack>' when the pack has no folder."""
    if pack.root is None:
        return {}
    out = {}
    for path in sorted(Path(pack.root).glob("*.y*ml")):
        if path.name != PACK_FILE:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and "id" in data:
                out[str(data["id"])] = path.name
    return out


def _choose(templates: list, key: str, language: str, cfg: ExerciseConfig) -> list:
    rng = random.Random(f"{cfg.seed}|{key}|{language}")
    return rng.sample(templates, min(cfg.variants, len(templates)))


def _record(draft: Draft, tpl, language: str, source: SourceRef, pack: PolicyPack,
            content_language: str | None) -> Exercise:
    text = getattr(tpl, draft.slot).format_map(draft.values).strip()
    policy = pack.policies.get(draft.policy_id) if draft.policy_id else None
    return Exercise(
        id=exercise_id(draft.kind.value, language, tpl.id, text, source),
        kind=draft.kind, text=text, language=language, content_language=content_language,
        mixed_language=content_language is not None and content_language != language,
        policy_id=draft.policy_id, clause=draft.clause, depends_on=draft.depends_on,
        policy_version=policy.version if policy else None,
        pack=pack.ref, pack_version=pack.info.version, template_id=tpl.id, source=source,
    )


def _policy_exercises(pack: PolicyPack, templates: TemplateSet, cfg: ExerciseConfig) -> Iterator[Exercise]:
    files = _policy_files(pack)
    for language in cfg.languages:
        lt = templates.get(language)
        for pid in sorted(pack.policies):
            policy = pack.policies[pid]
            for kind in cfg.kinds:
                for draft in BUILDERS[kind](policy, lt.phrases):
                    main = next(d for d in draft.depends_on if d.path == draft.clause)
                    source = SourceRef(kind="policy", path=files.get(pid, "<pack>"), section=draft.clause or "",
                                       digest=main.digest)
                    for tpl in _choose(lt.templates.of(kind), draft.key, language, cfg):
                        yield _record(draft, tpl, language, source, pack, cfg.source_language)


def _document_exercises(passages: list[Passage], pack: PolicyPack, templates: TemplateSet,
                        cfg: ExerciseConfig) -> Iterator[Exercise]:
    """Guidance passages become explanation exercises (the passage quoted in a reading frame)."""
    if ExerciseKind.EXPLANATION not in cfg.kinds:
        return
    for language in cfg.languages:
        lt = templates.get(language)
        for p in passages:
            key = f"doc:{p.document}:{p.section}:{p.paragraph}"
            draft = Draft(kind=ExerciseKind.EXPLANATION, key=key, slot="document", clause=None,
                          values={"document": p.title, "section": p.section, "passage": p.text},
                          policy_id=p.policy_id)
            source = SourceRef(kind="document", path=p.document, section=p.section, paragraph=p.paragraph,
                               digest=p.digest)
            for tpl in _choose(lt.templates.explanation, key, language, cfg):
                yield _record(draft, tpl, language, source, pack, cfg.source_language)


def generate_exercises(pack: PolicyPack, config: ExerciseConfig | None = None, templates: TemplateSet | None = None,
                       passages: list[Passage] | None = None) -> list[Exercise]:
    """All exercises for `pack` (and optional guidance passages), in a deterministic order."""
    cfg = config or ExerciseConfig()
    tset = templates or load_templates()
    for language in cfg.languages:
        tset.get(language)  # fail before generating anything
    records = list(_policy_exercises(pack, tset, cfg))
    records += _document_exercises(passages or [], pack, tset, cfg)
    seen: dict[str, Exercise] = {}
    for rec in records:
        seen.setdefault(rec.id, rec)
    return list(seen.values())
