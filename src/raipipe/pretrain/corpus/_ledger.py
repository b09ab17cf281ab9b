"""The ledger: every input document of every shard ends up kept, recontextualised, dropped or
quarantined (with its reason), and the counts in must equal the counts out before a shard is marked
done. A shard's ledger is its completion marker, so the corpus ledger is rebuilt from the markers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from raipipe.errors import RaipipeError
from raipipe.fileio import atomic_write_json
from raipipe.pretrain.corpus._documents import Document

LEDGER = "ledger.json"
OUTCOMES = ("keep", "recontextualise", "drop", "quarantine")


class LedgerError(RaipipeError, RuntimeError):
    """Counts that do not add up: some document was lost or counted twice."""

    exit_code = 1


class InputStamp(BaseModel):
    """Identifies the input file a shard was made from (size and mtime: cheap, and changes on rewrite)."""

    model_config = ConfigDict(extra="forbid")
    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> InputStamp:
        st = path.stat()
        return cls(path=str(path), size=st.st_size, mtime_ns=st.st_mtime_ns)


class ShardLedger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shard: str
    input: InputStamp
    config_digest: str
    pack: str
    frames_digest: str
    documents_in: int = 0
    blank_lines: int = Field(default=0, description="empty lines between documents: not documents")
    outcomes: dict[str, int] = Field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    quarantine_reasons: dict[str, int] = Field(default_factory=dict)
    by_policy: dict[str, dict[str, int]] = Field(default_factory=dict, description="policy → action → docs")
    outputs: list[str] = Field(default_factory=list, description="files written, relative to the output dir")

    @property
    def documents_out(self) -> int:
        return sum(self.outcomes.values())

    def count(self, doc: Document) -> None:
        self.documents_in += 1
        if not doc.ok:
            self.outcomes["quarantine"] += 1
            reason = (doc.quarantine or "").split(":")[0].split(" (")[0]
            self.quarantine_reasons[reason] = self.quarantine_reasons.get(reason, 0) + 1
            return
        if doc.action not in self.outcomes or doc.action == "quarantine":
            raise LedgerError(f"shard {self.shard}: document {doc.id} has no outcome ({doc.action!r})")
        self.outcomes[doc.action] += 1
        if doc.policy_id and doc.action != "keep":
            row = self.by_policy.setdefault(doc.policy_id, {})
            row[doc.action] = row.get(doc.action, 0) + 1

    def verify(self) -> ShardLedger:
        if self.documents_in != self.documents_out:
            raise LedgerError(f"shard {self.shard}: {self.documents_in} documents in but {self.documents_out} "
                              f"accounted for ({self.outcomes})")
        if sum(self.quarantine_reasons.values()) != self.outcomes["quarantine"]:
            raise LedgerError(f"shard {self.shard}: quarantine reasons do not add up")
        return self


class CorpusLedger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shards: list[ShardLedger]
    documents_in: int
    outcomes: dict[str, int]
    quarantine_reasons: dict[str, int]

    @classmethod
    def total(cls, shards: list[ShardLedger]) -> CorpusLedger:
        outcomes: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
        reasons: Counter[str] = Counter()
        for s in shards:
            s.verify()
            outcomes.update(s.outcomes)
            reasons.update(s.quarantine_reasons)
        return cls(shards=sorted(shards, key=lambda s: s.shard), documents_in=sum(s.documents_in for s in shards),
                   outcomes=dict(outcomes), quarantine_reasons=dict(sorted(reasons.items())))

    def write(self, out: Path) -> Path:
        if self.documents_in != sum(self.outcomes.values()):
            raise LedgerError(f"corpus: {self.documents_in} documents in, {sum(self.outcomes.values())} out")
        return atomic_write_json(out / LEDGER, self.model_dump(mode="json"), indent=2)


def read_ledger(out: Path | str) -> CorpusLedger:
    return CorpusLedger.model_validate_json((Path(out) / LEDGER).read_text(encoding="utf-8"))
