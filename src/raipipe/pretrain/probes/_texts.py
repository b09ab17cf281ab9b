"""The team-written probe material: held-out RAI and general passages, sparse questions, few-shot prefix.

It ships as YAML under `resources/pretrain/probe_text/` and is loaded into typed records. None of it is
training text: `overlapping` finds word 8-grams shared with a training corpus (e.g. the exercises), so a
test can prove the held-out passages stay held out."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from raipipe.errors import DatasetError
from raipipe.policy.schema import Pillar

GENERAL = "general"
ALL = "all"  # the row over every pillar in probe results
RAI_FILE, GENERAL_FILE, QUESTIONS_FILE, FEWSHOT_FILE = "rai.yaml", "general.yaml", "questions.yaml", "fewshot.yaml"
PREFERENCE_FILE = "preference.yaml"


class ProbeText(BaseModel):
    """One held-out passage; `group` is a pillar name or 'general'."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    group: str
    language: str
    text: str = Field(min_length=1)


class SparseQuestion(BaseModel):
    """One side of a harmful/benign look-alike pair about a behaviour the exercises never teach directly."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    pair_id: str
    pillar: Pillar
    policy_id: str
    label: Literal["harmful", "benign"]
    language: str
    question: str = Field(min_length=1)


class FewShot(BaseModel):
    """The prefix placed before every sparse question: an intro and worked Q/A examples."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    intro: str
    examples: list[dict[str, str]] = Field(min_length=1)
    template: str
    example_template: str

    def prompt(self, question: str) -> str:
        shots = "\n\n".join(self.example_template.format(**ex) for ex in self.examples)
        return self.template.format(intro=self.intro, examples=shots, question=question)


class _Passage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lang: str = "en"
    text: str = Field(min_length=1)
    topic: str | None = None


class _Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: str
    harmful: str = Field(min_length=1)
    benign: str = Field(min_length=1)
    lang: str = "en"


def default_probe_dir() -> Path:
    return Path(str(resources.files("raipipe") / "resources" / "pretrain" / "probe_text"))


def probe_file(directory: Path | str | None, name: str) -> Path:
    """`name` in the probe folder; the shipped copy where a custom folder has none (only for optional files)."""
    path = (Path(directory) if directory else default_probe_dir()) / name
    return path if path.is_file() else default_probe_dir() / name


def read_yaml(path: Path) -> object:
    if not path.is_file():
        raise DatasetError(path, None, None, "probe file is missing")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DatasetError(path, None, None, f"not valid YAML: {exc}") from None


def _passage(path: Path, where: str, raw: object) -> _Passage:
    try:
        return _Passage.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise DatasetError(path, None, f"{where}.{'.'.join(map(str, err['loc']))}", err["msg"]) from None


def load_probe_texts(directory: Path | str | None = None) -> list[ProbeText]:
    """RAI passages grouped by pillar, then the general-text passages (group 'general')."""
    root = Path(directory) if directory else default_probe_dir()
    rai, general = read_yaml(root / RAI_FILE), read_yaml(root / GENERAL_FILE)
    if not isinstance(rai, dict) or not isinstance(general, list):
        raise DatasetError(root, None, None, f"{RAI_FILE} must map pillar → passages; {GENERAL_FILE} must be a list")
    out = []
    for pillar, items in rai.items():
        group = Pillar(pillar).value
        for i, raw in enumerate(items or []):
            p = _passage(root / RAI_FILE, f"{pillar}[{i}]", raw)
            out.append(ProbeText(id=f"{group}-{i:02d}", group=group, language=p.lang, text=" ".join(p.text.split())))
    for i, raw in enumerate(general):
        p = _passage(root / GENERAL_FILE, f"[{i}]", raw)
        out.append(ProbeText(id=f"{GENERAL}-{i:02d}", group=GENERAL, language=p.lang, text=" ".join(p.text.split())))
    return out


def load_questions(directory: Path | str | None = None) -> list[SparseQuestion]:
    """Both sides of every pair, harmful first; ids are `pillar-NN-h` / `pillar-NN-b`."""
    path = (Path(directory) if directory else default_probe_dir()) / QUESTIONS_FILE
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise DatasetError(path, None, None, "must map pillar → list of pairs")
    out = []
    for pillar, items in data.items():
        for i, raw in enumerate(items or []):
            try:
                pair = _Pair.model_validate(raw)
            except ValidationError as exc:
                err = exc.errors()[0]
                raise DatasetError(path, None, f"{pillar}[{i}].{'.'.join(map(str, err['loc']))}", err["msg"]) from None
            pid = f"{Pillar(pillar).value}-{i:02d}"
            sides: tuple[tuple[Literal["harmful", "benign"], str], ...] = (("harmful", pair.harmful),
                                                                             ("benign", pair.benign))
            for label, text in sides:
                out.append(SparseQuestion(id=f"{pid}-{label[0]}", pair_id=pid, pillar=pillar, policy_id=pair.policy,
                                          label=label, language=pair.lang, question=text))
    return out


def load_fewshot(directory: Path | str | None = None) -> FewShot:
    path = (Path(directory) if directory else default_probe_dir()) / FEWSHOT_FILE
    try:
        return FewShot.model_validate(read_yaml(path))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise DatasetError(path, None, ".".join(map(str, err["loc"])), err["msg"]) from None


def material_digest(directory: Path | str | None = None) -> str:
    """Digest of every probe file, stored with results so two reports are known to use the same probes."""
    root = Path(directory) if directory else default_probe_dir()
    h = hashlib.sha256()
    for name in (RAI_FILE, GENERAL_FILE, QUESTIONS_FILE, FEWSHOT_FILE):
        h.update(name.encode() + b"\0" + (root / name).read_bytes())
    h.update(PREFERENCE_FILE.encode() + b"\0" + probe_file(root, PREFERENCE_FILE).read_bytes())
    return h.hexdigest()[:16]


_WORD = re.compile(r"\w+", re.UNICODE)


def shingles(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(max(0, len(words) - n + 1))}


def overlapping(probe: Iterable[str], corpus: Iterable[str], n: int = 8) -> list[tuple[str, str]]:
    """(probe text, shared n-gram) for every probe text sharing a word n-gram with the corpus."""
    seen: set[tuple[str, ...]] = set()
    for text in corpus:
        seen |= shingles(text, n)
    found = []
    for text in probe:
        shared = shingles(text, n) & seen
        if shared:
            found.append((text, " ".join(sorted(shared)[0])))
    return found
