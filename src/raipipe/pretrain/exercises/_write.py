"""Sharded JSONL output plus a manifest, readable by `datasets.load_dataset("json", ...)`.

The manifest carries `policy_pack` and `policy_versions` like every other raipipe artifact, so
`raipipe.policy.stale_artifacts` can flag the whole set; `stale_exercises` then says which records.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from raipipe.data.io import write_lines
from raipipe.policy.loader import PolicyPack
from raipipe.pretrain.exercises._documents import Passage
from raipipe.pretrain.exercises._generate import ExerciseConfig
from raipipe.pretrain.exercises._records import Exercise

MANIFEST = "manifest.json"
SHARD_GLOB = "exercises-*-of-*.jsonl"
ARTIFACT = "pretrain-exercises"


class ShardInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str
    records: int
    sha256: str


class DocumentInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    passages: int
    digest: str = Field(description="digest over the document's passage digests")


class ExerciseManifest(BaseModel):
    """What was generated from what: pack version, templates, config, documents, shards and counts."""

    model_config = ConfigDict(extra="forbid")
    artifact: str = ARTIFACT
    name: str
    policy_pack: str
    policy_pack_version: str
    policy_pack_digest: str
    policy_versions: dict[str, str]
    templates_digest: str
    config: ExerciseConfig
    documents: list[DocumentInfo] = Field(default_factory=list)
    paraphrase_model: str | None = None
    shards: list[ShardInfo]
    counts: dict[str, dict[str, int]] = Field(description="kind → language → records")
    total: int


def counts_by_kind_language(records: list[Exercise]) -> dict[str, dict[str, int]]:
    c = Counter((r.kind.value, r.language) for r in records)
    out: dict[str, dict[str, int]] = {}
    for (kind, lang), n in sorted(c.items()):
        out.setdefault(kind, {})[lang] = n
    return out


def document_infos(passages: list[Passage]) -> list[DocumentInfo]:
    by_doc: dict[str, list[str]] = {}
    for p in passages:
        by_doc.setdefault(p.document, []).append(p.digest)
    return [DocumentInfo(path=d, passages=len(ds), digest=hashlib.sha256("".join(ds).encode()).hexdigest()[:16])
            for d, ds in sorted(by_doc.items())]


def write_exercises(records: list[Exercise], out_dir: Path | str, pack: PolicyPack, config: ExerciseConfig,
                    templates_digest: str, passages: list[Passage] | None = None, shard_size: int = 5000,
                    paraphrase_model: str | None = None) -> ExerciseManifest:
    """Shuffle (seeded) and shard the records; replace earlier shards in `out_dir`; write the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(SHARD_GLOB):
        old.unlink()
    ordered = sorted(records, key=lambda r: r.id)
    random.Random(config.seed).shuffle(ordered)
    n = max(1, -(-len(ordered) // max(1, shard_size)))
    shards = []
    for i in range(n):
        chunk = ordered[i * shard_size : (i + 1) * shard_size]
        lines = [json.dumps(r.model_dump(mode="json"), ensure_ascii=False) for r in chunk]
        name = f"exercises-{i:05d}-of-{n:05d}.jsonl"
        write_lines(out / name, lines)
        digest = hashlib.sha256((out / name).read_bytes()).hexdigest()
        shards.append(ShardInfo(file=name, records=len(lines), sha256=digest))
    manifest = ExerciseManifest(
        name=f"{ARTIFACT}:{pack.ref}", policy_pack=pack.ref, policy_pack_version=pack.info.version,
        policy_pack_digest=pack.digest, policy_versions=pack.versions(), templates_digest=templates_digest,
        config=config, documents=document_infos(passages or []), paraphrase_model=paraphrase_model,
        shards=shards, counts=counts_by_kind_language(records), total=len(records),
    )
    write_lines(out / MANIFEST, [manifest.model_dump_json(indent=2)])
    return manifest


def read_manifest(out_dir: Path | str) -> ExerciseManifest:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: not an exercises folder")
    return ExerciseManifest.model_validate_json(path.read_text(encoding="utf-8"))


def shard_paths(out_dir: Path | str) -> list[Path]:
    """The shard files listed in the manifest, in order (what to pass to `datasets` as data_files)."""
    return [Path(out_dir) / s.file for s in read_manifest(out_dir).shards]


def read_exercises(out_dir: Path | str) -> list[Exercise]:
    records = []
    for path in shard_paths(out_dir):
        with path.open(encoding="utf-8") as fh:
            records += [Exercise.model_validate_json(line) for line in fh if line.strip()]
    return records
