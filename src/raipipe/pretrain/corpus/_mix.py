"""The mixer: a training set with target proportions of general text, policy exercises and
recontextualised text, streamed (one counting pass, one writing pass; constant memory) and reported
as achieved vs target, because a small source can make a target unreachable without repeats."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from raipipe.errors import UsageError
from raipipe.fileio import atomic_open, atomic_write_json
from raipipe.pretrain.exercises import shard_paths

MIX_REPORT = "mix_report.json"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MixSource(_M):
    name: str
    files: list[Path]
    proportion: float = Field(gt=0, description="target share of documents (normalised over sources)")
    action: str | None = Field(default=None, description="only rows whose `action` field equals this")


class MixConfig(_M):
    total: int | None = Field(default=None, ge=1, description="documents wanted; default: the most the "
                              "sources allow at the target proportions without repeats")
    allow_repeat: bool = Field(default=False, description="cycle a source that runs short of its target")
    shard_size: int = Field(default=10000, ge=1)


class SourceReport(_M):
    name: str
    available: int
    target: float
    taken: int
    achieved: float
    achieved_chars: float
    repeated: bool


class MixReport(_M):
    total: int
    sources: list[SourceReport]
    files: list[str]

    @field_validator("sources")
    @classmethod
    def _named(cls, v: list[SourceReport]) -> list[SourceReport]:
        return sorted(v, key=lambda s: s.name)


def _rows(src: MixSource) -> Iterator[dict]:
    for path in src.files:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                row = json.loads(line)
                if src.action is None or row.get("action") == src.action:
                    yield row


def _spread(src: MixSource, available: int, want: int) -> Iterator[dict]:
    """`want` rows spread evenly over the source (not its first rows); cycles when want > available."""
    while want > 0 and available > 0:
        n = min(want, available)
        for i, row in enumerate(_rows(src)):
            if (i + 1) * n // available > i * n // available:
                yield row
        want -= n


def _targets(sources: list[MixSource], available: dict[str, int], cfg: MixConfig) -> dict[str, int]:
    total_p = sum(s.proportion for s in sources)
    share = {s.name: s.proportion / total_p for s in sources}
    n = cfg.total if cfg.total is not None else int(min(available[k] / share[k] for k in share))
    want = {k: round(n * share[k]) for k in share}
    return want if cfg.allow_repeat else {k: min(v, available[k]) for k, v in want.items()}


def mix(sources: list[MixSource], out_dir: Path | str, config: MixConfig | None = None) -> MixReport:
    """Interleave sources (smooth weighted round-robin) into `mix-NNNNN.jsonl` shards plus a report."""
    cfg, out = config or MixConfig(), Path(out_dir)
    if len({s.name for s in sources}) != len(sources) or not sources:
        raise UsageError("mix sources need distinct names (and at least one source)")
    available = {s.name: sum(1 for _ in _rows(s)) for s in sources}
    want = _targets(sources, available, cfg)
    streams = {s.name: _spread(s, available[s.name], want[s.name]) for s in sources}
    total = sum(want.values())
    taken, chars = dict.fromkeys(want, 0), dict.fromkeys(want, 0)
    files: list[str] = []
    rows = _interleave(streams, want, total, taken, chars)
    for old in out.glob("mix-*.jsonl"):
        old.unlink()
    for shard in range(max(1, -(-total // cfg.shard_size))):
        name = f"mix-{shard:05d}.jsonl"
        with atomic_open(out / name) as fh:
            for _ in range(min(cfg.shard_size, total - shard * cfg.shard_size)):
                fh.write(json.dumps(next(rows), ensure_ascii=False) + "\n")
        files.append(name)
    all_chars = sum(chars.values()) or 1
    share = {s.name: s.proportion / sum(x.proportion for x in sources) for s in sources}
    report = MixReport(total=total, files=files, sources=[
        SourceReport(name=k, available=available[k], target=round(share[k], 6), taken=taken[k],
                     achieved=round(taken[k] / max(1, total), 6), achieved_chars=round(chars[k] / all_chars, 6),
                     repeated=want[k] > available[k]) for k in want])
    atomic_write_json(out / MIX_REPORT, report.model_dump(mode="json"), indent=2)
    return report


def _interleave(streams: dict[str, Iterator[dict]], want: dict[str, int], total: int, taken: dict[str, int],
                chars: dict[str, int]) -> Iterator[dict]:
    """At each position, the source furthest behind its quota so far: every prefix is near the mix."""
    for k in range(total):
        name = max(want, key=lambda s: (want[s] * (k + 1) / total - taken[s]) if taken[s] < want[s] else -1e18)
        row = next(streams[name])
        taken[name] += 1
        chars[name] += len(row.get("text", ""))
        yield {"id": str(row.get("id", "")), "text": row.get("text", ""), "source": name}


def corpus_sources(corpus_out: Path | str, proportions: dict[str, float],
                   exercises_dir: Path | str | None = None) -> list[MixSource]:
    """Sources named `general` (kept text), `recontextualised` and `exercises` from a corpus output
    folder and an exercises folder (`raipipe pretrain exercises`)."""
    data = sorted((Path(corpus_out) / "data").glob("*.jsonl"))
    known: dict[str, tuple[list[Path], str | None]] = {"general": (data, "keep"),
                                                       "recontextualised": (data, "recontextualise")}
    if exercises_dir is not None:
        known["exercises"] = (shard_paths(exercises_dir), None)
    unknown = sorted(set(proportions) - set(known))
    if unknown:
        raise UsageError(f"unknown mix source(s) {unknown}; known: {sorted(known)}"
                         + ("" if exercises_dir else " (exercises needs --exercises DIR)"))
    return [MixSource(name=k, files=known[k][0], proportion=p, action=known[k][1]) for k, p in proportions.items()]
