"""Grow post-training prompts from policy-driven building blocks, deterministically.

Each topic's harmful intent and its benign look-alikes are rendered through the same frames
(template + persona + context), so every pair differs in intent, not wording. Whole topics are
assigned to train/dev/test (stratified per policy, hence every pillar and language reaches every
split), so the test split asks about things never trained on. Near-duplicates across splits and
of the shipped seed set are dropped and every candidate is accounted for in the report.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raipipe.data.dedup import normalize_text
from raipipe.data.generator_blocks import Blocks, Intent, Style, Topic
from raipipe.data.generator_render import Frame, add_noise, frames, render
from raipipe.data.generator_report import DropRow, GenerationReport, check_near_duplicates
from raipipe.data.records import Label, PromptRecord, Provenance, SourceKind, Split
from raipipe.models.base import ChatModel, GenerationParams
from raipipe.policy.loader import PolicyPack

SOURCE_NAME = "raipipe-generator"
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "fr": "French"}


class SplitRatios(BaseModel):
    """Share of each policy's topics per split; a split with ratio 0 gets no topics."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    train: float = Field(default=0.7, ge=0.0, le=1.0)
    dev: float = Field(default=0.15, ge=0.0, le=1.0)
    test: float = Field(default=0.15, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _sum(self) -> SplitRatios:
        if abs(self.train + self.dev + self.test - 1.0) > 1e-6:
            raise ValueError(f"split ratios must sum to 1, got {self.train + self.dev + self.test:.3f}")
        if self.train <= 0:
            raise ValueError("the train ratio must be positive")
        return self


class GeneratorConfig(BaseModel):
    """Everything that decides the output; saved in the report so a run can be reproduced."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = 0
    ratios: SplitRatios = Field(default_factory=SplitRatios)
    pairs_per_intent: int = Field(default=10, ge=1, description="pairs rendered per benign intent and language")
    near_threshold: float = Field(default=0.8, gt=0.0, le=1.0, description="char 5-gram Jaccard for near-dups")
    casual_typos: int = Field(default=2, ge=0, description="keyboard slips added to casual-style prompts")
    languages: tuple[str, ...] = ("en", "es", "fr")


@dataclass(frozen=True)
class TopicRef:
    policy_id: str
    topic: Topic

    @property
    def key(self) -> str:
        return f"{self.policy_id}/{self.topic.id}"


def _split_counts(n: int, ratios: SplitRatios) -> dict[Split, int]:
    """Largest-remainder allocation, at least one topic per split with a non-zero ratio."""
    wanted = {Split.TRAIN: ratios.train, Split.DEV: ratios.dev, Split.TEST: ratios.test}
    active = [s for s, r in wanted.items() if r > 0]
    if n < len(active):
        raise ValueError(f"{n} topics cannot cover {len(active)} splits")
    counts = {s: max(1, int(n * wanted[s])) if s in active else 0 for s in wanted}
    order = sorted(active, key=lambda s: -(n * wanted[s] - int(n * wanted[s])))
    i = 0
    while sum(counts.values()) < n:
        counts[order[i % len(order)]] += 1
        i += 1
    while sum(counts.values()) > n:  # the minimum of one may overshoot: take back from train
        counts[Split.TRAIN] -= 1
    return counts


def assign_splits(blocks: Blocks, config: GeneratorConfig) -> dict[str, Split]:
    """Topic key -> split, stratified per policy so every policy (and pillar) is in every split."""
    out: dict[str, Split] = {}
    for policy_id in sorted(blocks.policies):
        topics = [TopicRef(policy_id, t) for t in blocks.policies[policy_id].topics]
        random.Random(f"{config.seed}:split:{policy_id}").shuffle(topics)
        counts = _split_counts(len(topics), config.ratios)
        cursor = 0
        for split in (Split.TEST, Split.DEV, Split.TRAIN):
            for ref in topics[cursor : cursor + counts[split]]:
                out[ref.key] = split
            cursor += counts[split]
    return out


def _record(
    ref: TopicRef, pack: PolicyPack, intent: Intent, label: Label, text: str, meta: dict, rid: str, pair: str,
    split: Split, language: str,
) -> PromptRecord:
    policy = pack.get(ref.policy_id)
    return PromptRecord(
        id=rid, prompt=text, label=label, pillar=policy.pillar, policy_id=ref.policy_id, language=language,
        split=split, pair_id=pair, category=ref.topic.id,
        source=Provenance(kind=SourceKind.TEAM_WRITTEN, name=SOURCE_NAME, ref=f"{pack.ref}/{ref.policy_id}"),
        metadata={"generator": {**meta, "topic": ref.topic.id, "intent": intent.id, "policy_ref": policy.ref,
                                "purpose": intent.purpose.value if intent.purpose else None}},
    )


def _text(frame: Frame, task: str, language: str, rng: random.Random, typos: int) -> str:
    text = render(frame, task, language)
    return add_noise(text, rng, typos) if frame.template.style == Style.CASUAL and typos else text


def topic_candidates(
    ref: TopicRef, pack: PolicyPack, blocks: Blocks, split: Split, config: GeneratorConfig
) -> list[PromptRecord]:
    """Render one topic: per language and benign intent, `pairs_per_intent` distinct frames.

    The harmful and benign member of a pair share the frame (and the same typo draws), so the only
    difference a model can learn from is the intent.
    """
    out: list[PromptRecord] = []
    slug = ref.policy_id.replace(".", "-")
    for language in config.languages:
        rng = random.Random(f"{config.seed}:{ref.key}:{language}")
        pool = frames(blocks.phrasings, rng)
        harmful_tasks = ref.topic.harmful.tasks(language)
        n = 0
        for benign in ref.topic.benign:
            benign_tasks = benign.tasks(language)
            for k in range(config.pairs_per_intent):
                frame = pool[n % len(pool)]
                h_task, b_task = harmful_tasks[n % len(harmful_tasks)], benign_tasks[k % len(benign_tasks)]
                noise_seed = rng.random()
                pair = f"gen-{slug}-{ref.topic.id}-{language}-{n:03d}"
                meta = {"template": frame.template.id, "style": frame.template.style.value,
                        "length": frame.template.length, "persona": frame.persona.id if frame.persona else None,
                        "context": frame.context.id if frame.context else None}
                for label, intent, task in ((Label.HARMFUL, ref.topic.harmful, h_task), (Label.BENIGN, benign, b_task)):
                    text = _text(frame, task, language, random.Random(noise_seed), config.casual_typos)
                    variant = intent.tasks(language).index(task)
                    out.append(_record(ref, pack, intent, label, text, {**meta, "variant": variant},
                                       f"{pair}-{label.value[0]}", pair, split, language))
                n += 1
    return out


def paraphrase(
    records: Sequence[PromptRecord], model: ChatModel, params: GenerationParams | None = None
) -> list[PromptRecord]:
    """Reword each prompt with a chat model, keeping intent; implausible rewrites keep the original.

    A rewrite is rejected when empty, unchanged, or far shorter/longer than the original (a refusal
    or an answer instead of a paraphrase). Accepted rewrites become `automated` provenance.
    """
    params = params or GenerationParams(temperature=0.7, max_new_tokens=256)
    out = []
    for rec in records:
        lang = LANGUAGE_NAMES.get(rec.language, rec.language)
        instruction = (f"Rewrite the following request in {lang} with different wording. Keep its meaning, intent "
                       f"and level of detail exactly. Reply with the rewritten request only.\n\n{rec.prompt}")
        new = model.generate_one(instruction, params).strip().strip('"').strip()
        ratio = len(new) / max(1, len(rec.prompt))
        problem = ("empty" if not new else "unchanged" if normalize_text(new) == normalize_text(rec.prompt)
                   else "length" if not 0.5 <= ratio <= 2.0 else None)
        gen = {**rec.metadata.get("generator", {}), "paraphrase": None if problem else model.model_id}
        if problem:
            gen["paraphrase_rejected"] = problem
            out.append(rec.model_copy(update={"metadata": {**rec.metadata, "generator": gen}}))
            continue
        source = rec.source.model_copy(update={"kind": SourceKind.AUTOMATED})
        out.append(rec.model_copy(update={"prompt": new, "source": source,
                                          "metadata": {**rec.metadata, "generator": gen}}))
    return out


def generate(
    pack: PolicyPack,
    blocks: Blocks,
    config: GeneratorConfig | None = None,
    seed_records: Sequence[PromptRecord] = (),
    paraphrase_model: ChatModel | None = None,
) -> tuple[list[PromptRecord], GenerationReport]:
    """Render every topic, optionally paraphrase, then drop cross-split near-duplicates.

    `seed_records` (normally the shipped seed set) are references only: generated test rows may not
    echo any of them, and generated train/dev rows may not echo seed dev/test rows.
    """
    config = config or GeneratorConfig()
    splits = assign_splits(blocks, config)
    candidates: list[PromptRecord] = []
    for policy_id in sorted(blocks.policies):
        for topic in blocks.policies[policy_id].topics:
            ref = TopicRef(policy_id, topic)
            candidates.extend(topic_candidates(ref, pack, blocks, splits[ref.key], config))
    if paraphrase_model is not None:
        candidates = paraphrase(candidates, paraphrase_model)
    kept, dropped = check_near_duplicates(candidates, seed_records, config.near_threshold)
    report = GenerationReport.build(
        candidates=len(candidates), kept=kept, dropped=dropped, config=config.model_dump(mode="json"),
        topic_splits={k: v.value for k, v in sorted(splits.items())}, pack_ref=pack.ref,
    )
    return kept, report


__all__ = ["DropRow", "GenerationReport", "GeneratorConfig", "SplitRatios", "assign_splits", "generate",
           "paraphrase", "topic_candidates"]
