"""The refusal-reason check: a refusal repeating another pillar's template reason is counted wrong, the
prompt's own pillar right, a refusal in the model's own words is counted apart, benign prompts are ignored."""

from __future__ import annotations

from raipipe.posttrain.refusal_reasons import check_reasons, quoted_pillar
from raipipe.posttrain.refusal_templates import load_templates

TEMPLATES, _ = load_templates()
EN = TEMPLATES.root["en"].reasons
ES = TEMPLATES.root["es"].reasons


def refusal(reason: str) -> str:
    return f"I'm sorry, but I can't help with that. {reason} I can share general safety information instead."


def test_quoted_pillar_finds_the_reason_sentence_in_the_prompts_language():
    assert quoted_pillar(refusal(EN["transparency"]), "en", TEMPLATES) == "transparency"
    assert quoted_pillar(f"Lo siento, no puedo ayudar con eso. {ES['fairness']}", "es", TEMPLATES) == "fairness"
    assert quoted_pillar("I won't write that; it targets a real person and could get them hurt.", "en",
                         TEMPLATES) is None
    cut = " ".join(EN["privacy_security"].split()[:4])  # cut off after a few words: too little to say
    assert quoted_pillar(refusal(cut), "en", TEMPLATES) is None


def test_check_counts_right_wrong_and_own_words():
    rows = [
        ("h1", "harmful", "safety", "en", refusal(EN["safety"])),
        ("h2", "harmful", "safety", "en", refusal(EN["transparency"])),  # a drug request refused as 'AI content'
        ("h3", "harmful", "fairness", "en", "No. That would demean people for who they are."),
        ("b1", "benign", "safety", "en", refusal(EN["veracity_robustness"])),  # over-refusal: another report
        ("h4", "harmful", "privacy_security", "es", ES["privacy_security"]),
    ]
    check = check_reasons(rows, TEMPLATES)
    assert (check.refusals, check.quoting_a_reason, check.right_pillar, check.wrong_pillar) == (4, 3, 2, 1)
    assert check.wrong_examples == [{"record_id": "h2", "prompt_pillar": "safety", "quoted_pillar": "transparency"}]
