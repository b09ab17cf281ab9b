"""Seeds of a red-team run: the plain-request screen (which harmful seeds the target already refuses),
benign partners (the allowed look-alike of each harmful seed, needed for the benign twins of findings),
and the run folder's seed file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from raipipe.data.io import load_jsonl, write_jsonl
from raipipe.data.records import Label, PromptRecord
from raipipe.judges.base import Judge, JudgeInput, Verdict
from raipipe.models.base import ChatModel, GenerationParams, Message

SEEDS_FILE = "seeds.jsonl"
SCREEN_FILE = "screen.jsonl"


def read_manifest(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def benign_partner(seed: PromptRecord, pool: Sequence[PromptRecord]) -> PromptRecord | None:
    """The benign look-alike of a harmful seed: same `pair_id` (a shared group id, as in the seed set), or
    the record whose id the seed's `pair_id` names."""
    if not seed.pair_id:
        return None
    for r in pool:
        if r.label == Label.BENIGN and r.id != seed.id and (r.pair_id == seed.pair_id or r.id == seed.pair_id):
            return r
    return None


def partners_of(attacked: Sequence[PromptRecord], pool: Sequence[PromptRecord]) -> list[PromptRecord]:
    benign = [r for r in pool if r.label == Label.BENIGN]
    found = (benign_partner(s, benign) for s in attacked)
    out: dict[str, PromptRecord] = {}
    for p in found:
        if p is not None:
            out.setdefault(p.id, p)
    return list(out.values())


def write_seeds(path: Path, records: Sequence[PromptRecord]) -> None:
    write_jsonl(records, path)


def read_seeds(run_dir: Path) -> list[PromptRecord]:
    path = run_dir / SEEDS_FILE
    return load_jsonl(path).records if path.is_file() else []


def _read_screen(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line: that seed is screened again
        out[row["seed_id"]] = row
    return out


def screen_seeds(target: ChatModel, harmful: Sequence[PromptRecord], judge: Judge, out_dir: Path,
                 params: GenerationParams, chunk: int) -> set[str]:
    """Ask the target each harmful seed plainly and return the ids it refused. Answers are kept in
    `screen.jsonl`, so a resumed run screens only what it had not. Unscoreable answers are not refusals."""
    path = out_dir / SCREEN_FILE
    done = _read_screen(path)
    todo = [s for s in harmful if s.id not in done]
    step = max(chunk, 8)
    for i in range(0, len(todo), step):
        batch = todo[i:i + step]
        answers = target.generate([[Message(role="user", content=s.prompt)] for s in batch], params)
        verdicts = judge.judge([JudgeInput(id=s.id, prompt=s.prompt, response=a[0]) for s, a in zip(batch, answers,
                                                                                                   strict=True)])
        rows = [{"seed_id": s.id, "response": a[0], "verdict": v.verdict.value, "judge_id": v.judge_id}
                for s, a, v in zip(batch, answers, verdicts, strict=True)]
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        done.update({r["seed_id"]: r for r in rows})
    return {sid for sid, row in done.items() if row["verdict"] == Verdict.REFUSE.value}
