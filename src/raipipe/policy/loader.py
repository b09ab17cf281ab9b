"""Load and validate policy YAML, pointing errors at the file, line and field."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from raipipe.errors import LocatedError, PolicyError
from raipipe.policy.schema import Pillar, Policy

PACK_FILE = "pack.yaml"
# libyaml's loader when PyYAML was built with it (the shipped pack loads in 0.01 s instead of 0.18 s): the same
# nodes, line marks and data as the pure-Python SafeLoader
_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose_load(text: str, loader_cls: type[yaml.SafeLoader] = _FAST_LOADER) -> tuple[yaml.Node | None, Any]:
    """Parse once: the node tree (for line numbers) and the data built from it (as `yaml.safe_load`)."""
    loader = loader_cls(text)
    try:
        root = loader.get_single_node()
        return root, (None if root is None else loader.construct_document(root))
    finally:
        loader.dispose()


def load_yaml(text: str) -> Any:
    """`yaml.safe_load`, with libyaml when available."""
    return yaml.load(text, Loader=_FAST_LOADER)


def _parse(text: str) -> tuple[yaml.Node | None, Any]:
    """`_compose_load` with the fast loader; on a syntax error the pure-Python parser re-reads the text so
    the message and line are PyYAML's own whichever loader is installed (only a broken file pays twice)."""
    try:
        return _compose_load(text)
    except yaml.YAMLError:
        if _FAST_LOADER is yaml.SafeLoader:
            raise
        return _compose_load(text, yaml.SafeLoader)


def _node_at(node: yaml.Node, loc: Iterable[Any]) -> yaml.Node:
    """Walk a composed YAML node tree along a pydantic error location; stop where it ends."""
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == key), None)
            if nxt is None:
                return node
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return node
    return node


def yaml_line(text: str, loc: Iterable[Any]) -> int | None:
    """1-based line of the node at `loc` (a pydantic-style location) in a YAML text; None for an empty one."""
    root = yaml.compose(text, Loader=_FAST_LOADER)
    return None if root is None else _node_at(root, loc).start_mark.line + 1


def _duplicate_key(node: yaml.Node | None, loc: tuple[Any, ...] = ()) -> tuple[str, int] | None:
    """First repeated mapping key (dotted path, 1-based line): safe_load would silently keep the last."""
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for k, v in node.value:
            key = getattr(k, "value", None)
            if key in seen:
                return ".".join(str(p) for p in (*loc, key)), k.start_mark.line + 1
            seen.add(key)
            found = _duplicate_key(v, (*loc, key))
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _duplicate_key(item, (*loc, i))
            if found:
                return found
    return None


def _read_text(path: Path, error: type[LocatedError]) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise error(path, None, None, "no such file") from None
    except IsADirectoryError:
        raise error(path, None, None, "is a directory, not a YAML file") from None
    except PermissionError:
        raise error(path, None, None, "permission denied", hint="make the file readable") from None
    except UnicodeDecodeError as exc:
        raise error(path, None, "<encoding>", f"not valid UTF-8 (byte {exc.start})") from None


def _merge(data: dict, overrides: Mapping[str, Any]) -> dict:
    """Overrides win; a mapping value is merged one level deep (e.g. one field of `params`)."""
    out = dict(data)
    for key, value in overrides.items():
        old = out.get(key)
        out[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, Mapping) else value
    return out


def parse_yaml_model(path: Path, model: type[BaseModel], text: str | None = None,
                     error: type[LocatedError] = PolicyError, overrides: Mapping[str, Any] | None = None) -> Any:
    """Parse one YAML document into `model`, raising `error` (PolicyError) with a line number on failure.

    `overrides` (e.g. command-line flags) replace the file's values before validation; an error in one
    of them names the option rather than a line of the file."""
    text = _read_text(path, error) if text is None else text
    try:
        root, data = _parse(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        msg = str(getattr(exc, "problem", None) or str(exc).splitlines()[0])
        if "mapping values are not allowed" in msg:
            msg += " (quote text that contains ': ')"
        raise error(path, mark.line + 1 if mark else None, "<yaml>", msg) from exc
    except RecursionError:
        raise error(path, None, "<yaml>", "nested too deeply") from None
    if not isinstance(data, dict) or root is None:
        raise error(path, 1, "<root>", "expected a mapping at the top of the file")
    dup = _duplicate_key(root)
    if dup:
        raise error(path, dup[1], dup[0], "duplicate key")
    try:
        return model.model_validate(_merge(data, overrides or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err["loc"]
        field_path = ".".join(str(p) for p in loc) or "<root>"
        extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        if loc and overrides and loc[0] in overrides:
            raise error(f"option --{str(loc[0]).replace('_', '-')}", None, field_path, err["msg"] + extra) from exc
        line = _node_at(root, loc).start_mark.line + 1
        raise error(path, line, field_path, err["msg"] + extra) from exc


class PackInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: str
    description: str = ""


@dataclass
class PolicyPack:
    """A versioned set of policies. `ref` and `digest` go into every artifact's manifest."""

    info: PackInfo
    policies: dict[str, Policy] = field(default_factory=dict)
    root: Path | None = None

    @property
    def ref(self) -> str:
        return f"{self.info.name}@{self.info.version}"

    @property
    def digest(self) -> str:
        blob = json.dumps({k: p.model_dump(mode="json") for k, p in sorted(self.policies.items())})
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def get(self, policy_id: str) -> Policy:
        try:
            return self.policies[policy_id]
        except KeyError:
            raise KeyError(f"no policy {policy_id!r} in pack {self.ref}; known: {sorted(self.policies)}") from None

    def by_pillar(self) -> dict[Pillar, list[Policy]]:
        out: dict[Pillar, list[Policy]] = {p: [] for p in Pillar}
        for pol in self.policies.values():
            out[pol.pillar].append(pol)
        return out

    def versions(self) -> dict[str, str]:
        return {pid: p.version for pid, p in sorted(self.policies.items())}


def load_policy(path: Path) -> Policy:
    return parse_yaml_model(Path(path), Policy)


def load_pack(directory: Path | str | None = None) -> PolicyPack:
    """Load a policy directory (pack.yaml + one YAML per policy); default: the shipped pack."""
    root = Path(directory) if directory else default_pack_dir()
    if not root.is_dir():
        raise PolicyError(root, None, None, "no such directory" if not root.exists() else "not a directory",
                          hint="give a policy pack directory (pack.yaml plus one YAML per policy)")
    pack_path = root / PACK_FILE
    if not pack_path.is_file():  # a pack's name and version go into every manifest: never guess them
        raise PolicyError(root, None, None, f"not a policy pack: no {PACK_FILE}",
                          hint=f"add {PACK_FILE} with `name: my-pack` and `version: 1.0.0`")
    info = parse_yaml_model(pack_path, PackInfo)
    pack = PolicyPack(info=info, root=root)
    for path in sorted(root.glob("*.y*ml")):
        if path.name == PACK_FILE:
            continue
        pol = load_policy(path)
        if pol.id in pack.policies:
            raise PolicyError(path, 1, "id", f"duplicate policy id {pol.id!r}")
        pack.policies[pol.id] = pol
    if not pack.policies:
        raise PolicyError(root, None, "<pack>", "no policy files found")
    return pack


def default_pack_dir() -> Path:
    return Path(str(resources.files("raipipe") / "resources" / "policies" / "default"))
