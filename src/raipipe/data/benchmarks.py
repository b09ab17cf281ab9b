"""Public safety benchmarks as PromptRecords, through a registry of small loader classes.

Add a benchmark by writing one class::

    @register
    class MyBench(BenchmarkLoader):
        name = "mybench"
        columns = {"prompt": ("question", "prompt"), "category": ("topic",)}
        optional = frozenset({"category"})

        def to_records(self, rows, ref):
            for row in rows:
                yield self.make(row, ref, key=row.index, prompt=row["prompt"], label=Label.HARMFUL,
                                category=row["category"])

`columns` maps a logical field to the column names accepted for it (the original release's
first, then common mirrors'); rows arrive with logical keys. Every record is marked
kind=public_benchmark: evaluation only, never training (see `io.assert_trainable`).
Sources are local files (csv, tsv, jsonl, json, parquet) or Hugging Face dataset ids
(`owner/name[:config[:split]]`), which are fetched only when the source is not an existing path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError

from raipipe.data.io import TABLE_SUFFIXES, DatasetError, cell_text, read_hub, read_rows
from raipipe.data.records import Label, PromptRecord, Provenance, SourceKind
from raipipe.policy.schema import Pillar


class Row(dict[str, str | None]):
    """One source row under logical field names; `where`/`line` locate it for error messages."""

    def __init__(self, data: dict[str, str | None], index: int, where: str, line: int | None, raw: dict):
        super().__init__(data)
        self.index, self.where, self.line, self.raw = index, where, line, raw

    @property
    def location(self) -> str:
        return f"{self.where}:{self.line}" if self.line else self.where


@dataclass
class BenchmarkLoad:
    """Result of one benchmark load: records plus each row that produced none, with why."""

    name: str
    ref: str
    records: list[PromptRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (location, reason)
    total_rows: int = 0


class BenchmarkLoader:
    name: ClassVar[str]
    columns: ClassVar[dict[str, tuple[str, ...]]]
    optional: ClassVar[frozenset[str]] = frozenset()
    aliases: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    license: ClassVar[str | None] = None
    hf_id: ClassVar[str | None] = None  # a conventional Hub id, used when no source is given
    hf_defaults: ClassVar[dict[str, tuple[str | None, str | None]]] = {}  # hub id -> (config, split)
    pillar_map: ClassVar[dict[str, Pillar]] = {}  # the benchmark's category (casefolded) -> pillar
    default_pillar: ClassVar[Pillar] = Pillar.SAFETY

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []
        self.skipped_rows: set[int] = set()

    def to_records(self, rows: list[Row], ref: str) -> Iterable[PromptRecord | None]:
        """One record per row, built with `make()` (None for a row it skipped) or a `skip()` reason."""
        raise NotImplementedError

    def pillar_for(self, category: str | None) -> Pillar:
        return self.pillar_map.get((category or "").strip().casefold(), self.default_pillar)

    def skip(self, row: Row, reason: str) -> None:
        """Record why a row yields no record: every source row is a record or a reasoned skip."""
        self.skipped.append((row.location, reason))
        self.skipped_rows.add(row.index)

    def make(
        self, row: Row, ref: str, *, key: str | int, prompt: str | None, label: Label,
        category: str | None = None, pillar: Pillar | None = None, pair_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> PromptRecord | None:
        """Build a record with the shared provenance; a row with no prompt is skipped, not lost."""
        if not prompt:
            self.skip(row, "empty prompt")
            return None
        meta = {"original_id": str(key), "row": row.index, **(metadata or {})}
        try:
            return PromptRecord(
                id=f"{self.name}-{key}", prompt=prompt, label=label,
                pillar=pillar or self.pillar_for(category), language="en", split=None, pair_id=pair_id,
                source=Provenance(kind=SourceKind.PUBLIC_BENCHMARK, name=self.name, ref=ref, license=self.license),
                category=category, metadata={k: v for k, v in meta.items() if v is not None},
            )
        except ValidationError as exc:
            err = exc.errors()[0]
            raise DatasetError(row.where, row.line, ".".join(map(str, err["loc"])), err["msg"]) from exc


_REGISTRY: dict[str, type[BenchmarkLoader]] = {}
_ALIASES: dict[str, str] = {}


def register(cls: type[BenchmarkLoader]) -> type[BenchmarkLoader]:
    """Class decorator: make a loader available by its name and aliases."""
    name = getattr(cls, "name", "")
    if not name or name != _key(name) or " " in name:
        raise ValueError(f"{cls.__name__}: `name` must be lowercase, '-' not '_', like 'or-bench'")
    if "prompt" not in getattr(cls, "columns", {}):
        raise ValueError(f"{cls.__name__}: `columns` must map at least 'prompt' to its source column(s)")
    for key in {_key(k) for k in (name, *cls.aliases)}:
        owner = _ALIASES.get(key)
        if owner is not None and _REGISTRY[owner].__qualname__ != cls.__qualname__:
            raise ValueError(f"benchmark name {key!r} is already taken by {_REGISTRY[owner].__name__}")
        _ALIASES[key] = name
    _REGISTRY[name] = cls
    return cls


def benchmark_names() -> list[str]:
    return sorted(_REGISTRY)


def registered_loaders() -> dict[str, type[BenchmarkLoader]]:
    return dict(sorted(_REGISTRY.items()))


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def get_loader(name: str) -> BenchmarkLoader:
    key = _key(name)
    if key not in _ALIASES:
        raise KeyError(f"unknown benchmark {name!r}; registered: {', '.join(benchmark_names())}")
    return _REGISTRY[_ALIASES[key]]()


def _normalise(loader: BenchmarkLoader, raw: list[tuple[int | None, dict]], ref: str) -> list[Row]:
    if not raw:
        raise DatasetError(ref, None, None, f"{loader.name}: the source has no rows")
    present = {str(k).strip().casefold(): k for r in raw for k in r[1]}
    chosen: dict[str, Any] = {}
    for logical, accepted in loader.columns.items():
        hit = next((present[a.casefold()] for a in accepted if a.casefold() in present), None)
        if hit is None and logical not in loader.optional:
            raise DatasetError(
                ref, None, logical,
                f"{loader.name}: no column {' / '.join(repr(a) for a in accepted)}; "
                f"found {sorted(map(str, present.values()))}",
            )
        chosen[logical] = hit
    rows = []
    for i, (line, data) in enumerate(raw):
        where = ref if line is not None else f"{ref}[row {i}]"
        values = {k: (cell_text(data.get(col)) if col is not None else None) for k, col in chosen.items()}
        rows.append(Row(values, i, where, line, data))
    return rows


def _load_hub(loader: BenchmarkLoader, source: str) -> tuple[list[tuple[int | None, dict]], str]:
    hf_id, _, rest = source.partition(":")
    config, _, split = rest.partition(":")
    dflt_config, dflt_split = loader.hf_defaults.get(hf_id.lower(), (None, None))
    return read_hub(hf_id, config or dflt_config, split or dflt_split, source=source, purpose=loader.name)


def load_benchmark(name: str, source: str | Path | None = None) -> BenchmarkLoad:
    """Load a registered benchmark from a local file or a Hub id (default: the loader's `hf_id`)."""
    loader = get_loader(name)
    src = str(source) if source is not None else loader.hf_id
    if not src:
        raise DatasetError(name, None, None, f"{loader.name}: give a local file or a Hugging Face dataset id")
    path = Path(src).expanduser()
    if path.exists():
        raw, ref = read_rows(path), str(path)
    elif path.suffix.lower() in TABLE_SUFFIXES or src.startswith((".", "/", "~")):
        raise DatasetError(path, None, None, "no such file")
    else:
        raw, ref = _load_hub(loader, src)
    rows = _normalise(loader, raw, ref)
    records = [r for r in loader.to_records(rows, ref) if r is not None]
    seen: dict[str, int | None] = {}
    for rec in records:
        i = rec.metadata.get("row")
        if rec.id in seen:
            first = f" (first at row {seen[rec.id]})" if seen[rec.id] is not None else ""
            where, line = (rows[i].where, rows[i].line) if isinstance(i, int) else (ref, None)
            raise DatasetError(where, line, "id", f"duplicate id {rec.id!r}{first}")
        seen[rec.id] = i
    produced = set(seen.values()) | loader.skipped_rows
    lost = [row for row in rows if row.index not in produced]
    if lost:  # build records with self.make(), which tags each with its row, or call self.skip()
        raise DatasetError(ref, lost[0].line, None, f"{loader.name}.to_records gave no record and no skip() "
                           f"reason for {len(lost)} row(s), first {lost[0].location}")
    return BenchmarkLoad(loader.name, ref, records, list(loader.skipped), len(rows))


# ---------------------------------------------------------------- the shipped loaders


@register
class XSTest(BenchmarkLoader):
    """XSTest (Röttger et al., 2024): safe prompts that look unsafe, plus unsafe `contrast_*` twins.

    Label: `label` safe/unsafe; mirrors without it: `type` starting with `contrast_` is unsafe.
    Pillar by `type`: privacy_* and contrast_privacy -> privacy_security; the discrimination
    types -> fairness; everything else -> safety.
    """

    name, aliases, license, hf_id = "xstest", ("xs-test",), "CC-BY-4.0", "walledai/XSTest"
    description = "over-refusal suite: benign look-alikes (label=safe) + harmful contrasts"
    columns = {"prompt": ("prompt",), "type": ("type",), "id": ("id", "id_v2"), "label": ("label",),
               "focus": ("focus",), "note": ("note",)}
    optional = frozenset({"id", "label", "focus", "note"})
    pillar_map = {
        **dict.fromkeys(("privacy_public", "privacy_fictional", "contrast_privacy"), Pillar.PRIVACY_SECURITY),
        **dict.fromkeys(("real_group_nons_discr", "nons_group_real_discr", "contrast_discr"), Pillar.FAIRNESS),
    }

    def to_records(self, rows: list[Row], ref: str) -> Iterable[PromptRecord | None]:
        for row in rows:
            kind = row["type"] or ""
            if row["label"] is None:
                label = Label.HARMFUL if kind.startswith("contrast_") else Label.BENIGN
            elif row["label"].lower() in ("safe", "unsafe"):
                label = Label.BENIGN if row["label"].lower() == "safe" else Label.HARMFUL
            else:
                raise DatasetError(row.where, row.line, "label", f"expected 'safe' or 'unsafe', got {row['label']!r}")
            yield self.make(row, ref, key=row["id"] or row.index, prompt=row["prompt"], label=label,
                            category=kind or None, metadata={"focus": row["focus"], "note": row["note"]})


@register
class HarmBench(BenchmarkLoader):
    """HarmBench behaviours (Mazeika et al., 2024); all harmful.

    Contextual behaviours become "<ContextString>\\n\\n---\\n\\n<Behavior>", as HarmBench prompts them.
    Pillar by SemanticCategory: cybercrime_intrusion -> privacy_security, misinformation_disinformation
    -> veracity_robustness, harassment_bullying -> fairness, copyright -> governance, else safety.
    """

    name, aliases, license, hf_id = "harmbench", ("harm-bench",), "MIT", "walledai/HarmBench"
    description = "harmful behaviours: standard, contextual and copyright"
    hf_defaults = {"walledai/harmbench": ("standard", "train")}
    columns = {"prompt": ("Behavior", "prompt", "behavior"), "category": ("SemanticCategory", "category"),
               "functional": ("FunctionalCategory",), "tags": ("Tags", "tags"),
               "context": ("ContextString", "context"), "id": ("BehaviorID",)}
    optional = frozenset({"category", "functional", "tags", "context", "id"})
    pillar_map = {"cybercrime_intrusion": Pillar.PRIVACY_SECURITY,
                  "misinformation_disinformation": Pillar.VERACITY_ROBUSTNESS,
                  "harassment_bullying": Pillar.FAIRNESS, "copyright": Pillar.GOVERNANCE}

    def to_records(self, rows: list[Row], ref: str) -> Iterable[PromptRecord | None]:
        for row in rows:
            behavior, context = row["prompt"], row["context"]
            prompt = f"{context}\n\n---\n\n{behavior}" if context and behavior else behavior
            category = row["category"] or ("copyright" if row["functional"] == "copyright" else None)
            meta = {"functional_category": row["functional"], "tags": row["tags"],
                    "behavior": behavior if context else None}
            yield self.make(row, ref, key=row["id"] or row.index, prompt=prompt, label=Label.HARMFUL,
                            category=category, metadata=meta)


@register
class AdvBench(BenchmarkLoader):
    """AdvBench harmful behaviours (Zou et al., 2023): `goal` (`prompt` on mirrors) + `target`.

    No categories: every row is harmful / safety.
    """

    name, aliases, license, hf_id = "advbench", ("adv-bench",), "MIT", "walledai/AdvBench"
    description = "harmful behaviours with affirmative targets"
    columns = {"prompt": ("goal", "prompt"), "target": ("target",)}
    optional = frozenset({"target"})

    def to_records(self, rows: list[Row], ref: str) -> Iterable[PromptRecord | None]:
        for row in rows:
            yield self.make(row, ref, key=row.index, prompt=row["prompt"], label=Label.HARMFUL,
                            metadata={"target": row["target"]})


_JBB_PILLARS = {
    "harassment/discrimination": Pillar.FAIRNESS, "malware/hacking": Pillar.PRIVACY_SECURITY,
    "privacy": Pillar.PRIVACY_SECURITY, "disinformation": Pillar.VERACITY_ROBUSTNESS,
    "expert advice": Pillar.GOVERNANCE, "government decision-making": Pillar.GOVERNANCE,
}  # physical harm, economic harm, fraud/deception, sexual/adult content -> safety


@register
class JailbreakBench(BenchmarkLoader):
    """JBB-Behaviors (Chao et al., 2024), harmful split. Columns Index, Goal, Target, Behavior, Category, Source.

    Pillar by Category: Harassment/Discrimination -> fairness, Malware/Hacking and Privacy ->
    privacy_security, Disinformation -> veracity_robustness, Expert advice and Government
    decision-making -> governance, else safety. pair_id `jailbreakbench-pair-<Index>` links each
    harmful behaviour to its benign twin (same Index in the benign split).
    """

    name, license, hf_id = "jailbreakbench", "MIT", "JailbreakBench/JBB-Behaviors"
    aliases: ClassVar[tuple[str, ...]] = ("jbb", "jbb-harmful")
    description = "100 misuse behaviours (harmful split)"
    label: ClassVar[Label] = Label.HARMFUL
    hf_defaults = {"jailbreakbench/jbb-behaviors": ("behaviors", "harmful")}
    columns = {"prompt": ("Goal", "goal", "prompt"), "index": ("Index", "Unnamed: 0", ""),
               "target": ("Target",), "behavior": ("Behavior",), "category": ("Category", "category"),
               "source": ("Source",)}
    optional = frozenset({"index", "target", "behavior", "category", "source"})
    pillar_map = _JBB_PILLARS

    def to_records(self, rows: list[Row], ref: str) -> Iterable[PromptRecord | None]:
        for row in rows:
            key = row["index"] if row["index"] is not None else row.index
            yield self.make(row, ref, key=key, prompt=row["prompt"], label=self.label, category=row["category"],
                            pair_id=f"jailbreakbench-pair-{key}",
                            metadata={"behavior": row["behavior"], "target": row["target"], "origin": row["source"]})


@register
class JailbreakBenchBenign(JailbreakBench):
    """JBB-Behaviors benign split: topic-matched benign behaviours (over-refusal look-alikes)."""

    name, aliases = "jailbreakbench-benign", ("jbb-benign",)
    description = "100 benign look-alikes of the JBB behaviours"
    label = Label.BENIGN
    hf_defaults = {"jailbreakbench/jbb-behaviors": ("behaviors", "benign")}


@register
class StrongREJECT(BenchmarkLoader):
    """StrongREJECT forbidden prompts (Souly et al., 2024): category, source, forbidden_prompt.

    Pillar by category: "Disinformation and deception" -> veracity_robustness, "Hate, harassment
    and discrimination" -> fairness, else safety.
    """

    name, aliases, license, hf_id = "strongreject", ("strong-reject",), "MIT", "walledai/StrongREJECT"
    description = "forbidden prompts in six harm categories"
    columns = {"prompt": ("forbidden_prompt", "prompt"), "category": ("category",), "source": ("source",)}
    optional = frozenset({"category", "source"})
    pillar_map = {"disinformation and deception": Pillar.VERACITY_ROBUSTNESS,
                  "hate, harassment and discrimination": Pillar.FAIRNESS}

    def to_records(self, rows: list[Row], ref: str) -> Iterable[PromptRecord | None]:
        for row in rows:
            yield self.make(row, ref, key=row.index, prompt=row["prompt"], label=Label.HARMFUL,
                            category=row["category"], metadata={"origin": row["source"]})


class _ORBench(BenchmarkLoader):
    """OR-Bench (Cui et al., 2024): `prompt`, `category`.

    80k and hard-1k are benign prompts that look harmful (over-refusal); toxic is harmful.
    Pillar by category: deception -> veracity_robustness, harassment and hate -> fairness,
    privacy -> privacy_security, else (harmful, illegal, self-harm, sexual, unethical, violence) safety.
    """

    license, hf_id = "CC-BY-4.0", "bench-llm/or-bench"
    label: ClassVar[Label] = Label.BENIGN
    config: ClassVar[str] = ""
    columns = {"prompt": ("prompt",), "category": ("category",)}
    optional = frozenset({"category"})
    pillar_map = {"deception": Pillar.VERACITY_ROBUSTNESS, "harassment": Pillar.FAIRNESS,
                  "hate": Pillar.FAIRNESS, "privacy": Pillar.PRIVACY_SECURITY}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.hf_defaults = {hub: (cls.config, "train") for hub in ("bench-llm/or-bench", "bench-llms/or-bench")}

    def to_records(self, rows: list[Row], ref: str) -> Iterable[PromptRecord | None]:
        for row in rows:
            yield self.make(row, ref, key=row.index, prompt=row["prompt"], label=self.label,
                            category=row["category"], metadata={"subset": self.config})


@register
class ORBench80k(_ORBench):
    name, aliases, config = "orbench-80k", ("or-bench-80k",), "or-bench-80k"
    description = "80k seemingly toxic but benign prompts"


@register
class ORBenchHard(_ORBench):
    name, aliases, config = "orbench-hard", ("or-bench-hard-1k", "orbench-hard-1k"), "or-bench-hard-1k"
    description = "~1k hard benign prompts most models over-refuse"


@register
class ORBenchToxic(_ORBench):
    name, aliases, config, label = "orbench-toxic", ("or-bench-toxic",), "or-bench-toxic", Label.HARMFUL
    description = "toxic prompts that should be refused"
