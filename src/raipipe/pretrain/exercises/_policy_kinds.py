"""What each exercise kind is made of, per policy: the units (clauses, examples, exceptions) and the
values their templates are filled with. Template choice and record assembly happen in `_generate`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import product

from raipipe.policy.schema import Policy, PolicyException
from raipipe.pretrain.exercises import _render as r
from raipipe.pretrain.exercises._clauses import dependencies
from raipipe.pretrain.exercises._records import Dependency, ExerciseKind
from raipipe.pretrain.exercises._templates import Phrases

# Paths every policy-framed exercise quotes or labels (the statement is the 'why' in every kind).
_FRAME = ("title", "pillar", "severity", "statement")


@dataclass(frozen=True)
class Draft:
    """One exercise before a template is chosen: which template field to use and what to fill it with."""

    kind: ExerciseKind
    key: str  # stable unit key: seeds the template choice independently of generation order
    slot: str  # the template field, e.g. 'decline' or 'answer'
    values: dict[str, str]
    clause: str | None
    depends_on: list[Dependency] = field(default_factory=list)
    policy_id: str | None = None


def _draft(policy: Policy, kind: ExerciseKind, slot: str, clause: str, values: dict[str, str],
           *paths: str) -> Draft:
    return Draft(kind=kind, key=f"{policy.id}:{kind.value}:{clause}", slot=slot, values=values, clause=clause,
                 depends_on=dependencies(policy, *_FRAME, clause, *paths), policy_id=policy.id)


def explanations(policy: Policy, phrases: Phrases) -> Iterator[Draft]:
    """One passage per policy: its statement, boundary, allowed look-alikes and exceptions."""
    values = r.policy_values(policy, phrases) | {
        "disallowed": r.bullets(policy.disallowed),
        "allowed": r.bullets(policy.allowed),
        "exceptions": r.exception_lines(policy, phrases),
    }
    yield _draft(policy, ExerciseKind.EXPLANATION, "policy", "statement", values,
                 "disallowed", "allowed", "exceptions")


def compliance(policy: Policy, phrases: Phrases) -> Iterator[Draft]:
    """Should this request be fulfilled? From the policy's own violating and benign example prompts."""
    base = r.policy_values(policy, phrases)
    for slot, group in (("decline", "violating"), ("answer", "benign")):
        for i, request in enumerate(getattr(policy.examples, group)):
            yield _draft(policy, ExerciseKind.COMPLIANCE_QA, slot, f"examples.{group}[{i}]",
                         base | {"request": request.strip()})


def violations(policy: Policy, phrases: Phrases) -> Iterator[Draft]:
    """Does this action break clause X? A violating case per disallowed clause, an allowed case per allowed one."""
    base = r.policy_values(policy, phrases)
    for slot, group in (("violating", "disallowed"), ("allowed", "allowed")):
        for i, clause in enumerate(getattr(policy, group)):
            path = f"{group}[{i}]"
            yield _draft(policy, ExerciseKind.VIOLATION, slot, path, base | {"clause": clause, "clause_path": path})


Conditions = tuple[str | None, str | None]  # (user tier, declared use); None = absent


def _condition_pairs(exc: PolicyException) -> Iterator[tuple[Conditions, Conditions]]:
    """(allowed, denied) condition sets differing in exactly one condition, decided by `exc.applies`.

    For match=all that removes one of the required conditions; for match=any it adds one to nothing.
    """
    tiers = [None, exc.user_tiers[0]] if exc.user_tiers else [None]
    uses = [None, exc.declared_uses[0]] if exc.declared_uses else [None]
    cases = list(product(tiers, uses))
    for a, b in product(cases, cases):
        one_differs = (a[0] != b[0]) != (a[1] != b[1])
        if one_differs and exc.applies(*a) and not exc.applies(*b):
            yield a, b


def counterfactuals(policy: Policy, phrases: Phrases) -> Iterator[Draft]:
    """Allowed vs not, one detail apart: exception conditions toggled, then violating/benign look-alikes."""
    base = r.policy_values(policy, phrases)
    for exc in policy.exceptions:
        path = f"exceptions[{exc.id}]"
        for allowed, denied in _condition_pairs(exc):
            changed: Conditions = (allowed[0], None) if allowed[0] != denied[0] else (None, allowed[1])
            values = base | {
                "exception": exc.description.strip(),
                "allowed_context": r.context(exc, *allowed, phrases),
                "denied_context": r.context(exc, *denied, phrases),
                "difference": r.difference(*changed, phrases),
                "still_disallowed": r.still_disallowed(exc, phrases),
            }
            draft = _draft(policy, ExerciseKind.COUNTERFACTUAL, "condition", path, values)
            yield Draft(**{**draft.__dict__, "key": f"{draft.key}:{allowed}>{denied}"})
    pairs = zip(policy.examples.violating, policy.examples.benign, strict=False)
    for i, (bad, good) in enumerate(pairs):
        path = f"examples.violating[{i}]"
        values = base | {"violating": bad.strip(), "benign": good.strip()}
        yield _draft(policy, ExerciseKind.COUNTERFACTUAL, "lookalike", path, values, f"examples.benign[{i}]")


BUILDERS = {
    ExerciseKind.EXPLANATION: explanations,
    ExerciseKind.COMPLIANCE_QA: compliance,
    ExerciseKind.VIOLATION: violations,
    ExerciseKind.COUNTERFACTUAL: counterfactuals,
}
