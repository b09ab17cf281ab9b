"""Sampling: K model candidates per trainable prompt, distilled ones marked, one policy-written refusal
added per prompt, stored with origins and a manifest; a rerun resumes without duplicating."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from raipipe.models.base import ChatModel
from raipipe.posttrain.refusal_templates import TEMPLATE_ORIGIN, load_templates
from raipipe.posttrain.sample import DISTILLED, GREEDY, PLAIN, SampleSettings, batch_id_for, sample_candidates
from raipipe.store.db import open_store
from raipipe.store.posttrain_tables import Candidate, SampleBatch


class Scripted(ChatModel):
    """Answers with a numbered echo; counts calls so the resume test can see nothing was regenerated."""

    def __init__(self):
        self.calls = 0
        self.params = []

    @property
    def model_id(self):
        return "scripted"

    def generate(self, conversations, params):
        self.calls += 1
        self.params.append(params)
        sys = "sys:" if conversations[0][0].role == "system" else ""
        how = "greedy" if params.temperature == 0 else "answer"
        return [[f"{sys}{how} {k} to {c[-1].content[:20]}" for k in range(params.num_return_sequences)]
                for c in conversations]


def test_candidates_origins_template_refusal_and_resume(tmp_path):
    sessions = open_store(str(tmp_path / "s.db"))
    settings = SampleSettings(limit=8, num_samples=3, distilled_samples=1, max_new_tokens=8, chunk_size=4)
    model = Scripted()
    batch = sample_candidates(model, settings, sessions)
    with sessions() as s:
        cands = s.scalars(select(Candidate).where(Candidate.batch_id == batch)).all()
        manifest = s.get(SampleBatch, batch).manifest
    per_record = Counter(c.record_id for c in cands)
    assert len(per_record) == 8 and set(per_record.values()) == {4}  # 3 from the model + 1 written refusal
    origins = Counter(c.origin for c in cands)
    assert origins == {PLAIN: 16, DISTILLED: 8, TEMPLATE_ORIGIN: 8}
    assert all(c.text.startswith("sys:") for c in cands if c.origin == DISTILLED)
    templates, digest = load_templates()
    assert manifest["refusal_templates_digest"] == digest
    for c in cands:
        if c.origin == TEMPLATE_ORIGIN:
            assert c.text == templates.refusal(c.record_id, c.language, c.pillar, c.policy_id)
    # Same settings: same batch, nothing sampled again, nothing duplicated.
    calls = model.calls
    assert sample_candidates(model, settings, sessions) == batch and model.calls == calls
    with sessions() as s:
        assert len(s.scalars(select(Candidate).where(Candidate.batch_id == batch)).all()) == 32


def test_policy_refusal_can_be_switched_off(tmp_path):
    sessions = open_store(str(tmp_path / "s.db"))
    settings = SampleSettings(limit=4, num_samples=2, distilled_samples=0, policy_refusal=False)
    batch = sample_candidates(Scripted(), settings, sessions)
    with sessions() as s:
        cands = s.scalars(select(Candidate).where(Candidate.batch_id == batch)).all()
    assert {c.origin for c in cands} == {PLAIN} and len(cands) == 8


def test_greedy_candidate_is_added_and_old_batches_keep_their_id(tmp_path):
    sessions = open_store(str(tmp_path / "s.db"))
    settings = SampleSettings(limit=4, num_samples=2, distilled_samples=0, greedy_sample=True, greedy_max_new_tokens=16)
    model = Scripted()
    batch = sample_candidates(model, settings, sessions)
    with sessions() as s:
        cands = s.scalars(select(Candidate).where(Candidate.batch_id == batch)).all()
        manifest = s.get(SampleBatch, batch).manifest
    assert Counter(c.origin for c in cands) == {PLAIN: 8, GREEDY: 4, TEMPLATE_ORIGIN: 4}
    assert {(p.temperature, p.max_new_tokens) for p in model.params} == {(0.0, 16), (0.9, 64)}
    assert all(c.text.startswith("greedy 0 to ") for c in cands if c.origin == GREEDY)
    assert manifest["settings"]["greedy_sample"] is True
    # The option is left out of the manifest while off, so batches sampled before it existed keep their id.
    off = SampleSettings(limit=4, num_samples=2, distilled_samples=0)
    other = sample_candidates(Scripted(), off, sessions)
    with sessions() as s:
        manifest_off = s.get(SampleBatch, other).manifest
    assert "greedy_sample" not in manifest_off["settings"] and "greedy_max_new_tokens" not in manifest_off["settings"]
    assert other != batch == batch_id_for(manifest)
