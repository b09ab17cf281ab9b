"""Turn policy parts into the language-specific pieces templates are filled with."""

from __future__ import annotations

from raipipe.policy.schema import ExceptionMatch, Policy, PolicyException
from raipipe.pretrain.exercises._templates import Phrases


def bullets(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def join_words(items: list[str], word: str) -> str:
    """'a, b and c' in the frame language."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def policy_values(policy: Policy, phrases: Phrases) -> dict[str, str]:
    """Placeholders every policy-based template may use."""
    return {
        "title": policy.title,
        "policy_id": policy.id,
        "pillar": phrases.pillars[policy.pillar],
        "severity": phrases.severity[policy.severity],
        "statement": policy.statement.strip(),
    }


def context(exc: PolicyException, tier: str | None, use: str | None, phrases: Phrases) -> str:
    """A situation described by only the conditions this exception looks at (tier, declared use)."""
    parts = []
    if exc.user_tiers:
        parts.append(phrases.tier.format(value=tier) if tier else phrases.no_tier)
    if exc.declared_uses:
        parts.append(phrases.use.format(value=use) if use else phrases.no_use)
    return join_words(parts, phrases.and_word)


def difference(tier: str | None, use: str | None, phrases: Phrases) -> str:
    """The one condition that differs between the two cases of a counterfactual pair."""
    return phrases.tier.format(value=tier) if tier else phrases.use.format(value=use)


def still_disallowed(exc: PolicyException, phrases: Phrases) -> str:
    return " ".join(exc.still_disallowed) if exc.still_disallowed else phrases.none_listed


def exception_lines(policy: Policy, phrases: Phrases) -> str:
    """One bullet per exception: its description and when it applies ('and' vs 'or' follows `match`)."""
    if not policy.exceptions:
        return phrases.no_exceptions
    lines = []
    for exc in policy.exceptions:
        conds = [phrases.tier.format(value=t) for t in exc.user_tiers]
        uses = [phrases.use.format(value=u) for u in exc.declared_uses]
        word = phrases.and_word if exc.match is ExceptionMatch.ALL else phrases.or_word
        groups = [g for g in (join_words(conds, phrases.or_word), join_words(uses, phrases.or_word)) if g]
        when = join_words(groups, word)
        lines.append(f"{exc.description.strip()} ({when})")
    return bullets(lines)
