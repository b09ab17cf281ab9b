"""Top-level CLI: version, and listing what is registered (built-in and entry-point plug-ins)."""

from importlib.metadata import EntryPoint

from typer.testing import CliRunner

from raipipe.cli import app
from raipipe.registry import Registry, UnknownNameError


def test_version_and_list():
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).output.startswith("raipipe ")
    judges = runner.invoke(app, ["list", "judges"])
    assert judges.exit_code == 0 and {"refusal", "refusal-features", "refusal-opener", "rubric"} <= {
        line.split()[0] for line in judges.output.splitlines()}
    backends = runner.invoke(app, ["list", "backends"])
    assert {"embedded", "hf", "openai"} <= {line.split()[0] for line in backends.output.splitlines()}
    converters = runner.invoke(app, ["list", "converters"])
    assert converters.exit_code == 0 and len(converters.output.splitlines()) >= 20
    assert {"converter_sweep", "pair", "tap", "crescendo"} <= {
        line.split()[0] for line in runner.invoke(app, ["list", "attacks"]).output.splitlines()}
    bad = runner.invoke(app, ["list", "guards"])
    assert bad.exit_code != 0 and "backends" in bad.output


class Plugin:
    """A plug-in another package would ship."""

    name = "from-entry-point"


def test_registry_loads_entry_points(monkeypatch):
    ep = EntryPoint(name="from-entry-point", value=f"{__name__}:Plugin", group="raipipe.test-kind")
    monkeypatch.setattr("raipipe.registry.entry_points", lambda group: [ep] if group == "raipipe.test-kind" else [])
    reg: Registry[object] = Registry("test kind", "raipipe.test-kind")
    assert reg.get("from-entry-point") is Plugin
    try:
        reg.get("missing")
    except UnknownNameError as exc:
        assert "known: ['from-entry-point']" in str(exc)
    else:
        raise AssertionError("an unknown name must raise")
