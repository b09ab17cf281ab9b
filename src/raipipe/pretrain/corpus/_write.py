"""The shard sink: streams training rows to JSONL and Parquet, every decision to a decisions file and
bad input to a quarantine file, all through atomic temporaries, so a crash leaves either a shard's
complete outputs or none of them (the marker is written only after all of them are in place)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from raipipe.fileio import atomic_open, atomic_path
from raipipe.pretrain.corpus._config import OutputConfig
from raipipe.pretrain.corpus._documents import Document
from raipipe.pretrain.corpus._ledger import ShardLedger

DATA, DECISIONS, QUARANTINE = "data", "decisions", "quarantine"

ROW_SCHEMA = pa.schema([
    ("id", pa.string()), ("text", pa.string()), ("action", pa.string()), ("policy_id", pa.string()),
    ("severity", pa.string()), ("score", pa.float64()), ("lang", pa.string()), ("source", pa.string()),
    ("line", pa.int64()),
])


def training_row(doc: Document, shard: str) -> dict[str, Any]:
    """Same columns and types in every shard (empty strings, not nulls), so `datasets` can concatenate."""
    return {"id": doc.id, "text": doc.out_text, "action": doc.action, "policy_id": doc.policy_id,
            "severity": doc.severity, "score": doc.score, "lang": doc.lang or "", "source": shard, "line": doc.line}


def decision_row(doc: Document) -> dict[str, Any]:
    action = doc.action if doc.ok else "quarantine"
    return {"id": doc.id, "line": doc.line, "action": action, "policy_id": doc.policy_id,
            "severity": doc.severity, "score": doc.score, "reason": doc.quarantine or ""}


class _ParquetSink:
    def __init__(self, path: Path, batch: int):
        self.writer = pq.ParquetWriter(path, ROW_SCHEMA)
        self.rows: list[dict[str, Any]] = []
        self.batch = batch

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=ROW_SCHEMA))
            self.rows = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


def _line(fh: IO[Any], row: dict[str, Any]) -> None:
    fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def output_files(shard: str, config: OutputConfig) -> list[str]:
    data = [f"{DATA}/{shard}.{fmt}" for fmt in config.formats]
    return [*data, f"{DECISIONS}/{shard}.jsonl", f"{QUARANTINE}/{shard}.jsonl"]


def write_shard(items: Iterable[Document | int], out: Path, ledger: ShardLedger, config: OutputConfig) -> ShardLedger:
    """Consume the pipeline's stream for one shard, counting every item into `ledger`."""
    name = ledger.shard
    with ExitStack() as stack:
        jsonl = (stack.enter_context(atomic_open(out / DATA / f"{name}.jsonl"))
                 if "jsonl" in config.formats else None)
        parquet = None
        if "parquet" in config.formats:
            tmp = stack.enter_context(atomic_path(out / DATA / f"{name}.parquet"))
            parquet = _ParquetSink(tmp, config.parquet_batch)
            stack.callback(parquet.close)  # runs before the rename (callbacks unwind in reverse order)
        decisions = stack.enter_context(atomic_open(out / DECISIONS / f"{name}.jsonl"))
        quarantine = stack.enter_context(atomic_open(out / QUARANTINE / f"{name}.jsonl"))
        for item in items:
            if isinstance(item, int):
                ledger.blank_lines += 1
                continue
            ledger.count(item)
            _line(decisions, decision_row(item))
            if not item.ok:
                _line(quarantine, {"id": item.id, "line": item.line, "reason": item.quarantine, "raw": item.raw})
            elif item.action != "drop":
                row = training_row(item, name)
                if jsonl is not None:
                    _line(jsonl, row)
                if parquet is not None:
                    parquet.add(row)
        ledger.verify()  # inside the block: a shard that does not add up leaves no outputs behind
    ledger.outputs = output_files(name, config)
    return ledger
