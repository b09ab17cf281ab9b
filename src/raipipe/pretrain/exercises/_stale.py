"""Which exercises a new policy version makes stale, and why.

Each record keeps a digest per policy path it was written from. Staleness re-reads those paths in
the new pack: a different digest means the clause changed, a missing path that it was removed (or,
for list items, moved). `diff_packs` narrows the check to policies that actually changed when the old
pack is known; records whose recorded version differs from that old pack are always checked.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from raipipe.policy.diff import diff_packs
from raipipe.policy.loader import PolicyPack
from raipipe.policy.schema import Policy
from raipipe.pretrain.exercises._clauses import find_moved, resolve
from raipipe.pretrain.exercises._records import Exercise, content_digest


class StaleExercise(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    policy_id: str
    used_version: str | None
    current_version: str | None  # None: the policy is no longer in the pack
    reasons: list[str]


def _reasons(record: Exercise, policy: Policy) -> list[str]:
    where = f"{record.policy_version} → {policy.version}"
    out = []
    for dep in record.depends_on:
        try:
            now = content_digest(resolve(policy, dep.path))
        except KeyError:
            moved = find_moved(policy, dep.path, dep.digest)
            out.append(f"{dep.path} moved to {moved} ({where})" if moved else f"{dep.path} removed ({where})")
            continue
        if now != dep.digest:
            moved = find_moved(policy, dep.path, dep.digest)
            out.append(f"{dep.path} moved to {moved} ({where})" if moved else f"{dep.path} changed ({where})")
    return out


def _candidates(new: PolicyPack, old: PolicyPack | None) -> set[str] | None:
    """Policy ids worth checking, or None for all of them."""
    if old is None:
        return None
    diff = diff_packs(old, new)
    return set(diff.removed) | {c.policy_id for c in diff.changed}


def stale_exercises(records: Iterable[Exercise], new: PolicyPack, old: PolicyPack | None = None) -> list[StaleExercise]:
    """Exercises built from clauses that changed or disappeared in `new`, each with its reasons."""
    check = _candidates(new, old)
    stale = []
    for rec in records:
        pid = rec.policy_id
        if pid is None:
            continue
        from_old = old is not None and pid in old.policies and old.policies[pid].version == rec.policy_version
        if check is not None and pid not in check and from_old:
            continue
        policy = new.policies.get(pid)
        if policy is None:
            reasons = [f"policy {pid} removed from {new.ref} (was {rec.policy_version})"]
        else:
            reasons = _reasons(rec, policy)
        if reasons:
            stale.append(StaleExercise(id=rec.id, policy_id=pid, used_version=rec.policy_version,
                                       current_version=policy.version if policy else None, reasons=reasons))
    return stale
