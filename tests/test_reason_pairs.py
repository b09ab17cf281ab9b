"""Reason pairs: the policy-written refusal over the same refusal with another policy family's reason."""

from __future__ import annotations

from raipipe.posttrain.pairs import PreferencePair
from raipipe.posttrain.reason_pairs import WRONG_REASON_ORIGIN, reason_pairs, wrong_reason
from raipipe.posttrain.refusal_templates import TEMPLATE_ORIGIN, load_templates

TEMPLATES = load_templates()[0]


def _pair(record: str, label: str = "harmful", policy: str | None = "safety.dangerous-substances",
          language: str = "en", chosen_origin: str = TEMPLATE_ORIGIN, rejected: str = "Sure, here is how.",
          chosen: str | None = None) -> PreferencePair:
    if chosen is None:
        chosen = TEMPLATES.refusal(record, language, "safety", policy)
    return PreferencePair(prompt=f"prompt {record}", chosen=chosen, rejected=rejected, margin=2.0, record_id=record,
                          policy_id=policy, label=label, language=language, rater_kinds=["ai"], batch_id="b",
                          chosen_id=1, rejected_id=2, chosen_origin=chosen_origin, rejected_origin="policy-model",
                          tier_gap=2.0)


def test_the_wrong_reason_replaces_the_right_one_and_nothing_else():
    pair = _pair("r1", language="es")
    (got,) = reason_pairs([pair], TEMPLATES)
    right = TEMPLATES.for_language("es").policy_reasons["safety.dangerous-substances"]
    wrong = wrong_reason(TEMPLATES, "es", "safety.dangerous-substances", "r1")
    assert wrong is not None and wrong != right
    assert wrong in TEMPLATES.for_language("es").policy_reasons.values()
    # another policy family: the pair must differ in the harm it names, not in a near-synonym of it
    wrong_id = next(k for k, v in TEMPLATES.for_language("es").policy_reasons.items() if v == wrong)
    assert not wrong_id.startswith("safety.")
    assert got.chosen == pair.chosen
    assert got.rejected == pair.chosen.replace(right, wrong)
    assert got.rejected_origin == WRONG_REASON_ORIGIN and got.rejected_id is None and got.tier_gap is None
    assert (got.record_id, got.label, got.language, got.policy_id) == ("r1", "harmful", "es", pair.policy_id)


def test_one_reason_pair_per_harmful_prompt_with_a_written_refusal_chosen():
    pairs = [_pair("r1"), _pair("r1", rejected="Another compliant answer."),  # same prompt: one reason pair
             _pair("r2", label="benign"),  # a benign prompt's refusal is never the chosen answer to keep
             _pair("r3", chosen_origin="policy-model", chosen="I won't help with that."),  # the model's own words
             _pair("r4", policy=None),  # no policy: no policy reason to contrast
             _pair("r5", chosen="I can't help with that. I'm happy to help with something else.")]  # no reason
    got = reason_pairs(pairs, TEMPLATES)
    assert [p.record_id for p in got] == ["r1"]
    # deterministic: a rerun builds the same pairs
    assert reason_pairs(pairs, TEMPLATES) == got


def test_dpo_pairs_add_reason_pairs_only_when_asked(tmp_path):
    from raipipe.posttrain.config import PostTrainConfig
    from raipipe.posttrain.pipeline import PostTrainPipeline

    pairs = [_pair("r1"), _pair("r2", language="fr", policy="privacy.surveillance")]
    plain = PostTrainPipeline(PostTrainConfig(out=tmp_path)).dpo_pairs(pairs)
    assert not any(p.rejected_origin == WRONG_REASON_ORIGIN for p in plain)
    cfg = PostTrainConfig(out=tmp_path, reason_pairs=True, pair_weights={"harmful:fr": 2})
    got = PostTrainPipeline(cfg).dpo_pairs(pairs)
    added = [p.record_id for p in got if p.rejected_origin == WRONG_REASON_ORIGIN]
    assert sorted(added) == ["r1", "r2", "r2"]  # pair weights apply to reason pairs too
    assert len(got) == len(plain) + 1 + 3  # r2's own pair counts twice as well


def test_training_lineage_counts_reason_pairs():
    from raipipe.posttrain.dpo import _pair_meta

    pairs = [_pair("r1"), _pair("r2")]
    meta = _pair_meta(pairs + reason_pairs(pairs, TEMPLATES))
    assert meta["reason_pairs"] == 2 and meta["pair_mix"] == {"harmful:en": 4}
