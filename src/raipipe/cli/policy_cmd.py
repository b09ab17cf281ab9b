"""`raipipe policy` commands: validate, list, show, diff and map policies."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from raipipe.policy.diff import Level, PackDiff, diff_paths
from raipipe.policy.loader import PolicyError, PolicyPack, default_pack_dir, load_pack
from raipipe.policy.profile import ProfileMap, load_profile, map_profile
from raipipe.policy.schema import Pillar, Policy, Severity
from raipipe.policy.validate import validate_paths

app = typer.Typer(no_args_is_help=True)

PackOpt = Annotated[Path | None, typer.Option("--pack", help="policy pack directory (default: shipped pack)")]
_SEV_STYLE = {Severity.LOW: "green", Severity.MEDIUM: "yellow", Severity.HIGH: "red", Severity.CRITICAL: "bold red"}
_LEVEL_STYLE = {Level.ERROR: "bold red", Level.WARNING: "yellow", Level.INFO: "dim"}


def _console() -> Console:
    return Console(highlight=False)


def _fail(console: Console, message: str, code: int = 1) -> typer.Exit:
    console.print(Text(message, style="red"), soft_wrap=True)
    return typer.Exit(code)


def _load(console: Console, pack_dir: Path | None) -> PolicyPack:
    try:
        return load_pack(pack_dir)
    except PolicyError as exc:
        raise _fail(console, str(exc)) from exc


@app.command("validate")
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="policy/profile files or pack directories")] = None,
) -> None:
    """Validate policy, pack and profile YAML; print OK or `file:line: field 'x': message` per file."""
    console = _console()
    results = validate_paths(paths or [default_pack_dir()])
    for res in results:
        if res.ok:
            console.print(Text.assemble(("OK ", "green"), f"{res.path}  ({res.summary})"), soft_wrap=True)
        else:
            console.print(Text.assemble(("ERROR ", "bold red"), str(res.error)), soft_wrap=True)
        for warning in res.warnings:
            console.print(Text.assemble(("WARN ", "yellow"), f"{res.path}: {warning}"), soft_wrap=True)
    bad = sum(not r.ok for r in results)
    console.print(f"{len(results) - bad} ok, {bad} failed")
    if bad:
        raise typer.Exit(1)


@app.command("list")
def list_policies(pack: PackOpt = None) -> None:
    """List the policies in a pack."""
    console = _console()
    loaded = _load(console, pack)
    table = Table(title=f"{loaded.ref}  ({len(loaded.policies)} policies, digest {loaded.digest})")
    for col in ("id", "version", "pillar", "severity", "title"):
        table.add_column(col, no_wrap=col != "title")
    for pillar, policies in loaded.by_pillar().items():
        for pol in sorted(policies, key=lambda p: p.id):
            table.add_row(pol.id, pol.version, pillar.value, Text(pol.severity, _SEV_STYLE[pol.severity]), pol.title)
    console.print(table)


def _bullets(items: list[str]) -> str:
    return "\n".join(f"• {escape(i)}" for i in items) or "—"


def render_policy(pol: Policy) -> Panel:
    """Rich view of one policy: what to decline, what to still answer, and how it is judged."""
    head = Text.assemble(
        (pol.ref, "bold"), "  ", (pol.pillar.value, "cyan"), "  ", (pol.severity.value, _SEV_STYLE[pol.severity])
    )
    rules = Table.grid(padding=(0, 2))
    rules.add_column(style="bold", no_wrap=True)
    rules.add_column()
    rules.add_row("Statement", escape(pol.statement))
    rules.add_row("Disallowed", _bullets(pol.disallowed))
    rules.add_row("Allowed", _bullets(pol.allowed))
    for exc in pol.exceptions:
        who = f"tiers={exc.user_tiers} uses={exc.declared_uses} (match {exc.match.value})"
        rules.add_row(
            "Exception",
            f"[bold]{escape(exc.id)}[/bold]: {escape(exc.description)}\n[dim]{escape(who)}[/dim]\n"
            f"Still disallowed:\n{_bullets(exc.still_disallowed)}",
        )
    rules.add_row("Harms", escape(", ".join(pol.harms)) or "—")
    rubric = Table(title="Rubric", show_lines=False, expand=True)
    rubric.add_column("score", justify="right", no_wrap=True)
    rubric.add_column("description")
    for lv in pol.rubric.levels:
        rubric.add_row(str(lv.score), escape(lv.description))
    examples = Table(title="Examples", expand=True)
    examples.add_column("violating (decline)", style="red")
    examples.add_column("benign look-alike (answer)", style="green")
    for i in range(max(len(pol.examples.violating), len(pol.examples.benign))):
        v = pol.examples.violating[i] if i < len(pol.examples.violating) else ""
        b = pol.examples.benign[i] if i < len(pol.examples.benign) else ""
        examples.add_row(escape(v), escape(b))
    body = Group(head, Text(""), rules, Text(""), Text(pol.rubric.instructions, style="italic"), rubric, examples)
    return Panel(body, title=escape(pol.title), expand=True)


@app.command("show")
def show(
    policy_id: Annotated[str, typer.Argument(metavar="ID", help="policy id, e.g. safety.self-harm")],
    pack: PackOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the policy as JSON")] = False,
) -> None:
    """Show one policy."""
    console = _console()
    loaded = _load(console, pack)
    try:
        pol = loaded.get(policy_id)
    except KeyError as exc:
        raise _fail(console, exc.args[0]) from exc
    if as_json:
        typer.echo(pol.model_dump_json(indent=2))
        return
    console.print(render_policy(pol))


def _short(value: object, limit: int = 400) -> str:
    text = "—" if value is None else json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_diff(result: PackDiff) -> Group:
    parts: list[RenderableType] = [Text(f"{result.old_ref} → {result.new_ref}", style="bold")]
    if result.is_empty:
        parts.append(Text("no policy changes", style="green"))
    summary = Table(title="Policies", show_header=True)
    summary.add_column("change", no_wrap=True)
    summary.add_column("policy", no_wrap=True)
    summary.add_column("version", no_wrap=True)
    for pid in result.added:
        summary.add_row(Text("added", "green"), pid, "")
    for pid in result.removed:
        summary.add_row(Text("removed", "red"), pid, "")
    for ch in result.changed:
        summary.add_row(Text("changed", "yellow"), ch.policy_id, f"{ch.old_version} → {ch.new_version}")
    if not result.is_empty:
        parts.append(summary)
    for ch in result.changed:
        if not ch.fields:
            continue
        table = Table(title=f"{ch.policy_id}: {ch.old_version} → {ch.new_version}", expand=True)
        table.add_column("field", no_wrap=True)
        table.add_column("old", style="red")
        table.add_column("new", style="green")
        for fc in ch.fields:
            table.add_row(escape(fc.path), escape(_short(fc.old)), escape(_short(fc.new)))
        parts.append(table)
    for f in result.findings:
        where = f"{f.policy_id}: " if f.policy_id else ""
        parts.append(Text.assemble((f"{f.level.value.upper()} ", _LEVEL_STYLE[f.level]), where + f.message))
    return Group(*parts)


@app.command("diff")
def diff(
    old: Annotated[Path, typer.Argument(help="old pack directory or policy file")],
    new: Annotated[Path, typer.Argument(help="new pack directory or policy file")],
    as_json: Annotated[bool, typer.Option("--json", help="print the diff as JSON")] = False,
) -> None:
    """Diff two packs or two policy files; exit 1 if a changed policy did not bump its version."""
    console = _console()
    try:
        result = diff_paths(old, new)
    except (PolicyError, ValueError) as exc:
        raise _fail(console, str(exc), code=2) from exc
    if as_json:
        typer.echo(json.dumps(asdict(result), indent=2, ensure_ascii=False, default=str))
    else:
        console.print(render_diff(result), soft_wrap=False)
    if result.has_errors:
        raise typer.Exit(1)


def render_map(pm: ProfileMap) -> Group:
    table = Table(title=f"{pm.profile} × {pm.pack}", show_lines=True, expand=True)
    table.add_column("pillar", no_wrap=True, style="cyan")
    table.add_column("anticipated harms (* = emphasised)")
    table.add_column("policies")
    table.add_column("gaps (no policy)", style="bold red")
    for pillar in Pillar:
        row = pm.pillars[pillar]
        harms = ", ".join(h.harm + ("*" if h.emphasised else "") for h in row.harms) or "—"
        table.add_row(pillar.value, harms, "\n".join(row.policies) or "—", "\n".join(row.gaps) or "")
    parts: list[RenderableType] = [table, Text("rules applied: " + ", ".join(pm.rules_applied), style="dim")]
    for ch in pm.severity_changes:
        level = f"{ch.base} → {ch.effective}" if ch.base != ch.effective else f"{ch.base} (already highest)"
        parts.append(Text(f"emphasised {ch.policy_id}: severity {level} ({', '.join(ch.because)})"))
    for exc in pm.exceptions_in_scope:
        parts.append(Text(f"exception in scope: {exc.policy_id} / {exc.exception_id}", style="yellow"))
    if pm.excluded:
        parts.append(Text("excluded by profile: " + ", ".join(pm.excluded), style="dim"))
    if pm.unused_policies:
        parts.append(Text("policies no anticipated harm reached: " + ", ".join(pm.unused_policies), style="dim"))
    for note in pm.notes:
        parts.append(Text("note: " + note, style="dim"))
    gaps = pm.gaps()
    if gaps:
        body = "\n".join(f"• {p.value}: {h}" for p, h in gaps)
        parts.append(Panel(body, title=f"{len(gaps)} coverage gap(s): add policies or accept the risk", style="red"))
    else:
        parts.append(Text("no coverage gaps", style="green"))
    return Group(*parts)


@app.command("map")
def map_cmd(
    profile: Annotated[str, typer.Argument(help="profile YAML path or shipped profile name")],
    pack: PackOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the mapping as JSON")] = False,
) -> None:
    """Map a product profile to anticipated harms per pillar, the policies covering them, and gaps."""
    console = _console()
    loaded = _load(console, pack)
    try:
        prof = load_profile(profile)
    except PolicyError as exc:
        raise _fail(console, str(exc)) from exc
    result = map_profile(prof, loaded)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    console.print(render_map(result))
