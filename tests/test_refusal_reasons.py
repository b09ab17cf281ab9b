"""The refusal-reason check: a refusal repeating a reason that belongs to another policy or pillar is counted
wrong, the prompt's own policy or pillar right, a refusal in the model's own words is counted apart, benign
prompts are ignored. The shipped templates give every policy of the default pack its own reason."""

from __future__ import annotations

from raipipe.policy.loader import load_pack
from raipipe.posttrain.refusal_reasons import QuotedReason, check_reasons, quoted_reason
from raipipe.posttrain.refusal_templates import load_templates

TEMPLATES, _ = load_templates()
EN = TEMPLATES.root["en"].reasons
ES = TEMPLATES.root["es"].reasons
EN_POLICY = TEMPLATES.root["en"].policy_reasons
DRUGS, AI = "safety.dangerous-substances", "transparency.ai-disclosure"


def refusal(reason: str) -> str:
    return f"I'm sorry, but I can't help with that. {reason} I can share general safety information instead."


def test_quoted_reason_finds_the_sentence_in_the_prompts_language():
    assert quoted_reason(refusal(EN["transparency"]), "en", TEMPLATES) == QuotedReason(kind="pillar",
                                                                                      id="transparency")
    assert quoted_reason(f"Lo siento, no puedo ayudar con eso. {ES['fairness']}", "es", TEMPLATES).id == "fairness"
    assert quoted_reason(refusal(EN_POLICY[DRUGS]), "en", TEMPLATES) == QuotedReason(kind="policy", id=DRUGS)
    assert quoted_reason("I won't write that; it targets a real person and could get them hurt.", "en",
                         TEMPLATES) is None
    cut = " ".join(EN["privacy_security"].split()[:4])  # cut off after a few words: too little to say
    assert quoted_reason(refusal(cut), "en", TEMPLATES) is None


def test_check_counts_right_wrong_and_own_words():
    rows = [
        ("h1", "harmful", "safety", DRUGS, "en", refusal(EN["safety"])),
        ("h2", "harmful", "safety", DRUGS, "en", refusal(EN["transparency"])),  # a drug request refused as 'AI'
        ("h3", "harmful", "fairness", None, "en", "No. That would demean people for who they are."),
        ("b1", "benign", "safety", DRUGS, "en", refusal(EN["veracity_robustness"])),  # over-refusal: elsewhere
        ("h4", "harmful", "privacy_security", None, "es", ES["privacy_security"]),
        ("h5", "harmful", "safety", DRUGS, "en", refusal(EN_POLICY[DRUGS])),
        ("h6", "harmful", "safety", DRUGS, "en", refusal(EN_POLICY[AI])),
    ]
    check = check_reasons(rows, TEMPLATES)
    assert (check.refusals, check.quoting_a_reason, check.quoting_a_policy_reason) == (6, 5, 2)
    assert (check.right_reason, check.wrong_reason) == (3, 2)
    assert [w["record_id"] for w in check.wrong_examples] == ["h2", "h6"]
    assert check.wrong_examples[1] == {"record_id": "h6", "prompt_policy": DRUGS, "prompt_pillar": "safety",
                                       "quoted": f"policy:{AI}"}


def test_templates_name_each_policys_harm_in_every_language():
    pack = load_pack(None)
    for language, lang in TEMPLATES.root.items():
        assert set(lang.policy_reasons) == set(pack.policies), language
        for policy in pack.policies.values():
            assert TEMPLATES.reason(language, policy.pillar, policy.id) == lang.policy_reasons[policy.id]
            refusal_text = TEMPLATES.refusal("r1", language, policy.pillar, policy.id)
            assert lang.policy_reasons[policy.id] in refusal_text
    # no policy id (or one the templates lack): the pillar's sentence
    assert TEMPLATES.reason("fr", "safety", None) == TEMPLATES.root["fr"].reasons["safety"]
    assert TEMPLATES.reason("es", "safety", "safety.unknown") == ES["safety"]
