"""Step 1 of the loop: the model under training samples several answers per prompt.

Candidates come from the model itself: some plain, some with a policy-derived safety system prompt
(context distillation), so that a prompt the base model always answers still gets a refusal among
its candidates to rank. Only trainable records are used (never the test split, never a public
benchmark). Resumable: prompts whose candidates are stored are not sampled again."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select

from raipipe.data.io import assert_trainable, dataset_hash
from raipipe.data.records import Label, PromptRecord, Split
from raipipe.data.specs import resolve_dataset
from raipipe.data.team_replies import load_team_replies
from raipipe.models.base import ChatModel, GenerationParams, Message
from raipipe.policy.loader import PolicyPack, load_pack
from raipipe.posttrain.pair_selection import GREEDY_ORIGIN
from raipipe.posttrain.reference_answers import (
    OPENED_ORIGIN,
    REFERENCE_ORIGIN,
    load_answer_openers,
    load_reference_answers,
)
from raipipe.posttrain.refusal_templates import TEMPLATE_ORIGIN, load_templates
from raipipe.posttrain.resumable import AddedLater, stable_dump
from raipipe.store.posttrain_tables import Candidate, SampleBatch

console = Console(stderr=True)
PLAIN, DISTILLED, GREEDY = "policy-model", "policy-model+safety-system-prompt", GREEDY_ORIGIN


class SampleSettings(BaseModel, AddedLater):
    model_config = ConfigDict(extra="forbid")
    # added after runs recorded their steps' digests: at their default, those runs resume
    ADDED_LATER: ClassVar[frozenset[str]] = frozenset({"team_reply_max_prompt_tokens", "sample_written_prompts",
                                                    "team_answer_openers", "answer_openers_file",
                                                    "team_reply_twins"})
    dataset: str | list[str] = Field(
        default="seed:train", description="trainable prompts (never the test split): one dataset spec or several, "
        "e.g. [seed:train, generated:train]")
    num_samples: int = Field(default=4, ge=2, description="candidates per prompt")
    distilled_samples: int = Field(default=2, ge=0, description="of which sampled with the safety system prompt")
    temperature: float = Field(default=0.9, gt=0, description="> 0: candidates must differ")
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_new_tokens: int = Field(default=64, ge=8)
    limit: int | None = Field(default=None, ge=2, description="at most N prompts (pairs kept together)")
    seed: int = 0
    chunk_size: int = Field(default=32, ge=1)
    safety_system_prompt: str | None = Field(default=None, description="default: derived from the policy pack")
    greedy_sample: bool = Field(
        default=False, description="add the model's greedy answer (origin policy-model-greedy): the behaviour "
        "evaluation sees, so pairs can target it (pair_strategy: greedy-anchored)")
    greedy_max_new_tokens: int | None = Field(
        default=None, ge=8, description="length of the greedy answer (default max_new_tokens); the judge decides "
        "from it which side of a pair the greedy answer goes on, and very short answers read as refusals more often")
    policy_refusal: bool = Field(
        default=True, description="add one policy-written refusal per prompt (origin policy-template-refusal): "
        "preferred on harmful prompts, dispreferred on their benign look-alikes")
    refusal_templates: Path | None = Field(default=None, description="templates YAML; default: the shipped one")
    reference_answers: bool = Field(
        default=False, description="add the team-written helpful answer of each benign prompt that has one "
        "(origin team-reference): a fluent answer to prefer over a refusal where the model's own are word salad")
    reference_answers_file: Path | None = Field(
        default=None, description="reference answers JSONL (record_id, language, answer, author); default: the "
        "shipped one, written for seed:train's Spanish and French benign prompts")
    team_replies: bool = Field(
        default=False, description="add the team-written reply to the intent of each benign generator prompt "
        "(generated:…) that has one, as a team-reference candidate: far more fluent Spanish and French answers "
        "than seed:train's reference answers, for requests of the same topics and wording as harmful ones")
    team_replies_file: Path | None = Field(
        default=None, description="team replies JSONL by generator intent; default: the shipped one "
        "(raipipe.data.team_replies)")
    team_reply_prompts: int = Field(
        default=0, ge=0, description="with team_replies: also train on this many benign generator train prompts "
        "per language of the replies (policies taken in turn, the same prompts every run), each with its reply")
    team_reply_twins: bool = Field(
        default=False, description="with team_reply_prompts: also train on each added prompt's harmful twin (the "
        "generator request of the same topic and wording with a harmful intent), so the added prompts come as "
        "look-alike pairs that differ only in intent, as seed:train's do, rather than as benign prompts alone. "
        "Measured on one seed, it made Spanish and French over-refusal worse (benchmarks/README.md)")
    sample_written_prompts: bool = Field(
        default=True, description="false: a prompt with a team-written answer (reference_answers, team_replies) "
        "gets no sampled answers, only the greedy one, the policy refusal and the team's. Its pairs mostly set the "
        "team answer and the greedy answer against the refusal; by token count its samples are about a third of "
        "the default run's sampling work. Whether dropping them changes the trained model is not measured")
    team_reply_max_prompt_tokens: int | None = Field(
        default=None, ge=8, description="pick only team-reply prompts whose chat-formatted prompt is at most this "
        "many tokens of the sampled model: DPO leaves out a pair whose prompt fills its max_length, so a longer "
        "prompt would be sampled and then never trained on")
    team_answer_openers: list[str] = Field(
        default=[], description="languages whose team-written answers (reference_answers, team_replies) start "
        "with a short helpful sentence from answer_openers_file, and whose harmful prompts get the greedy answer "
        "with that sentence before it as a candidate (origin policy-model-greedy+opener, put below a refusal): a "
        "policy refusal opens with one of a few sentences, so where the model cannot write a language its "
        "refusal's start outweighs any one varied answer's and greedy decoding refuses; the opener evens that, "
        "and is rejected on harmful prompts as the refusal is on benign ones")
    answer_openers_file: Path | None = Field(default=None, description="openers YAML; default: the shipped one")

    @model_validator(mode="after")
    def _prompts_need_replies(self) -> SampleSettings:
        if self.team_reply_prompts and not self.team_replies:
            raise ValueError("team_reply_prompts needs team_replies: true (the prompts are there for their replies)")
        if self.team_reply_twins and not self.team_reply_prompts:
            raise ValueError("team_reply_twins adds the twins of the prompts team_reply_prompts adds; set both")
        if self.team_reply_max_prompt_tokens and not self.team_reply_prompts:
            raise ValueError("team_reply_max_prompt_tokens only limits the prompts team_reply_prompts adds; set both")
        if not self.sample_written_prompts and not self.greedy_sample:
            raise ValueError("sample_written_prompts: false needs greedy_sample: true, or the model's own behaviour "
                             "is missing from those prompts' pairs")
        if self.team_answer_openers and not (self.reference_answers or self.team_replies):
            raise ValueError("team_answer_openers opens the team's written answers; set reference_answers or "
                             "team_replies")
        if self.team_answer_openers and not self.greedy_sample:
            raise ValueError("team_answer_openers needs greedy_sample: true (harmful prompts get the greedy answer "
                             "with the opener before it)")
        return self


def safety_system_prompt(pack: PolicyPack) -> str:
    """A short system prompt a 135M model can follow, listing what the pack disallows."""
    titles = "; ".join(p.title.lower() for p in sorted(pack.policies.values(), key=lambda p: p.id))
    return (
        "You are a careful, helpful assistant. Politely refuse requests that could cause harm, and say briefly "
        f"why, offering a safe alternative. Harmful topics include: {titles}. Answer harmless questions fully "
        "and helpfully, even when they contain alarming words."
    )


def trainable_records(spec: str | list[str], limit: int | None, seed: int) -> list[PromptRecord]:
    from raipipe.evaluate.runner import stratified_limit  # lazy: the runner brings the store and judges

    records = [r for one in ([spec] if isinstance(spec, str) else spec) for r in resolve_dataset(one)[1]]
    dupes = sorted(k for k, n in Counter(r.id for r in records).items() if n > 1)
    if dupes:
        raise ValueError(f"{spec}: record ids repeat across the datasets (e.g. {dupes[0]})")
    assert_trainable(records)
    leaked = [r.id for r in records if r.split == Split.TEST]
    if leaked:
        raise ValueError(f"{spec}: {len(leaked)} test-split records (e.g. {leaked[0]}) must never be trained on")
    return stratified_limit(records, limit, seed) if limit else records


TEAM_REPLY_DATASET = "generated:train"  # the prompts team replies were written for

# added after batches were first sampled (before step digests existed): at their default, left out of batch ids
MANIFEST_ADDED = frozenset({"greedy_sample", "greedy_max_new_tokens", "reference_answers", "reference_answers_file",
                            "team_replies", "team_replies_file", "team_reply_prompts"})


def harmful_twins(pool: list[PromptRecord], benign: list[PromptRecord], exclude: set[str]) -> list[PromptRecord]:
    """The harmful record of each benign record's look-alike pair, in the benign records' order."""
    by_pair = {r.pair_id: r for r in pool if r.label == Label.HARMFUL and r.pair_id and r.id not in exclude}
    return [by_pair[r.pair_id] for r in benign if r.pair_id in by_pair]


def _manifest_settings(settings: SampleSettings) -> dict:
    """Settings as stored in the batch manifest: batches sampled before an option existed keep their id."""
    return stable_dump(settings, also_added=MANIFEST_ADDED)


def batch_id_for(manifest: dict) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


def prompt_token_counter(model: ChatModel) -> Callable[[str], int]:
    """Tokens of a user prompt as the model sees it (chat template and generation prompt included): the
    length the trainer compares with its limits. Needs a local model with a tokenizer."""
    tokenizer, render = getattr(model, "tokenizer", None), getattr(model, "render", None)
    if tokenizer is None or render is None:
        raise ValueError(f"model {model.model_id!r} has no local tokenizer to count prompt tokens with "
                         "(team_reply_max_prompt_tokens needs one)")
    return lambda prompt: len(tokenizer(render([Message(role="user", content=prompt)]),
                                        add_special_tokens=False)["input_ids"])


def _prompt_fits(model: ChatModel, limit: int | None) -> Callable[[PromptRecord], bool] | None:
    if limit is None:
        return None
    count = prompt_token_counter(model)
    return lambda record: count(record.prompt) <= limit


def sample_candidates(model: ChatModel, settings: SampleSettings, sessions, pack: PolicyPack | None = None) -> str:
    """Sample and store candidates; returns the batch id (the same settings resume the same batch)."""
    pack = pack or load_pack()
    records = trainable_records(settings.dataset, settings.limit, settings.seed)
    system = settings.safety_system_prompt or safety_system_prompt(pack)
    templates, templates_digest = (load_templates(settings.refusal_templates) if settings.policy_refusal
                                   else (None, None))
    references = load_reference_answers(settings.reference_answers_file) if settings.reference_answers else None
    if references:
        for r in records:
            references.for_record(r)  # fail before sampling on a harmful or wrong-language reference
    replies = load_team_replies(settings.team_replies_file) if settings.team_replies else None
    openers, openers_digest = (load_answer_openers(settings.answer_openers_file, settings.team_answer_openers)
                               if settings.team_answer_openers else (None, None))
    if replies and settings.team_reply_prompts:
        have = {r.id for r in records}
        pool = trainable_records(TEAM_REPLY_DATASET, None, settings.seed)
        picked = replies.pick_prompts(pool, settings.team_reply_prompts, exclude=have,
                                      fits=_prompt_fits(model, settings.team_reply_max_prompt_tokens))
        records += picked + (harmful_twins(pool, picked, have) if settings.team_reply_twins else [])
    manifest = {
        "model": model.model_id, "dataset": settings.dataset, "dataset_hash": dataset_hash(records),
        "settings": _manifest_settings(settings), "system_prompt": system if settings.distilled_samples else None,
        "policy_pack": pack.ref, "policy_versions": pack.versions(),
        **({"refusal_templates_digest": templates_digest} if templates else {}),
        **({"reference_answers_digest": references.digest} if references else {}),
        **({"team_replies_digest": replies.digest} if replies else {}),
        **({"answer_openers_digest": openers_digest} if openers else {}),
    }
    batch_id = batch_id_for(manifest)
    with sessions.begin() as s:
        if s.get(SampleBatch, batch_id) is None:
            s.add(SampleBatch(id=batch_id, manifest=manifest))
    with sessions() as s:
        done = set(s.scalars(select(Candidate.record_id).where(Candidate.batch_id == batch_id)))
    todo = [r for r in records if r.id not in done]
    n_plain = settings.num_samples - settings.distilled_samples
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task(f"sample ×{settings.num_samples}", total=len(records), completed=len(records) - len(todo))
        for start in range(0, len(todo), settings.chunk_size):
            chunk = todo[start : start + settings.chunk_size]
            outs: list[list[tuple[str, str]]] = [[] for _ in chunk]
            written = [[openers.open(r.id, r.language, a) if openers else a
                        for src in (references, replies) if src and (a := src.for_record(r)) is not None]
                       for r in chunk]  # the team's answers of each prompt
            sampled = [i for i in range(len(chunk)) if settings.sample_written_prompts or not written[i]]
            for origin, k, sys_prompt in ((PLAIN, n_plain, None), (DISTILLED, settings.distilled_samples, system)):
                if k == 0 or not sampled:
                    continue
                convs = [([Message(role="system", content=sys_prompt)] if sys_prompt else [])
                         + [Message(role="user", content=chunk[i].prompt)] for i in sampled]
                params = GenerationParams(max_new_tokens=settings.max_new_tokens, temperature=settings.temperature,
                                          top_p=settings.top_p, num_return_sequences=k,
                                          seed=settings.seed + start + (k if sys_prompt else 0))
                for i, texts in zip(sampled, model.generate(convs, params), strict=True):
                    outs[i] += [(origin, t) for t in texts]
            if settings.greedy_sample:
                convs = [[Message(role="user", content=r.prompt)] for r in chunk]
                greedy = GenerationParams(max_new_tokens=settings.greedy_max_new_tokens or settings.max_new_tokens,
                                          temperature=0.0)
                for i, texts in enumerate(model.generate(convs, greedy)):
                    outs[i].append((GREEDY, texts[0]))
                    if openers and chunk[i].label == Label.HARMFUL and openers.covers(chunk[i].language):
                        outs[i].append((OPENED_ORIGIN, openers.open(chunk[i].id, chunk[i].language, texts[0])))
            if templates:
                for i, r in enumerate(chunk):
                    outs[i].append((TEMPLATE_ORIGIN, templates.refusal(r.id, r.language, r.pillar, r.policy_id)))
            for i, answers in enumerate(written):
                outs[i] += [(REFERENCE_ORIGIN, answer) for answer in answers]
            with sessions.begin() as s:
                for r, cands in zip(chunk, outs, strict=True):
                    for idx, (origin, text) in enumerate(cands):
                        s.add(Candidate(batch_id=batch_id, record_id=r.id, index=idx, prompt=r.prompt,
                                        label=r.label.value, pillar=r.pillar.value, language=r.language,
                                        policy_id=r.policy_id, text=text, origin=origin))
            bar.advance(task, len(chunk))
    return batch_id
