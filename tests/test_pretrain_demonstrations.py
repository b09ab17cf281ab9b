"""Demonstrations: whole look-alike pairs, a ledger that accounts for every request, resume after a crash."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from raipipe.data.team_replies import TEAM_REPLY_ORIGIN, load_team_replies
from raipipe.errors import DatasetError
from raipipe.judges.base import load_judge
from raipipe.models.base import ChatModel, GenerationParams
from raipipe.posttrain.refusal_templates import TEMPLATE_ORIGIN, load_templates
from raipipe.pretrain.demonstrations import (
    JOURNAL,
    MANIFEST,
    TEXTS,
    DemonstrationConfig,
    build_demonstrations,
)

HELPFUL = "Here is a clear, practical overview of how to approach it, step by step."


class AnswerModel(ChatModel):
    """Answers helpfully, but refuses about a third of the requests (fixed per prompt); can crash after N batches."""

    name = "scripted-answers"

    def __init__(self, crash_after: int | None = None):
        self.calls, self.prompts, self.crash_after = 0, [], crash_after

    @property
    def model_id(self) -> str:
        return "scripted-answers@1"

    def generate(self, conversations, params: GenerationParams):
        if self.crash_after is not None and self.calls >= self.crash_after:
            raise RuntimeError("simulated crash")
        self.calls += 1
        out = []
        for conv in conversations:
            self.prompts.append(conv[-1].content)
            refuse = int(hashlib.sha256(conv[-1].content.encode()).hexdigest(), 16) % 3 == 0
            out.append(["I'm sorry, but I can't help with that." if refuse else HELPFUL])
        return out


def _cfg(**kw) -> DemonstrationConfig:
    return DemonstrationConfig(**{"prompts": ["generated:train:en"], "limit": 24, "batch_size": 4, **kw})


def _write_team_replies(path, records, language: str) -> None:
    """Two team replies per benign intent of `records` in `language`, plus one for an intent no request uses."""
    rows, seen = [], set()
    for r in records:
        g = r.metadata["generator"]
        key = (r.language, r.policy_id, g["topic"], g["intent"])
        if r.label.value != "benign" or r.language != language or key in seen:
            continue
        seen.add(key)
        rows += [{"language": r.language, "policy_id": r.policy_id, "topic": g["topic"], "intent": g["intent"],
                  "variant": v, "answer": f"Respuesta del equipo {v} para {g['intent']}.", "author": "team-es-test"}
                 for v in "ab"]
    rows.append(rows[0] | {"intent": "an-intent-nobody-asks-for"})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _rows(out):
    return [json.loads(line) for line in (out / TEXTS).read_text(encoding="utf-8").splitlines()]


def test_pairs_are_whole_and_every_request_is_accounted_for(tmp_path):
    judge = load_judge("refusal-opener")
    manifest = build_demonstrations(_cfg(), tmp_path, AnswerModel, judge, console_progress=False)
    rows = _rows(tmp_path)
    assert manifest.requests == 24
    assert sum(manifest.written.values()) + sum(manifest.skipped.values()) == manifest.requests
    assert manifest.written["harmful"] == manifest.written["benign"] == len(rows) // 2 > 0
    assert manifest.skipped["benign reply judged refuse"] == manifest.skipped[
        "harmful: its benign look-alike's reply was skipped"] > 0
    refusals, _ = load_templates()
    by_pair: dict[str, set[str]] = {}
    for r in rows:
        by_pair.setdefault(r["id"].rsplit("-", 1)[0], set()).add(r["label"])
        request, reply = r["text"].split("\n", 1)
        assert request.split(":", 1)[0] in {"Q", "User", "Request"} and reply.split(":", 1)[1].strip()
        if r["label"] == "harmful":
            assert r["reply_source"] == TEMPLATE_ORIGIN
            assert refusals.reason("en", r["pillar"], r["policy_id"]) in r["text"]
        else:
            assert r["reply_source"] == "model:embedded:smollm2" and HELPFUL in r["text"]
    assert all(labels == {"harmful", "benign"} for labels in by_pair.values())


def test_held_out_text_leaves_its_pair_out(tmp_path):
    judge = load_judge("refusal-opener")
    first = build_demonstrations(_cfg(), tmp_path / "a", AnswerModel, judge, console_progress=False)
    row = _rows(tmp_path / "a")[0]
    request = row["text"].split("\n", 1)[0].split(":", 1)[1].strip()
    second = build_demonstrations(_cfg(), tmp_path / "b", AnswerModel, judge, held_out=[f"Tell me: {request}"],
                                  console_progress=False)
    assert second.skipped["shares text with held-out material"] >= 2
    assert row["id"] not in {r["id"] for r in _rows(tmp_path / "b")}
    assert sum(second.written.values()) == sum(first.written.values()) - 2


def test_resume_after_a_crash_redoes_nothing(tmp_path):
    judge = load_judge("refusal-opener")
    crashing = AnswerModel(crash_after=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_demonstrations(_cfg(), tmp_path, lambda: crashing, judge, console_progress=False)
    assert len((tmp_path / JOURNAL).read_text().splitlines()) == 8  # two batches of four journalled
    with (tmp_path / JOURNAL).open("a") as fh:
        fh.write('{"id": "torn')  # a crash mid-write leaves a torn line
    resumed = AnswerModel()
    build_demonstrations(_cfg(), tmp_path, lambda: resumed, judge, console_progress=False)
    assert len(resumed.prompts) == 12 - 8 and not set(resumed.prompts) & set(crashing.prompts)
    fresh = tmp_path / "fresh"
    build_demonstrations(_cfg(), fresh, AnswerModel, judge, console_progress=False)
    assert _rows(tmp_path) == _rows(fresh) and len(_rows(fresh)) > 0  # resumed output = uninterrupted output
    assert json.loads((tmp_path / MANIFEST).read_text())["skipped"] == json.loads((fresh / MANIFEST).read_text())[
        "skipped"]


def test_test_splits_and_bad_frames_are_refused(tmp_path):
    judge = load_judge("refusal-opener")
    with pytest.raises(ValueError, match="test-split"):
        build_demonstrations(_cfg(prompts=["generated:test:en"], limit=4), tmp_path, AnswerModel,
                             judge, console_progress=False)
    with pytest.raises(ValueError, match="exactly"):
        DemonstrationConfig(frames={"en": ["Q: {request}"]})
    with pytest.raises(ValueError, match="fallback"):
        DemonstrationConfig(frames={"es": ["P: {request}\nR: {reply}"]})


def test_cli_writes_demonstrations_with_a_lexical_judge(tmp_path, monkeypatch):
    from raipipe.pretrain import cli

    monkeypatch.setattr(cli, "load_model", lambda spec, **kw: AnswerModel())
    result = CliRunner().invoke(cli.app, ["demonstrations", "--out", str(tmp_path), "--limit", "8",
                                          "--judge", "refusal-opener", "--anchor-limit", "20"])
    assert result.exit_code == 0, result.output
    assert "written" in result.output and (tmp_path / TEXTS).is_file()
    frames = [json.loads(x)["text"] for x in (tmp_path / "anchor.jsonl").read_text(encoding="utf-8").splitlines()]
    assert 10 <= len(frames) <= 20 and all(f.rsplit("\n", 1)[1] in {"A:", "Assistant:", "Reply:"} for f in frames)
    # other languages' requests on request, each in its own language's reply frame
    other = tmp_path / "other"
    result = CliRunner().invoke(cli.app, ["demonstrations", "--out", str(other), "--limit", "8", "--judge",
                                          "refusal-opener", "--anchor-prompts", "generated:train:fr", "--anchor-limit",
                                          "12"])
    assert result.exit_code == 0, result.output
    frames = [json.loads(x)["text"] for x in (other / "anchor.jsonl").read_text(encoding="utf-8").splitlines()]
    assert frames and {f.rsplit("\n", 1)[1] for f in frames} <= {"A:", "Assistant :", "Réponse :"}
    bad = CliRunner().invoke(cli.app, ["demonstrations", "--out", str(tmp_path), "--prompts", "seed:test"])
    assert bad.exit_code == 1 and "test-split" in bad.output


def test_team_replies_answer_their_language_and_the_model_the_rest(tmp_path):
    """Spanish benign requests get a team reply for their intent (never generated or judged), English ones the
    model's; the ledger counts both, and pairs stay whole."""
    from raipipe.posttrain.sample import trainable_records

    cfg = _cfg(prompts=["generated:train:en", "generated:train:es"], limit=32)
    records = trainable_records(cfg.prompts, cfg.limit, cfg.seed)
    _write_team_replies(tmp_path / "team.jsonl", records, "es")
    model = AnswerModel()
    manifest = build_demonstrations(cfg.model_copy(update={"team_replies": str(tmp_path / "team.jsonl")}),
                                    tmp_path / "out", lambda: model, load_judge("refusal-opener"),
                                    console_progress=False)
    rows = _rows(tmp_path / "out")
    benign_es = [r for r in rows if r["label"] == "benign" and r["language"] == "es"]
    assert benign_es and all(r["reply_source"] == TEAM_REPLY_ORIGIN and "Respuesta del equipo" in r["text"]
                             for r in benign_es)
    assert model.prompts and not set(model.prompts) & {r.prompt for r in records if r.language == "es"}
    assert manifest.reply_sources == {TEAM_REPLY_ORIGIN: len(benign_es),
                                      "model:embedded:smollm2": manifest.written["benign"] - len(benign_es)}
    assert manifest.team_replies_digest and sum(manifest.written.values()) + sum(
        manifest.skipped.values()) == manifest.requests
    assert {r["language"] for r in rows if r["label"] == "harmful"} == {"en", "es"}
    again = build_demonstrations(cfg.model_copy(update={"team_replies": str(tmp_path / "team.jsonl")}),
                                 tmp_path / "again", AnswerModel, load_judge("refusal-opener"), console_progress=False)
    assert _rows(tmp_path / "again") == rows and again.reply_sources == manifest.reply_sources  # same pick per id


def test_team_reply_files_are_validated_with_file_line_and_field(tmp_path):
    good = {"language": "es", "policy_id": "safety.self-harm", "topic": "t", "intent": "i", "variant": "a",
            "answer": "Claro.", "author": "team"}
    cases = [
        ([good, good], r"team\.jsonl:2.*variant.*already on line 1"),
        ([good | {"answer": "  "}], r"team\.jsonl:1.*answer.*blank"),
        ([{k: v for k, v in good.items() if k != "author"}], r"team\.jsonl:1.*author"),
        ([good | {"surprise": 1}], r"team\.jsonl:1.*surprise"),
    ]
    for rows, message in cases:
        (tmp_path / "team.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        with pytest.raises(DatasetError, match=message):
            load_team_replies(tmp_path / "team.jsonl")


def test_the_shipped_team_replies_cover_every_spanish_and_french_train_intent():
    from raipipe.posttrain.sample import trainable_records

    team = load_team_replies()
    assert team.languages == {"es", "fr"}
    records = [r for r in trainable_records(["generated:train:es", "generated:train:fr"], None, 0)
               if r.label.value == "benign"]
    assert all(team.for_record(r) for r in records)
