"""Reason pairs: the right reason above a wrong one, in otherwise the same written refusal.

Every other pair tells the model *whether* to refuse. A small model trained on those alone learns the
template's reason sentences as phrases and attaches them to the wrong harms: it refuses a drug request
"because it would mean hiding that content is AI-generated" (the explainability defect the refusal-reason
check counts). A reason pair keeps the policy-written refusal of a harmful prompt as `chosen` and makes
`rejected` the same refusal with another policy family's reason sentence in its place, so the only
difference DPO can learn from is which harm the reason names."""

from __future__ import annotations

from collections.abc import Iterable

from raipipe.posttrain.pairs import PreferencePair
from raipipe.posttrain.refusal_templates import TEMPLATE_ORIGIN, RefusalTemplates, key_number

WRONG_REASON_ORIGIN = "policy-template-wrong-reason"


def _family(policy_id: str) -> str:
    return policy_id.split(".", 1)[0]


def wrong_reason(templates: RefusalTemplates, language: str, policy_id: str, key: str) -> str | None:
    """A reason sentence of a policy outside `policy_id`'s family, picked by `key` (the record id) so that
    a rerun builds the same pairs; None where the language has no other family's sentence."""
    reasons = templates.for_language(language).policy_reasons
    others = sorted(pid for pid in reasons if _family(pid) != _family(policy_id))
    if not others:
        return None
    return reasons[others[key_number(key) % len(others)]]


def reason_pairs(pairs: Iterable[PreferencePair], templates: RefusalTemplates) -> list[PreferencePair]:
    """One reason pair per harmful prompt whose chosen answer is the policy-written refusal naming its own
    policy's harm. Prompts without a policy, or whose refusal states no policy sentence of the templates
    (a pillar's fallback sentence), get none."""
    out: list[PreferencePair] = []
    seen: set[str] = set()
    for p in pairs:
        if (p.label != "harmful" or p.chosen_origin != TEMPLATE_ORIGIN or not p.policy_id
                or p.record_id in seen):
            continue
        language = p.language or "en"
        right = templates.for_language(language).policy_reasons.get(p.policy_id)
        wrong = wrong_reason(templates, language, p.policy_id, p.record_id)
        if right is None or wrong is None or right not in p.chosen:
            continue
        seen.add(p.record_id)
        out.append(p.model_copy(update={
            "rejected": p.chosen.replace(right, wrong), "rejected_id": None,
            "rejected_origin": WRONG_REASON_ORIGIN, "tier_gap": None, "votes_for": 1, "votes_against": 0}))
    return out
