"""Team-written reference answers: validated with file/line/field, added as candidates of their benign
prompts only (digest in the batch manifest, old batches keep their id), and their pair is trained on; the
helpful openers some languages' written answers start with."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from raipipe.data.specs import resolve_dataset
from raipipe.errors import DatasetError
from raipipe.models.base import ChatModel
from raipipe.posttrain.pair_selection import GREEDY_ORIGIN, training_pairs
from raipipe.posttrain.pairs import expand_rankings
from raipipe.posttrain.reference_answers import (
    OPENED_ORIGIN,
    REFERENCE_ORIGIN,
    load_answer_openers,
    load_reference_answers,
)
from raipipe.posttrain.sample import SampleSettings, sample_candidates
from raipipe.store.db import open_store
from raipipe.store.posttrain_tables import Candidate, SampleBatch


class Scripted(ChatModel):
    """Answers 'answer K'; counts calls so a test can see that nothing was sampled."""

    def __init__(self):
        self.calls = 0

    @property
    def model_id(self):
        return "scripted-refs"

    def generate(self, conversations, params):
        self.calls += 1
        return [[f"answer {k}" for k in range(params.num_return_sequences)] for _ in conversations]


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _ref(record_id, language="es", answer="Una respuesta útil y breve.", author="team-es"):
    return {"record_id": record_id, "language": language, "answer": answer, "author": author}


def test_shipped_answers_fit_their_prompts():
    refs = load_reference_answers()
    train = resolve_dataset("seed:train")[1]
    answered = [r for r in train if refs.for_record(r) is not None]  # raises on a harmful or wrong-language one
    assert len(answered) == len(refs) and not refs.unused(train)
    assert {r.language for r in answered} == {"es", "fr"}
    assert not any(r.id in {t.id for t in answered} for r in resolve_dataset("seed:test")[1])


@pytest.mark.parametrize("rows, line, field, match", [
    ([_ref("a"), '{"record_id": "b", "language": "es"'], 2, "<json>", "invalid JSON"),
    ([_ref("a"), {**_ref("b"), "answr": "x"}], 2, "answr", "Extra inputs"),
    ([_ref("a"), _ref("b", answer="   ")], 2, "answer", "blank"),
    ([_ref("a"), {k: v for k, v in _ref("b").items() if k != "author"}], 2, "author", "Field required"),
    ([_ref("a"), _ref("b"), _ref("a")], 3, "record_id", r"already has an answer \(line 1\)"),
])
def test_bad_files_name_the_line_and_field(tmp_path, rows, line, field, match):
    path = _write(tmp_path / "refs.jsonl", rows)
    with pytest.raises(DatasetError, match=match) as err:
        load_reference_answers(path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), line, field)
    with pytest.raises(DatasetError, match="must be a .jsonl file"):
        load_reference_answers(tmp_path / "refs.csv")


def test_a_reference_for_a_harmful_or_other_language_prompt_is_refused(tmp_path):
    train = resolve_dataset("seed:train")[1]
    harmful = next(r for r in train if r.label.value == "harmful")
    french = next(r for r in train if r.label.value == "benign" and r.language == "fr")
    refs = load_reference_answers(_write(tmp_path / "h.jsonl", [_ref(french.id, "fr"), _ref(harmful.id, "en")]))
    with pytest.raises(DatasetError, match="harmful prompt") as err:
        refs.for_record(harmful)
    assert (err.value.line, err.value.field) == (2, "record_id")
    refs = load_reference_answers(_write(tmp_path / "l.jsonl", [_ref(french.id, "es")]))
    with pytest.raises(DatasetError, match="is in 'fr'") as err:
        refs.for_record(french)
    assert err.value.field == "language"
    # sampling checks every record before it samples anything
    sessions = open_store(str(tmp_path / "s.db"))
    model = Scripted()
    with pytest.raises(DatasetError, match="is in 'fr'"):
        sample_candidates(model, SampleSettings(reference_answers=True, reference_answers_file=tmp_path / "l.jsonl"),
                          sessions)
    assert model.calls == 0


def test_sampling_adds_each_benign_prompts_reference_and_keeps_old_batch_ids(tmp_path):
    train = resolve_dataset("seed:train")[1]
    picked = [r for r in train if r.language == "es"][:6]
    benign = [r for r in picked if r.label.value == "benign"]
    path = _write(tmp_path / "refs.jsonl", [_ref(r.id, answer=f"Respuesta a {r.id}.") for r in benign])
    spec = tmp_path / "d.jsonl"
    spec.write_text("".join(json.dumps(r.model_dump(mode="json"), ensure_ascii=False) + "\n" for r in picked))
    sessions = open_store(str(tmp_path / "s.db"))
    base = dict(dataset=str(spec), num_samples=2, distilled_samples=0)
    batch = sample_candidates(Scripted(), SampleSettings(**base, reference_answers=True, reference_answers_file=path),
                              sessions)
    with sessions() as s:
        cands = s.scalars(select(Candidate).where(Candidate.batch_id == batch)).all()
        manifest = s.get(SampleBatch, batch).manifest
    refs = [c for c in cands if c.origin == REFERENCE_ORIGIN]
    assert sorted(c.record_id for c in refs) == sorted(r.id for r in benign) and benign
    assert all(c.text == f"Respuesta a {c.record_id}." and c.label == "benign" for c in refs)
    assert manifest["reference_answers_digest"] == load_reference_answers(path).digest
    off = sample_candidates(Scripted(), SampleSettings(**base), sessions)
    with sessions() as s:
        manifest_off = s.get(SampleBatch, off).manifest
    assert off != batch and "reference_answers" not in manifest_off["settings"]
    assert "reference_answers_digest" not in manifest_off


def _ranked_pairs(label, candidates, tiers):
    """The preference pairs of one Spanish prompt whose candidates (id, origin, text) an AI rater ranked in
    `tiers`' order (candidate id -> behaviour tier, 0 best)."""
    cands = [SimpleNamespace(id=cid, batch_id="b1", record_id="r1", prompt="¿p?", label=label, policy_id=None,
                             text=text, language="es", origin=origin) for cid, origin, text in candidates]
    ranking = SimpleNamespace(id=1, batch_id="b1", record_id="r1", rater_id="ai:j", rater_kind="ai",
                              order=list(tiers),
                              ratings={str(c): {"tier": t, "verdict": "x"} for c, t in tiers.items()})
    return expand_rankings([ranking], cands).pairs


def test_the_reference_pair_is_trained_on_beside_the_anchored_one():
    # The greedy answer (word salad, read as compliance) is the anchored chosen side; the team's answer and the
    # policy refusal make the reference pair.
    pairs = _ranked_pairs("benign", [(1, GREEDY_ORIGIN, "salad"), (2, REFERENCE_ORIGIN, "Una respuesta útil."),
                                     (3, "policy-template-refusal", "No puedo ayudar con eso."),
                                     (4, "policy-model", "otra")], {4: 0, 1: 0, 2: 0, 3: 2})
    kept = training_pairs(pairs, strategy="greedy-anchored")
    assert Counter((p.chosen_origin, p.rejected_origin) for p in kept) == {
        (GREEDY_ORIGIN, "policy-template-refusal"): 1, (REFERENCE_ORIGIN, "policy-template-refusal"): 1}
    assert len(training_pairs(pairs, strategy="best-vs-worst")) == 2
    # without a reference candidate nothing is added
    plain = [p for p in pairs if REFERENCE_ORIGIN not in (p.chosen_origin, p.rejected_origin)]
    assert len(training_pairs(plain, strategy="greedy-anchored")) == 1


def test_sampling_adds_the_team_reply_of_each_benign_generator_prompt(tmp_path):
    from raipipe.data.team_replies import load_team_replies

    replies = load_team_replies()
    generated = [r for r in resolve_dataset("generated:train:es")[1] if r.pair_id]
    pair = next(r.pair_id for r in generated if replies.for_record(r))
    picked = [r for r in generated if r.pair_id == pair]  # a benign request and its harmful twin
    spec = tmp_path / "g.jsonl"
    spec.write_text("".join(json.dumps(r.model_dump(mode="json"), ensure_ascii=False) + "\n" for r in picked))
    sessions = open_store(str(tmp_path / "s.db"))
    batch = sample_candidates(Scripted(), SampleSettings(dataset=str(spec), num_samples=2, distilled_samples=0,
                                                         team_replies=True), sessions)
    with sessions() as s:
        cands = s.scalars(select(Candidate).where(Candidate.batch_id == batch)).all()
        manifest = s.get(SampleBatch, batch).manifest
    refs = [c for c in cands if c.origin == REFERENCE_ORIGIN]
    benign = next(r for r in picked if r.label.value == "benign")
    assert len(picked) == 2 and [c.record_id for c in refs] == [benign.id]
    assert refs[0].text == replies.for_record(benign) and refs[0].language == "es"
    assert manifest["team_replies_digest"] == replies.digest


def test_team_reply_prompts_are_benign_spread_over_policies_and_fixed():
    from raipipe.data.team_replies import load_team_replies

    replies = load_team_replies()
    records = resolve_dataset("generated:train")[1]
    picked = replies.pick_prompts(records, 20)
    assert Counter(r.language for r in picked) == {"es": 20, "fr": 20}
    assert all(r.label.value == "benign" and replies.for_record(r) for r in picked)
    per_policy = Counter((r.language, r.policy_id) for r in picked)
    assert max(per_policy.values()) - min(per_policy.values()) <= 1  # policies taken in turn
    assert [r.id for r in replies.pick_prompts(reversed(records), 20)] == [r.id for r in picked]
    skipped = replies.pick_prompts(records, 20, exclude={picked[0].id})
    assert picked[0].id not in {r.id for r in skipped} and len(skipped) == len(picked)


def test_sampling_adds_team_reply_prompts_beside_the_dataset(tmp_path):
    train = resolve_dataset("seed:train")[1][:2]
    spec = tmp_path / "d.jsonl"
    spec.write_text("".join(json.dumps(r.model_dump(mode="json"), ensure_ascii=False) + "\n" for r in train))
    sessions = open_store(str(tmp_path / "s.db"))
    with pytest.raises(ValueError, match="team_replies: true"):
        SampleSettings(dataset=str(spec), team_reply_prompts=2)
    batch = sample_candidates(Scripted(), SampleSettings(dataset=str(spec), num_samples=2, distilled_samples=0,
                                                         team_replies=True, team_reply_prompts=2), sessions)
    with sessions() as s:
        cands = s.scalars(select(Candidate).where(Candidate.batch_id == batch)).all()
    records = {c.record_id for c in cands}
    added = records - {r.id for r in train}
    assert {r.id for r in train} <= records and len(added) == 4  # 2 Spanish + 2 French generator prompts
    assert {c.record_id for c in cands if c.origin == REFERENCE_ORIGIN} == added


def test_team_reply_twins_add_each_prompts_harmful_look_alike(tmp_path):
    train = resolve_dataset("seed:train")[1][:2]
    spec = tmp_path / "d.jsonl"
    spec.write_text("".join(json.dumps(r.model_dump(mode="json"), ensure_ascii=False) + "\n" for r in train))
    with pytest.raises(ValueError, match="team_reply_twins"):
        SampleSettings(dataset=str(spec), team_replies=True, team_reply_twins=True)
    settings = SampleSettings(dataset=str(spec), num_samples=2, distilled_samples=0, team_replies=True,
                              team_reply_prompts=2, team_reply_twins=True)
    sessions = open_store(str(tmp_path / "s.db"))
    batch = sample_candidates(Scripted(), settings, sessions)
    with sessions() as s:
        cands = s.scalars(select(Candidate).where(Candidate.batch_id == batch)).all()
    pool = {r.id: r for r in resolve_dataset("generated:train")[1]}
    added = [pool[i] for i in {c.record_id for c in cands} - {r.id for r in train}]
    assert Counter((r.language, r.label.value) for r in added) == {
        ("es", "benign"): 2, ("es", "harmful"): 2, ("fr", "benign"): 2, ("fr", "harmful"): 2}
    benign_pairs = {r.pair_id for r in added if r.label.value == "benign"}
    assert {r.pair_id for r in added if r.label.value == "harmful"} == benign_pairs
    assert {c.record_id for c in cands if c.origin == REFERENCE_ORIGIN} == {
        r.id for r in added if r.label.value == "benign"}  # the twins have no team answer


class Counting(Scripted):
    """Scripted, with a tokenizer that counts words: enough to limit prompts by their length."""

    tokenizer = staticmethod(lambda text, add_special_tokens=True: {"input_ids": text.split()})

    @staticmethod
    def render(conversation):
        return " ".join(m.content for m in conversation)


def test_team_reply_prompts_too_long_for_the_trainer_are_not_picked(tmp_path):
    from raipipe.data.team_replies import load_team_replies

    replies = load_team_replies()
    records = resolve_dataset("generated:train")[1]
    short = replies.pick_prompts(records, 20, fits=lambda r: len(r.prompt.split()) <= 14)
    assert Counter(r.language for r in short) == {"es": 20, "fr": 20}
    assert all(len(r.prompt.split()) <= 14 for r in short)
    assert any(len(r.prompt.split()) > 14 for r in replies.pick_prompts(records, 20))  # the limit did something

    train = resolve_dataset("seed:train")[1][:2]
    spec = tmp_path / "d.jsonl"
    spec.write_text("".join(json.dumps(r.model_dump(mode="json"), ensure_ascii=False) + "\n" for r in train))
    settings = SampleSettings(dataset=str(spec), num_samples=2, distilled_samples=0, team_replies=True,
                              team_reply_prompts=3, team_reply_max_prompt_tokens=14)
    with pytest.raises(ValueError, match="no local tokenizer"):
        sample_candidates(Scripted(), settings, open_store(str(tmp_path / "a.db")))
    sessions = open_store(str(tmp_path / "s.db"))
    batch = sample_candidates(Counting(), settings, sessions)
    with sessions() as s:
        cands = s.scalars(select(Candidate).where(Candidate.batch_id == batch)).all()
        manifest = s.get(SampleBatch, batch).manifest
    added = {c.record_id: c.prompt for c in cands if c.record_id not in {r.id for r in train}}
    assert len(added) == 6 and all(len(p.split()) <= 14 for p in added.values())
    assert manifest["settings"]["team_reply_max_prompt_tokens"] == 14
    with pytest.raises(ValueError, match="set both"):
        SampleSettings(team_replies=True, team_reply_max_prompt_tokens=14)


def test_prompt_tokens_are_counted_as_the_trainer_counts_them():
    """The picker's count must be DPO's (chat template with generation prompt), or a picked prompt is dropped."""
    from transformers import AutoTokenizer

    from raipipe.models.embedded import converted_dir
    from raipipe.models.transformers_backend import TransformersChatModel
    from raipipe.posttrain.sample import prompt_token_counter

    tok = AutoTokenizer.from_pretrained(converted_dir())
    model = SimpleNamespace(tokenizer=tok, model_id="t",
                            render=lambda conv: TransformersChatModel.render(SimpleNamespace(tokenizer=tok), conv))
    count = prompt_token_counter(model)
    for prompt in ("Hola", "¿Qué documentos puedo pedir legalmente a los posibles inquilinos de mi piso?"):
        dpo_len = len(tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=True,
                                              add_generation_prompt=True, return_dict=True)["input_ids"])
        assert count(prompt) == dpo_len


def test_a_prompt_limit_that_leaves_no_room_for_answers_is_refused():
    from raipipe.posttrain.config import PostTrainConfig

    sample = {"team_replies": True, "team_reply_prompts": 4, "team_reply_max_prompt_tokens": 80}
    with pytest.raises(ValueError, match="below dpo.max_length"):
        PostTrainConfig.model_validate({"sample": sample, "dpo": {"max_length": 80}})
    assert PostTrainConfig.model_validate({"sample": sample, "dpo": {"max_length": 80, "max_answer_tokens": 16}})


def test_prompts_with_a_team_answer_can_skip_the_sampled_answers(tmp_path):
    from raipipe.data.team_replies import load_team_replies

    replies = load_team_replies()
    train = resolve_dataset("seed:train")[1][:3]
    spec = tmp_path / "d.jsonl"
    spec.write_text("".join(json.dumps(r.model_dump(mode="json"), ensure_ascii=False) + "\n" for r in train))
    common = {"dataset": str(spec), "num_samples": 2, "distilled_samples": 0, "team_replies": True,
              "team_reply_prompts": 2, "greedy_sample": True}
    with pytest.raises(ValueError, match="greedy_sample"):
        SampleSettings(**common | {"greedy_sample": False, "sample_written_prompts": False})
    sessions = open_store(str(tmp_path / "s.db"))
    batch = sample_candidates(Scripted(), SampleSettings(**common, sample_written_prompts=False), sessions)
    with sessions() as s:
        cands = s.scalars(select(Candidate).where(Candidate.batch_id == batch)).all()
    origins: dict[str, list[str]] = {}
    for c in cands:
        origins.setdefault(c.record_id, []).append(c.origin)
    written = {rid for rid, o in origins.items() if REFERENCE_ORIGIN in o}
    assert len(written) == 4 and len(origins) == 7
    for rid, o in origins.items():
        sampled = o.count("policy-model")
        assert sampled == (0 if rid in written else 2) and GREEDY_ORIGIN in o
    assert all(replies.for_record(r) is None for r in train)  # seed prompts have no reply: they keep their samples


def test_shipped_openers_cover_the_shipped_languages_and_leave_others_alone():
    openers, digest = load_answer_openers(None, ["es", "fr"])
    es = openers.open("co-001-b", "es", "Un mensaje de sistema es …")
    assert es.endswith(" Un mensaje de sistema es …") and es.startswith("Claro")
    assert openers.open("co-001-b", "es", "x") == openers.open("co-001-b", "es-MX", "x")  # fixed per prompt
    assert openers.open("co-001-b", "fr", "Voici.").startswith("Bien sûr")
    assert openers.open("co-001-b", "en", "Here.") == "Here."  # not asked for: unchanged
    assert len(digest) == 16


def test_a_language_without_openers_fails_naming_the_file(tmp_path):
    with pytest.raises(DatasetError, match=r"answer_openers\.yaml.*language\(s\) de"):
        load_answer_openers(None, ["es", "de"])
    bad = tmp_path / "o.yaml"
    bad.write_text("es: []\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="o.yaml"):
        load_answer_openers(bad, ["es"])


def test_openers_need_a_team_answer_source_and_the_greedy_answer():
    with pytest.raises(ValidationError, match="team_answer_openers"):
        SampleSettings(team_answer_openers=["es"], greedy_sample=True)
    with pytest.raises(ValidationError, match="greedy_sample"):
        SampleSettings(team_answer_openers=["es"], reference_answers=True)


def test_sampling_opens_team_answers_and_harmful_greedy_answers_of_the_chosen_languages_only(tmp_path):
    train = resolve_dataset("seed:train")[1]
    benign = [r for r in train if r.label.value == "benign" and r.language in ("es", "en")]
    picked = [r for r in benign if r.language == "es"][:2] + [r for r in benign if r.language == "en"][:2]
    harmful = [next(r for r in train if r.label.value == "harmful" and r.language == lang) for lang in ("es", "en")]
    path = _write(tmp_path / "refs.jsonl",
                  [_ref(r.id, language=r.language, answer=f"Answer {r.id}.") for r in picked])
    spec = tmp_path / "d.jsonl"
    spec.write_text("".join(json.dumps(r.model_dump(mode="json"), ensure_ascii=False) + "\n"
                            for r in picked + harmful))
    sessions = open_store(str(tmp_path / "s.db"))
    base = dict(dataset=str(spec), num_samples=2, distilled_samples=0, reference_answers=True,
                reference_answers_file=path, greedy_sample=True)
    batch = sample_candidates(Scripted(), SampleSettings(**base, team_answer_openers=["es"]), sessions)
    with sessions() as s:
        cands = s.scalars(select(Candidate).where(Candidate.batch_id == batch)).all()
        manifest = s.get(SampleBatch, batch).manifest
    refs = {c.record_id: c.text for c in cands if c.origin == REFERENCE_ORIGIN}
    openers, digest = load_answer_openers(None, ["es"])
    for r in picked:
        want = openers.open(r.id, "es", f"Answer {r.id}.") if r.language == "es" else f"Answer {r.id}."
        assert refs[r.id] == want
    assert refs[picked[0].id].startswith("Claro") and manifest["answer_openers_digest"] == digest
    # the Spanish harmful prompt's greedy answer ("answer 0") also comes with the opener before it; English not
    opened = [(c.record_id, c.text) for c in cands if c.origin == OPENED_ORIGIN]
    assert opened == [(harmful[0].id, openers.open(harmful[0].id, "es", "answer 0"))]
    plain = sample_candidates(Scripted(), SampleSettings(**base), sessions)
    with sessions() as s:
        manifest_plain = s.get(SampleBatch, plain).manifest
    assert plain != batch and "answer_openers_digest" not in manifest_plain
    assert not {"team_answer_openers", "answer_openers_file"} & set(manifest_plain["settings"])


def test_the_opened_answer_is_rejected_beside_the_anchored_pair():
    # The greedy answer already refuses (the anchored pair puts it over a compliant sample); the opened copy
    # of a greedy answer is still set below the policy refusal.
    pairs = _ranked_pairs("harmful", [(1, GREEDY_ORIGIN, "No."), (2, OPENED_ORIGIN, "Claro, te lo explico. No."),
                                      (3, "policy-template-refusal", "No puedo ayudar con eso."),
                                      (4, "policy-model", "sí")], {3: 0, 1: 0, 2: 2, 4: 2})
    kept = training_pairs(pairs, strategy="greedy-anchored")
    assert Counter((p.chosen_origin, p.rejected_origin) for p in kept) == {
        (GREEDY_ORIGIN, "policy-model"): 1, ("policy-template-refusal", OPENED_ORIGIN): 1}
