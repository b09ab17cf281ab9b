"""Address parts of a policy by path, in the same notation `raipipe.policy.diff` reports changes in.

Paths: 'statement', 'severity', 'disallowed[1]', 'exceptions[authorised-testing]',
'exceptions[authorised-testing].still_disallowed[0]', 'examples.benign[2]'. An exercise records a
digest per path it used; staleness re-resolves the path in a newer policy and compares digests.
"""

from __future__ import annotations

import re
from typing import Any

from raipipe.policy.schema import Policy
from raipipe.pretrain.exercises._records import Dependency, content_digest

_TOKEN = re.compile(r"([A-Za-z_]+)|\[([^\]]+)\]|(\.)")
_MISSING = object()


def _tokens(path: str) -> list[str | int]:
    out: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            raise ValueError(f"bad clause path {path!r} at {pos}")
        name, key = m.group(1), m.group(2)
        if name is not None:
            out.append(name)
        elif key is not None:
            out.append(int(key) if key.isdigit() else key)
        pos = m.end()
    return out


def _step(node: Any, key: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(key, _MISSING) if isinstance(key, str) else _MISSING
    if isinstance(node, list):
        if isinstance(key, int):
            return node[key] if 0 <= key < len(node) else _MISSING
        return next((i for i in node if isinstance(i, dict) and i.get("id") == key), _MISSING)
    return _MISSING


def resolve(policy: Policy, path: str) -> Any:
    """The JSON value at `path`, or raise KeyError when the path no longer exists."""
    node: Any = policy.model_dump(mode="json")
    for key in _tokens(path):
        node = _step(node, key)
        if node is _MISSING:
            raise KeyError(path)
    return node


def dependency(policy: Policy, path: str) -> Dependency:
    return Dependency(path=path, digest=content_digest(resolve(policy, path)))


def dependencies(policy: Policy, *paths: str) -> list[Dependency]:
    return [dependency(policy, p) for p in dict.fromkeys(paths)]


def find_moved(policy: Policy, path: str, digest: str) -> str | None:
    """If a list item's content now sits at another index of the same list, return that new path."""
    m = re.match(r"^(.*)\[(\d+)\]$", path)
    if not m:
        return None
    try:
        items = resolve(policy, m.group(1))
    except KeyError:
        return None
    if not isinstance(items, list):
        return None
    for i, item in enumerate(items):
        if content_digest(item) == digest:
            return f"{m.group(1)}[{i}]"
    return None
