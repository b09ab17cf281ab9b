"""Validate policy, pack and profile files one by one, so every bad file is reported, not just the first."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from raipipe.policy.loader import PACK_FILE, PackInfo, PolicyError, load_yaml, parse_yaml_model
from raipipe.policy.profile import ProductProfile
from raipipe.policy.schema import Policy


@dataclass
class FileResult:
    path: Path
    kind: str  # "policy", "pack" or "profile"
    summary: str = ""
    error: PolicyError | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def _kind_of(path: Path, text: str | None) -> str:
    if path.name == PACK_FILE:
        return "pack"
    if text is None:
        return "policy"  # unreadable: the policy parser reports why
    try:
        data = load_yaml(text)
    except (yaml.YAMLError, RecursionError):
        return "policy"  # let the policy parser report the syntax error with its line
    return "profile" if isinstance(data, dict) and "model_kind" in data else "policy"


def validate_file(path: Path) -> FileResult:
    """Parse one YAML file as the kind it looks like; never raises for invalid content."""
    try:
        text: str | None = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        text = None  # parse_yaml_model reads it again and reports the problem as a load would
    kind = _kind_of(path, text)
    result = FileResult(path=path, kind=kind)
    try:
        if kind == "pack":
            info = parse_yaml_model(path, PackInfo, text)
            result.summary = f"pack {info.name}@{info.version}"
        elif kind == "profile":
            prof = parse_yaml_model(path, ProductProfile, text)
            result.summary = f"profile {prof.name} ({prof.model_kind}, {prof.audience})"
        else:
            pol = parse_yaml_model(path, Policy, text)
            result.summary = f"{pol.ref} [{pol.pillar}]"
            expected = pol.id.replace(".", "_")
            if path.stem != expected:
                result.warnings.append(f"file name {path.name!r} does not match id; expected {expected}.yaml")
    except PolicyError as exc:
        result.error = exc
    except OSError as exc:
        result.error = PolicyError(path, None, "<file>", str(exc))
    return result


def validate_paths(paths: list[Path]) -> list[FileResult]:
    """Validate files and directories (all *.yaml / *.yml inside); flag duplicate policy ids per directory."""
    results: list[FileResult] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
            if not files:
                results.append(FileResult(path, "pack", error=PolicyError(path, None, "<pack>", "no YAML files")))
                continue
            seen: dict[str, Path] = {}
            for f in files:
                res = validate_file(f)
                if res.ok and res.kind == "policy":
                    pid = res.summary.split("@", 1)[0]
                    if pid in seen:
                        res.error = PolicyError(f, 1, "id", f"duplicate policy id {pid!r} (also in {seen[pid].name})")
                    seen.setdefault(pid, f)
                results.append(res)
        elif path.is_file():
            results.append(validate_file(path))
        else:
            results.append(FileResult(path, "policy", error=PolicyError(path, None, "<file>", "no such file")))
    return results
