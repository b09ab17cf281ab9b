"""Team-written helpful answers, added as candidates for prompts the model cannot answer fluently itself.

The embedded 135M model answers most Spanish and French prompts with word salad. On a benign look-alike
in those languages the 'chosen' side of its pairs was then salad and the 'rejected' side a fluent policy
refusal, while on the harmful twin the same fluent refusal was 'chosen': DPO learned "refuse in Spanish"
and the trained model refused most Spanish benign prompts. A fluent, helpful answer written by the team
gives the benign side something better than a refusal to move towards. The answers are candidates like
the policy-written refusals (own origin, ranked by the same raters) and the file's digest joins the sample
batch's manifest, so a changed file is a new batch, never a silent mix."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from raipipe.data.io import read_models
from raipipe.data.records import Label, PromptRecord
from raipipe.errors import DatasetError
from raipipe.policy.loader import parse_yaml_model

REFERENCE_ORIGIN = "team-reference"
# the model's greedy answer to a harmful prompt with the language's helpful opener put before it: the opener
# rejected where a refusal is right, as it is chosen before the team's answer where answering is right
OPENED_ORIGIN = "policy-model-greedy+opener"


class ReferenceAnswer(BaseModel):
    """One helpful answer to one trainable benign prompt, in the prompt's language."""

    model_config = ConfigDict(extra="forbid")
    record_id: str = Field(min_length=1, description="the prompt record it answers")
    language: str = Field(min_length=2, description="language of the answer: must be the prompt's")
    answer: str = Field(min_length=1, description="the answer text")
    author: str = Field(min_length=1, description="who wrote it (a team member or team, never a model)")


class ReferenceAnswers:
    """Reference answers by record id, with where each came from (for errors) and the file's digest."""

    def __init__(self, path: Path, answers: dict[str, tuple[int | None, ReferenceAnswer]], digest: str):
        self.path, self._answers, self.digest = path, answers, digest

    def __len__(self) -> int:
        return len(self._answers)

    def for_record(self, record: PromptRecord) -> str | None:
        """The answer for `record`, or None. A reference for a harmful prompt, or in another language than
        the prompt's, is an error naming the file and line: it would teach the model the wrong thing."""
        found = self._answers.get(record.id)
        if found is None:
            return None
        line, ref = found
        if record.label != Label.BENIGN:
            raise DatasetError(self.path, line, "record_id",
                               f"{record.id} is a {record.label.value} prompt; reference answers are for benign ones")
        if ref.language.split("-")[0] != record.language.split("-")[0]:
            raise DatasetError(self.path, line, "language",
                               f"{ref.language!r}, but prompt {record.id} is in {record.language!r}")
        return ref.answer

    def unused(self, records: Iterable[PromptRecord]) -> list[str]:
        """Record ids with an answer that none of `records` has (e.g. a split or limit left them out)."""
        ids = {r.id for r in records}
        return sorted(k for k in self._answers if k not in ids)


def default_reference_path() -> Path:
    return Path(str(resources.files("raipipe.resources") / "posttrain" / "reference_answers.jsonl"))


def load_reference_answers(path: Path | str | None = None) -> ReferenceAnswers:
    """Read and validate a reference-answer JSONL file (default: the shipped one); errors name file/line/field."""
    p = Path(path) if path is not None else default_reference_path()
    if p.suffix.lower() != ".jsonl":
        raise DatasetError(p, None, None, "reference answers must be a .jsonl file")
    answers: dict[str, tuple[int | None, ReferenceAnswer]] = {}
    for line, ref in read_models(p, ReferenceAnswer, "answer", "reference answers"):
        if ref.record_id in answers:
            raise DatasetError(p, line, "record_id",
                               f"{ref.record_id} already has an answer (line {answers[ref.record_id][0]})")
        answers[ref.record_id] = (line, ref)
    return ReferenceAnswers(p, answers, hashlib.sha256(p.read_bytes()).hexdigest()[:16])


class AnswerOpeners(RootModel[dict[str, list[str]]]):
    """Language code → helpful first sentences put before the team's written answers in that language.

    A policy refusal opens with one of a few sentences, so its first words are far more likely after
    training than the first words of any one of the team's varied answers; where the model cannot write
    the language itself, greedy decoding then starts the refusal. An opener of the same kind evens that."""

    @field_validator("root")
    @classmethod
    def _non_empty(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for language, openers in v.items():
            if not openers or any(not o.strip() for o in openers):
                raise ValueError(f"{language}: give at least one non-blank opener")
        return v

    def check_languages(self, languages: Iterable[str], path: Path) -> None:
        """Fail before sampling when a requested language has no openers (no fallback to another language)."""
        missing = sorted(set(languages) - set(self.root))
        if missing:
            raise DatasetError(path, None, None, f"no answer openers for language(s) {', '.join(missing)}")

    def _of(self, language: str) -> list[str]:
        return self.root.get(language) or self.root.get(language.split("-")[0]) or []

    def covers(self, language: str) -> bool:
        return bool(self._of(language))

    def open(self, key: str, language: str, answer: str) -> str:
        """`answer` with the opener `key` (the record id) picks for `language`; unchanged for other languages."""
        openers = self._of(language)
        if not openers:
            return answer
        h = int(hashlib.sha256(key.encode()).hexdigest(), 16)
        return f"{openers[h % len(openers)]} {answer}"


def load_answer_openers(path: Path | str | None, languages: Iterable[str]) -> tuple[AnswerOpeners, str]:
    """The openers of `languages` only (default file: the shipped one) and the file's digest."""
    p = Path(path) if path is not None else Path(
        str(resources.files("raipipe.resources") / "posttrain" / "answer_openers.yaml"))
    if not p.is_file():
        raise DatasetError(p, None, None, "answer openers file does not exist")
    text = p.read_text(encoding="utf-8")
    wanted = set(languages)
    full = parse_yaml_model(p, AnswerOpeners, text, error=DatasetError)
    full.check_languages(wanted, p)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return AnswerOpeners({k: v for k, v in full.root.items() if k in wanted}), digest
