"""The corpus pipeline, datatrove-style: a reader, a list of steps that each transform a stream of
documents, and a sink; one shard at a time, so any executor can run shards anywhere. A shard is done
when its marker (its ledger) exists and matches the config, pack and frames it would be made with now."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from raipipe.fileio import atomic_write_json
from raipipe.policy.loader import PolicyPack
from raipipe.pretrain.corpus._actions import Action, Recontextualiser, decide, frames_digest, load_frames
from raipipe.pretrain.corpus._config import CorpusConfig
from raipipe.pretrain.corpus._documents import Document, list_shards, read_shard, shard_name
from raipipe.pretrain.corpus._ledger import InputStamp, ShardLedger
from raipipe.pretrain.corpus._scorers import get_scorer, shared_pack
from raipipe.pretrain.corpus._write import write_shard

Stream = Iterator[Document | int]
MARKERS = "_done"


@dataclass(frozen=True)
class Shard:
    path: Path
    name: str


class PipelineStep:
    """One transformation of a shard's stream; quarantined documents and blank-line counts pass through."""

    def run(self, items: Stream, shard: Shard, pipeline: Pipeline) -> Stream:
        raise NotImplementedError


class ScoreStep(PipelineStep):
    """Scores usable documents in batches (the encoder's unit of work), keeping stream order."""

    def run(self, items: Stream, shard: Shard, pipeline: Pipeline) -> Stream:
        cfg = pipeline.config.scorer
        scorer = get_scorer(cfg.name, cfg.params, pipeline.config.pack)
        pending: list[Document | int] = []
        usable = 0
        for item in items:
            pending.append(item)
            usable += isinstance(item, Document) and item.ok
            if usable >= cfg.batch_size:
                yield from self._flush(pending, scorer)
                pending, usable = [], 0
        yield from self._flush(pending, scorer)

    @staticmethod
    def _flush(pending: list[Document | int], scorer) -> Stream:
        docs = [d for d in pending if isinstance(d, Document) and d.ok]
        for doc, s in zip(docs, scorer.score([d.text for d in docs]), strict=True):
            doc.policy_id, doc.severity, doc.score = s.policy_id, s.severity, s.score
        yield from pending


class ActStep(PipelineStep):
    """Applies the per-severity action and writes the text that will be trained on."""

    def run(self, items: Stream, shard: Shard, pipeline: Pipeline) -> Stream:
        cfg = pipeline.config.actions
        for item in items:
            if isinstance(item, Document) and item.ok:
                item.action = decide(item.score, item.severity, cfg).value
                if item.action == Action.RECONTEXTUALISE:
                    item.out_text = pipeline.recontextualiser.wrap(item.text, item.policy_id, item.id, item.lang)
                elif item.action == Action.KEEP:
                    item.out_text = item.text
            yield item


def default_steps() -> list[PipelineStep]:
    return [ScoreStep(), ActStep()]


@dataclass
class Pipeline:
    """Reader → steps → sink for one corpus run; picklable, so executors ship it to workers."""

    config: CorpusConfig
    input_dir: Path
    out_dir: Path
    steps: list[PipelineStep] = field(default_factory=default_steps)

    @cached_property
    def pack(self) -> PolicyPack:
        return shared_pack(self.config.pack)

    @cached_property
    def recontextualiser(self) -> Recontextualiser:
        a = self.config.actions
        return Recontextualiser(load_frames(a.templates_dir), self.pack, a.default_language, a.harm_tags)

    @cached_property
    def frames_digest(self) -> str:
        return frames_digest(self.config.actions.templates_dir)

    def __getstate__(self) -> dict:  # ship the recipe, not the loaded pack and frames
        return {k: v for k, v in self.__dict__.items() if k in {"config", "input_dir", "out_dir", "steps"}}

    def shards(self) -> list[Shard]:
        paths = list_shards(self.input_dir, self.config.reader)
        return [Shard(p, shard_name(p, self.input_dir)) for p in paths]

    def marker(self, shard: Shard) -> Path:
        return self.out_dir / MARKERS / f"{shard.name}.json"

    def new_ledger(self, shard: Shard) -> ShardLedger:
        return ShardLedger(shard=shard.name, input=InputStamp.of(shard.path), config_digest=self.config.digest(),
                           pack=f"{self.pack.ref}#{self.pack.digest}", frames_digest=self.frames_digest)

    def finished(self, shard: Shard) -> ShardLedger | None:
        """The shard's ledger when its outputs are complete and were made exactly as they would be now."""
        path = self.marker(shard)
        if not path.is_file():
            return None
        done = ShardLedger.model_validate_json(path.read_text(encoding="utf-8"))
        want = self.new_ledger(shard)
        same = (done.input, done.config_digest, done.pack, done.frames_digest) == (
            want.input, want.config_digest, want.pack, want.frames_digest)
        return done if same and all((self.out_dir / f).is_file() for f in done.outputs) else None

    def run_shard(self, shard: Shard) -> ShardLedger:
        stream: Stream = read_shard(shard.path, shard.name, self.config.reader)
        for step in self.steps:
            stream = step.run(stream, shard, self)
        ledger = write_shard(stream, self.out_dir, self.new_ledger(shard), self.config.output)
        atomic_write_json(self.marker(shard), ledger.model_dump(mode="json"), indent=2)
        return ledger
