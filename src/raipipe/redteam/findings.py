"""Findings → a new version of the model-breaking dataset.

Successful attacks are judged again (the violation judge, then harm specificity when available),
deduplicated against each other and the previous version, and written as PromptRecords with full
provenance in `metadata["redteam"]`. Every finding gets a benign twin: the same wrappers (replayed with
the same step seeds) around the seed's allowed look-alike, so training on findings teaches "refuse the
request", not "refuse the wrapper". Rows split train/test by seed family, stably across versions, so a
re-attack on a held-out seed measures something the model never trained on.

Findings a person flagged on the red-team page (`raipipe redteam web`) land here the same way, with
provenance "human red team" (red teamer, note, flagged turn, conversation). Their twin is the benign
look-alike the red teamer wrote when flagging; a flag without one is promoted without a twin and listed
in the manifest's `without_twin`, never given a made-up twin. A re-judging judge records its verdict on a
human finding but does not drop it: the person's judgement is the label, and the two disagreeing is
worth seeing. A human red-team folder grows after it was promoted, so it may be promoted again: only
flags not yet in the dataset are added.

Layout: `ROOT/v1/{train,test}.jsonl + manifest.json`, `ROOT/v2/...`; each version holds all rows so far."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from raipipe.data.dedup import dedup
from raipipe.data.io import dataset_hash, load_jsonl, write_jsonl
from raipipe.data.records import Label, PromptRecord, Provenance, SourceKind, Split
from raipipe.errors import InputFileError, SpecError, UsageError
from raipipe.judges.base import Judge, JudgeInput, Verdict
from raipipe.models.base import ChatModel, Message
from raipipe.redteam.records import HUMAN_PROVENANCE, HUMAN_STRATEGY, AttackOutcome, AttackRecord, replay
from raipipe.redteam.run_state import read_attacks_tolerant, write_json
from raipipe.redteam.seeds import benign_partner, read_manifest, read_seeds

MANIFEST = "manifest.json"
SPLITS = (Split.TRAIN, Split.TEST)
_VERSION = re.compile(r"^v(\d+)$")


class Rater(Protocol):
    """The harm-specificity judge's interface (raipipe.judges.specificity.SpecificityJudge)."""

    judge_id: str

    def rate(self, items: list[JudgeInput]) -> list[Any]: ...


class PromoteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="redteam-findings", description="dataset name, the rows' source name")
    test_fraction: float = Field(default=0.3, ge=0.0, le=1.0, description="share of seed families held out")
    near_threshold: float | None = Field(default=0.9, gt=0.0, le=1.0,
                                         description="near-duplicate Jaccard threshold; None: exact only")
    include_partial: bool = Field(default=True, description="promote partial compliance too")
    split_salt: str = Field(default="redteam-split-v1", description="changing it reshuffles every split")


class DatasetManifest(BaseModel):
    name: str
    version: int
    parent_version: int | None
    created_at: datetime
    runs: list[str]
    target_model_ids: list[str]
    policy: list[dict[str, str]]
    judges: dict[str, str | None]
    counts: dict[str, Any]
    files: dict[str, dict[str, Any]]
    dropped: list[dict] = Field(default_factory=list, description="findings dropped as duplicates")
    without_twin: list[dict] = Field(default_factory=list, description="findings kept without a benign twin")
    config: PromoteConfig


def split_of(seed: PromptRecord, test_fraction: float, salt: str) -> Split:
    """Train or test for a whole seed family (harmful seed and benign partner share a pair_id)."""
    key = f"{salt}:{seed.pair_id or seed.id}".encode()
    return Split.TEST if int(hashlib.sha256(key).hexdigest()[:8], 16) / 2**32 < test_fraction else Split.TRAIN


def versions(root: Path) -> list[int]:
    return sorted(int(m[1]) for p in root.glob("v*") if (m := _VERSION.match(p.name)) and (p / MANIFEST).is_file())


def _load_run(run_dir: Path) -> tuple[dict, list[AttackRecord], dict[str, PromptRecord]]:
    manifest = read_manifest(run_dir / "run.json")
    if manifest is None:
        raise InputFileError(f"{run_dir}: no run.json, so not a red-team run folder",
                             hint="give the --out folder of `raipipe redteam run`")
    return manifest, read_attacks_tolerant(run_dir / "attacks.jsonl"), {s.id: s for s in read_seeds(run_dir)}


def _prompt_of(messages: list[Message]) -> str:
    return next(m.content for m in reversed(messages) if m.role == "user")


class _Finding:
    """One successful attack on its way to becoming two rows."""

    def __init__(self, record: AttackRecord, seed: PromptRecord, partner: PromptRecord | None, run: dict):
        self.record, self.seed, self.partner, self.run = record, seed, partner, run
        self.verdicts: dict[str, Any] = {"violation": record.final_verdict.model_dump(mode="json")
                                         if record.final_verdict else None}
        self.messages = list(record.turns[-1].sent) if record.turns else list(record.converted)
        self.row_id = f"rt-{run['run_id'][:8]}-{record.id}"  # attack ids repeat across runs on other targets
        self.human = record.strategy == HUMAN_STRATEGY

    def provenance(self, role: str, parent: PromptRecord, messages: list[Message], version: int) -> dict:
        r = self.record
        attackers = sorted({s.model_id for s in r.chain if s.model_id} | (
            {self.run["config"]["attacker_model_id"]} if self.run["config"].get("attacker_model_id") else set()))
        return {"redteam": {
            "role": role, "version": version, "run_id": self.run["run_id"], "record_id": r.id,
            "strategy": r.strategy, "converters": [s.name for s in r.chain],
            "chain": [s.model_dump(mode="json") for s in r.chain], "chain_seed": r.chain_seed,
            "parent_id": parent.id, "parent_prompt": parent.prompt, "attacker_model_ids": attackers,
            "target_model_id": r.target_model_id, "verdicts": self.verdicts, "outcome": r.outcome.value,
            "found_at": r.finished_at.isoformat(), "turns": len(r.turns),
            "messages": [m.model_dump() for m in messages] if len(messages) > 1 else None,
            "provenance": HUMAN_PROVENANCE if self.human else "automated red team",
            **({"human": dict(r.params)} if self.human else {})}}

    def rows(self, partner: PromptRecord | None, twin: list[Message] | None, split: Split, name: str,
             version: int) -> list[PromptRecord]:
        rid, s = self.row_id, self.seed
        source = Provenance(kind=SourceKind.RED_TEAM, name=name, ref=f"redteam-run:{self.run['run_id']}/"
                            f"{self.record.id}", collected=self.record.finished_at.date())

        def row(row_id: str, messages: list[Message], label: Label, language: str, meta: dict) -> PromptRecord:
            return PromptRecord(id=row_id, prompt=_prompt_of(messages), label=label, pillar=s.pillar,
                                policy_id=s.policy_id, language=language, split=split, pair_id=rid, source=source,
                                category=self.record.strategy, metadata=meta)

        out = [row(rid, self.messages, Label.HARMFUL, s.language,
                   self.provenance("finding", s, self.messages, version))]
        if partner is not None and twin is not None:
            meta = self.provenance("benign_twin", partner, twin, version)
            meta["redteam"]["twin_of"] = rid
            out.append(row(f"{rid}-benign", twin, Label.BENIGN, partner.language, meta))
        return out


def _collect(run_dirs: list[Path], include_partial: bool, seen_runs: set[str],
             seen_rows: set[str]) -> tuple[list[_Finding], list[dict]]:
    """Successful attacks of runs not promoted before; of a human red-team folder (which keeps growing),
    the flags whose rows are not in the dataset yet."""
    wanted = {AttackOutcome.SUCCESS} | ({AttackOutcome.PARTIAL} if include_partial else set())
    findings: list[_Finding] = []
    runs: list[dict] = []
    for d in run_dirs:
        manifest, records, seeds = _load_run(d)
        again = manifest["run_id"] in seen_runs and manifest.get("kind") != HUMAN_STRATEGY
        if again or manifest["run_id"] in {r["run_id"] for r in runs}:
            raise UsageError(f"run {manifest['run_id']} ({d}) is already in this dataset",
                             hint="promote only new runs; each version adds runs not promoted before")
        runs.append(manifest)
        pool = list(seeds.values())
        found = [_Finding(r, seeds[r.seed_id], benign_partner(seeds[r.seed_id], pool), manifest)
                 for r in records if r.outcome in wanted and r.seed_id in seeds and r.turns]
        findings += [f for f in found if f.row_id not in seen_rows]
    return findings, runs


def _rejudge(findings: list[_Finding], judge: Judge | None, rater: Rater | None) -> list[_Finding]:
    """Keep what the violation judge still calls a violation; add the specificity level to each."""
    if judge is not None and findings:
        items = [JudgeInput(prompt=f.seed.prompt, response=f.record.turns[-1].response) for f in findings]
        for f, j in zip(findings, judge.judge(items), strict=True):
            f.verdicts["rejudged"] = {"verdict": j.verdict.value, "judge_id": j.judge_id, "score": j.score}
        findings = [f for f in findings
                    if f.human or f.verdicts["rejudged"]["verdict"] in (Verdict.COMPLY, Verdict.PARTIAL)]
    if rater is not None and findings:
        items = [JudgeInput(prompt=f.seed.prompt, response=f.record.turns[-1].response) for f in findings]
        for f, level in zip(findings, rater.rate(items), strict=True):
            f.verdicts["specificity"] = {"level": getattr(level.level, "value", None), "judge_id": rater.judge_id,
                                         "probabilities": level.probabilities}
    return findings


def _twin(f: _Finding, attacker: ChatModel | None) -> tuple[list[Message] | None, str]:
    """The benign look-alike in the same wrappers, or why there is none."""
    if f.partner is None:
        return None, "the red teamer gave no benign look-alike" if f.human else "seed has no benign partner"
    try:
        return replay(f.record, prompt=f.partner.prompt, model=attacker), ""
    except Exception as exc:  # noqa: BLE001 - e.g. an attacker-model step with no attacker given
        return None, f"replay failed: {type(exc).__name__}: {exc}"


def _parent(root: Path) -> tuple[int | None, list[PromptRecord], DatasetManifest | None]:
    have = versions(root)
    if not have:
        return None, [], None
    version = have[-1]
    rows = [r for split in SPLITS for r in _read_split(root / f"v{version}", split)]
    return version, rows, DatasetManifest.model_validate(read_manifest(root / f"v{version}" / MANIFEST))


def _read_split(vdir: Path, split: Split) -> list[PromptRecord]:
    path = vdir / f"{split.value}.jsonl"
    return load_jsonl(path).records if path.is_file() else []


def promote(run_dirs: Sequence[str | Path], root: str | Path, *, judge: Judge | None = None, rater: Rater | None = None,
            attacker: ChatModel | None = None, config: PromoteConfig | None = None) -> DatasetManifest:
    """Write version N+1 of the dataset under `root`: version N's rows plus the new runs' findings
    (re-judged by `judge` if given, rated by `rater` if given), each with its benign twin."""
    config, root = config or PromoteConfig(), Path(root)
    parent_version, parent_rows, parent = _parent(root)
    version = (parent_version or 0) + 1
    promoted = set(parent.runs) if parent else set()
    findings, runs = _collect([Path(d) for d in run_dirs], config.include_partial, promoted,
                              {r.id for r in parent_rows})
    judged = _rejudge(findings, judge, rater)
    new_rows, without_twin, missing = _build_rows(judged, attacker, config, version)
    kept = dedup([r for r in new_rows if r.label == Label.HARMFUL],
                 against=[r for r in parent_rows if r.label == Label.HARMFUL], near_threshold=config.near_threshold)
    keep_pairs = {r.pair_id for r in kept.kept}
    rows = parent_rows + [r for r in new_rows if r.pair_id in keep_pairs]
    vdir = root / f"v{version}"
    files = {}
    for split in SPLITS:
        part = [r for r in rows if r.split == split]
        write_jsonl(part, vdir / f"{split.value}.jsonl")
        files[f"{split.value}.jsonl"] = {"rows": len(part), "hash": dataset_hash(part)}
    manifest = DatasetManifest(
        name=config.name, version=version, parent_version=parent_version, created_at=datetime.now(UTC),
        runs=(parent.runs if parent else []) + [r["run_id"] for r in runs if r["run_id"] not in promoted],
        target_model_ids=sorted({r["config"]["target_model_id"] for r in runs} | set(parent.target_model_ids
                                                                                     if parent else [])),
        policy=_unique([r.get("policy", {}) for r in runs] + (parent.policy if parent else [])),
        judges={"violation": judge.judge_id if judge else None, "specificity": rater.judge_id if rater else None},
        counts=_counts(rows, parent_rows, len(findings), len(findings) - len(judged), kept, missing),
        files=files, dropped=[d.to_dict() for d in kept.dropped], without_twin=without_twin, config=config)
    write_json(vdir / MANIFEST, manifest.model_dump(mode="json"))
    return manifest


def _build_rows(findings: list[_Finding], attacker: ChatModel | None, config: PromoteConfig,
                version: int) -> tuple[list[PromptRecord], list[dict], Counter[str]]:
    rows: list[PromptRecord] = []
    without_twin: list[dict] = []
    missing: Counter[str] = Counter()
    for f in findings:
        twin, why = _twin(f, attacker)
        if twin is None:
            missing[why.split(":")[0]] += 1
            without_twin.append({"id": f.row_id, "reason": why})
        split = split_of(f.seed, config.test_fraction, config.split_salt)
        rows += f.rows(f.partner, twin, split, config.name, version)
    return rows, without_twin, missing


def _unique(items: list[dict]) -> list[dict]:
    out: list[dict] = []
    for it in items:
        if it and it not in out:
            out.append(it)
    return out


def _counts(rows: list[PromptRecord], parent_rows: list[PromptRecord], found: int, rejected: int, kept,
            missing: Counter[str]) -> dict[str, Any]:
    def meta(r: PromptRecord, key: str) -> str:
        return str(r.metadata.get("redteam", {}).get(key) or "-")

    harmful = [r for r in rows if r.label == Label.HARMFUL]
    levels = Counter(str((r.metadata["redteam"]["verdicts"].get("specificity") or {}).get("level")) for r in harmful)
    return {
        "rows": len(rows), "findings": len(harmful), "benign_twins": len(rows) - len(harmful),
        "inherited_rows": len(parent_rows), "successful_attacks": found, "rejected_by_judge": rejected,
        "new_findings": len(kept.kept), "dropped_duplicates": len(kept.dropped),
        "twins_missing": dict(missing),
        "by_split": {s.value: dict(Counter(r.label.value for r in rows if r.split == s)) for s in SPLITS},
        "by_strategy": dict(Counter(meta(r, "strategy") for r in harmful)),
        "by_policy": dict(Counter(r.policy_id or "-" for r in harmful)),
        "by_specificity": dict(levels),
    }


def load_findings(root: str | Path, version: int | None = None, split: Split | str | None = None
                  ) -> list[PromptRecord]:
    """Rows of one version (default: the latest), one split or both."""
    root = Path(root)
    have = versions(root)
    if not have:
        raise SpecError(f"{root}: no red-team dataset versions (v1/manifest.json, ...)",
                        hint="create one with `raipipe redteam promote --run RUN --out DIR`")
    version = version or have[-1]
    if version not in have:
        raise SpecError(f"{root}: no version v{version}; have {[f'v{v}' for v in have]}")
    splits = [Split(split)] if split else list(SPLITS)
    return [r for s in splits for r in _read_split(root / f"v{version}", s)]


def resolve_redteam(spec: str) -> tuple[str, list[PromptRecord]]:
    """`redteam:DIR[@vN][:SPLIT]` → (display name, records), for `resolve_dataset`."""
    body = spec.removeprefix("redteam:")
    split = None
    if ":" in body and body.rsplit(":", 1)[1] in {s.value for s in SPLITS}:
        body, split = body.rsplit(":", 1)
    version = None
    if "@" in body:
        body, _, v = body.rpartition("@")
        if not _VERSION.match(v):
            raise SpecError(f"{spec!r}: version {v!r} should look like v3", hint="redteam:DIR@v3:train")
        version = int(v[1:])
    records = load_findings(body, version, split)
    if not records:
        raise SpecError(f"{spec!r} selects no records")
    return spec, records
