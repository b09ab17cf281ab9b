"""Demonstrations: a request and the reply the policy calls for, in the assistant's own voice.

The policy exercises talk *about* requests ("Comply or decline?", "does this break clause X?"). A small
model learns their form and then meets a request with a verdict instead of a reply, and what it learns
from them moves it towards or away from refusing on both sides at once. Demonstrations show the
behaviour itself on harmful requests *and* their benign look-alikes from the same topic, so the one
thing that separates the two replies is the intent of the request:

- a harmful request gets the policy-written refusal (opener, the policy's own reason, a safe offer);
- its benign look-alike gets the answer model's own reply, kept only where the judge scores it as
  compliance; a reply it scores as a refusal, partial or unscoreable is skipped, and the ledger says so.
- a pair is written whole or not at all: refusals without their look-alikes would teach refusing.

The default answer model (the embedded 135M one) mostly writes repetition loops in Spanish and French, so a
benign request with a team-written reply for its intent (`raipipe.data.team_replies`; the shipped file
covers the generator's Spanish and French intents) gets that reply instead; the ledger counts replies by source.
The default requests are English, Spanish and French. Where the mix repeats every demonstration alike, the
Spanish and French pairs did not help and one run of two collapsed into replaying a few-shot example; with each
refusal repeated twice as often as its look-alike's answer (`DataSource.labels`), violations fell on three seeds
of three by the probe's judge and by people, while people read over-refusal rising (benchmarks/README.md).

Requests come from dataset specs (default: the generator's train split, whose topics never reach its
dev or test split). Replies are journalled per batch, so a crashed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator
from rich.progress import Progress

from raipipe.data.records import Label, PromptRecord
from raipipe.data.team_replies import TEAM_REPLY_ORIGIN, TeamReplies, load_team_replies
from raipipe.fileio import atomic_write_json, atomic_write_lines
from raipipe.judges.base import Judge, JudgeInput, Verdict
from raipipe.models.base import ChatModel, GenerationParams, Message
from raipipe.posttrain.refusal_templates import TEMPLATE_ORIGIN, RefusalTemplates, load_templates
from raipipe.posttrain.sample import trainable_records
from raipipe.pretrain.exercises._templates import placeholders
from raipipe.pretrain.probes._texts import overlapping

ARTIFACT = "pretrain-demonstrations"
TEXTS, JOURNAL, MANIFEST = "demonstrations.jsonl", "replies.partial.jsonl", "manifest.json"
HELD_OUT_NGRAM = 6  # stricter than the probe material's own 8-gram check: near topics count too

_FRAMES = {
    "en": ["Q: {request}\nA: {reply}", "User: {request}\nAssistant: {reply}", "Request: {request}\nReply: {reply}"],
    "es": ["Q: {request}\nA: {reply}", "Usuario: {request}\nAsistente: {reply}",
           "Pregunta: {request}\nRespuesta: {reply}"],
    "fr": ["Q: {request}\nA: {reply}", "Utilisateur : {request}\nAssistant : {reply}",
           "Question : {request}\nRéponse : {reply}"],
}


class DemonstrationConfig(BaseModel):
    """What to build; saved in the manifest (with its digest) so a run can be repeated or resumed exactly."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    prompts: list[str] = Field(default=["generated:train:en", "generated:train:es", "generated:train:fr"],
                               min_length=1, description="dataset specs; public benchmarks and test splits are "
                               "refused, as for post-training (Spanish and French requests get team replies)")
    limit: int | None = Field(default=3000, ge=2, description="at most N requests, stratified by pillar x label x "
                              "language, look-alike pairs kept together (None: all)")
    team_replies: str | None = Field(default="shipped", description="team-written replies by generator intent "
                                     "(a .jsonl path, 'shipped', or None): used before the answer model")
    answer_model: str = Field(default="embedded:smollm2", description="writes the benign replies")
    judge: str = Field(default="refusal", description="keeps a benign reply only when it scores it as compliance")
    max_new_tokens: int = Field(default=96, ge=8)
    batch_size: int = Field(default=32, ge=1, description="replies generated (and journalled) per batch")
    frames: dict[str, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in _FRAMES.items()},
                                         description="language -> text frames with {request} and {reply}; a "
                                         "language without frames uses English's")
    seed: int = 0

    @field_validator("frames")
    @classmethod
    def _frames(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        if "en" not in v:
            raise ValueError("frames must include 'en', the fallback language")
        for lang, frames in v.items():
            if not frames:
                raise ValueError(f"frames[{lang!r}] is empty")
            for i, frame in enumerate(frames):
                if placeholders(frame) != {"request", "reply"}:
                    raise ValueError(f"frames[{lang!r}][{i}] must use exactly {{request}} and {{reply}}: {frame!r}")
        return v

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


class Demonstration(BaseModel):
    """One training text and where each half of it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    text: str
    label: Label
    language: str
    pillar: str
    policy_id: str | None
    reply_source: str = Field(description=f"'{TEMPLATE_ORIGIN}', '{TEAM_REPLY_ORIGIN}' or 'model:<spec>'")
    request_source: str


class DemonstrationManifest(BaseModel):
    """The ledger: every request is written or skipped with a reason; requests == written + skipped."""

    model_config = ConfigDict(extra="forbid")
    artifact: str = ARTIFACT
    config: DemonstrationConfig
    config_digest: str
    refusal_templates_digest: str
    judge: str
    team_replies_digest: str | None = None
    requests: int
    written: dict[str, int] = Field(description="label -> demonstrations written")
    reply_sources: dict[str, int] = Field(default_factory=dict, description="benign reply source -> written")
    skipped: dict[str, int] = Field(description="reason -> requests skipped")


def _pick_frame(cfg: DemonstrationConfig, record: PromptRecord) -> str:
    frames = cfg.frames.get(record.language) or cfg.frames.get(record.language.split("-")[0]) or cfg.frames["en"]
    return random.Random(f"{cfg.seed}|{record.id}").choice(frames)


def _frame(cfg: DemonstrationConfig, record: PromptRecord, reply: str) -> str:
    return _pick_frame(cfg, record).format(request=record.prompt.strip(), reply=reply.strip())


def _requests(cfg: DemonstrationConfig, held_out: Sequence[str]) -> tuple[list[PromptRecord], list[PromptRecord]]:
    """(every selected request, those whose pair shares no text with `held_out`)."""
    selected = sorted(trainable_records(cfg.prompts, cfg.limit, cfg.seed), key=lambda r: r.id)
    excluded = _held_out_pairs(selected, held_out)
    return selected, [r for r in selected if (r.pair_id or r.id) not in excluded]


def write_request_frames(cfg: DemonstrationConfig, path: Path, held_out: Sequence[str] = (),
                         labels: Sequence[Label] = (Label.HARMFUL, Label.BENIGN)) -> int:
    """Every selected request with one of `labels` in its dialogue frame up to where the reply starts: the texts
    of a behaviour anchor (`raipipe.pretrain.anchor`). Held-out pairs are left out as for demonstrations."""
    texts = [_pick_frame(cfg, r).split("{reply}")[0].format(request=r.prompt.strip()).rstrip()
             for r in _requests(cfg, held_out)[1] if r.label in labels]
    atomic_write_lines(path, (json.dumps({"text": t}, ensure_ascii=False) for t in texts))
    return len(texts)


def _read_journal(path: Path, digest: str) -> dict[str, dict]:
    """Replies of a previous run of the same config; a torn last line (a crash mid-write) is dropped."""
    done: dict[str, dict] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("config_digest") == digest:
            done[row["id"]] = row
    return done


def _reply_benign(batch: list[PromptRecord], model: ChatModel, judge: Judge, cfg: DemonstrationConfig) -> list[dict]:
    convs = [[Message(role="user", content=r.prompt)] for r in batch]
    replies = [o[0].strip() for o in model.generate(convs, GenerationParams(max_new_tokens=cfg.max_new_tokens))]
    verdicts = judge.judge([JudgeInput(id=r.id, prompt=r.prompt, response=a) for r, a in zip(batch, replies,
                                                                                             strict=True)])
    return [{"id": r.id, "reply": a, "verdict": v.verdict.value}
            for r, a, v in zip(batch, replies, verdicts, strict=True)]


def _held_out_pairs(records: list[PromptRecord], held_out: Sequence[str]) -> set[str]:
    """Pairs sharing a word 6-gram with held-out text (e.g. the probe questions): never trained on."""
    hits = {text for text, _ in overlapping([r.prompt for r in records], held_out, n=HELD_OUT_NGRAM)}
    return {r.pair_id or r.id for r in records if r.prompt in hits}


def _model_replies(cfg: DemonstrationConfig, todo: list[PromptRecord], journal: Path, done: dict[str, dict],
                   model_factory: Callable[[], ChatModel], judge: Judge, console_progress: bool) -> None:
    """Generate and judge replies for `todo`, journalling each batch (into `done` too) so a crash loses one."""
    if not todo:
        return
    model, digest = model_factory(), cfg.digest()
    try:
        with Progress(disable=not console_progress) as progress, journal.open("a", encoding="utf-8") as fh:
            task = progress.add_task("benign replies", total=len(todo))
            for i in range(0, len(todo), cfg.batch_size):
                for row in _reply_benign(todo[i:i + cfg.batch_size], model, judge, cfg):
                    done[row["id"]] = row
                    fh.write(json.dumps(row | {"config_digest": digest}, ensure_ascii=False) + "\n")
                fh.flush()
                progress.advance(task, min(cfg.batch_size, len(todo) - i))
    finally:
        model.close()


def _team_replies(cfg: DemonstrationConfig) -> TeamReplies | None:
    if cfg.team_replies is None:
        return None
    return load_team_replies(None if cfg.team_replies == "shipped" else cfg.team_replies)


def build_demonstrations(cfg: DemonstrationConfig, out: Path, model_factory: Callable[[], ChatModel],
                         judge: Judge, held_out: Sequence[str] = (), templates: tuple[RefusalTemplates, str] | None
                         = None, console_progress: bool = True) -> DemonstrationManifest:
    """Write `out/demonstrations.jsonl` and its ledger `out/manifest.json`; resumes from the reply journal.

    A pair sharing text with `held_out` (the probe questions, an evaluation set) is left out whole."""
    out.mkdir(parents=True, exist_ok=True)
    refusals, templates_digest = templates or load_templates()
    team = _team_replies(cfg)
    selected, records = _requests(cfg, held_out)
    benign_replies = {r.id: (reply, TEAM_REPLY_ORIGIN) for r in records if team and (reply := team.for_record(r))}
    done = _read_journal(out / JOURNAL, cfg.digest())
    answered = benign_replies.keys() | done.keys()
    _model_replies(cfg, [r for r in records if r.label == Label.BENIGN and r.id not in answered], out / JOURNAL,
                   done, model_factory, judge, console_progress)
    skipped: Counter[str] = Counter({"shares text with held-out material": len(selected) - len(records)} if
                                    len(records) < len(selected) else {})
    rejected = set()
    for r in records:
        if r.label != Label.BENIGN or r.id in benign_replies:
            continue
        if done[r.id]["verdict"] == Verdict.COMPLY.value:
            benign_replies[r.id] = (done[r.id]["reply"], f"model:{cfg.answer_model}")
        else:
            skipped[f"benign reply judged {done[r.id]['verdict']}"] += 1
            rejected.add(r.pair_id or r.id)
    demos: list[Demonstration] = []
    for r in records:
        if r.label == Label.HARMFUL and r.pair_id in rejected:
            skipped["harmful: its benign look-alike's reply was skipped"] += 1
            continue
        if r.label == Label.BENIGN and r.id not in benign_replies:
            continue
        if r.label == Label.HARMFUL:
            reply, origin = refusals.refusal(r.id, r.language, r.pillar, r.policy_id), TEMPLATE_ORIGIN
        else:
            reply, origin = benign_replies[r.id]
        demos.append(Demonstration(id=r.id, text=_frame(cfg, r, reply), label=r.label, language=r.language,
                                   pillar=r.pillar.value, policy_id=r.policy_id, reply_source=origin,
                                   request_source=r.source.name))
    atomic_write_lines(out / TEXTS, (d.model_dump_json() for d in demos))
    manifest = DemonstrationManifest(
        config=cfg, config_digest=cfg.digest(), refusal_templates_digest=templates_digest, judge=judge.name,
        team_replies_digest=team.digest if team else None, requests=len(selected),
        written=dict(Counter(d.label.value for d in demos)), skipped=dict(skipped),
        reply_sources=dict(Counter(d.reply_source for d in demos if d.label == Label.BENIGN)))
    atomic_write_json(out / MANIFEST, manifest.model_dump(mode="json"), indent=2)
    return manifest
