"""Every bad input gets one readable error that says what to fix: right exit code, no traceback, and
nothing half-written to the store or the output folder. None of these cases loads a model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from raipipe.cli import app

runner = CliRunner()


def _rec(i: str, prompt: str = "How do I bake bread?", **kw) -> str:
    row = {"id": i, "prompt": prompt, "label": "benign", "pillar": "safety",
           "source": {"kind": "team_written", "name": "t"}, **kw}
    return json.dumps(row)


FILES: dict[str, str] = {
    "good.jsonl": _rec("a") + "\n" + _rec("b") + "\n",
    "copy/good.jsonl": _rec("a") + "\n",
    "other.jsonl": _rec("a") + "\n",
    "bad_json.jsonl": _rec("a") + "\n{not json\n",
    "bad_label.jsonl": _rec("a", label="dangerous") + "\n",
    "bad_pillar.jsonl": _rec("a", pillar="nope") + "\n",
    "no_prompt.jsonl": json.dumps({"id": "x", "label": "benign", "pillar": "safety",
                                   "source": {"kind": "team_written", "name": "t"}}) + "\n",
    "empty.jsonl": "\n\n",
    "dup.jsonl": _rec("a") + "\n" + _rec("a") + "\n",
    "long.jsonl": _rec("big", prompt="x" * 1_000_000) + "\n",
    "table.csv": "prompt\nhi\n",
    "responses_bad.jsonl": "{\"id\": 1}\n",
    "cfg/syntax.yaml": "model: [embedded:smollm2\n",
    "cfg/unknown.yaml": "model: embedded:smollm2\ndatasets: [seed:test]\ncolour: blue\n",
    "cfg/type.yaml": "model: embedded:smollm2\ndatasets: [seed:test]\nlimit: many\n",
    "cfg/list.yaml": "- model\n- datasets\n",
    "cfg/nodata.yaml": "model: embedded:smollm2\ndatasets: []\n",
    "cfg/reject.yaml": "model: embedded:smollm2\ndatasets: [{long}]\non_long_prompt: reject\n",
    "cfg/dup_key.yaml": "model: embedded:smollm2\nmodel: hf:x\ndatasets: [seed:test]\n",
    "nopack/safety_x.yaml": "id: safety.x\n",
    "nomodel/weights.txt": "",
    "policy/broken.yaml": "id: safety.x\nversion: [1\n",
}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("{long}", str(tmp_path / "long.jsonl")), encoding="utf-8")
    return tmp_path


def _eval(*extra: str) -> list[str]:
    return ["eval", "--store", "{tmp}/store.db", "--out", "{tmp}/out", *extra]


# (args, exit code, text the message must contain)
CASES: list[tuple[list[str], int, str]] = [
    (_eval("--model", "hf:/nonexistent"), 2, "no such directory"),
    (_eval("--model", "nope:x"), 2, "KIND one of"),
    (_eval("--model", "smollm2"), 2, "should be KIND:ARG"),
    (_eval("--model", "embedded:gpt5"), 2, "unknown embedded model"),
    (_eval("--model", "hf:{tmp}/nomodel"), 2, "no config.json"),
    (_eval("--model", "hf:{tmp}/good.jsonl"), 2, "is a file"),
    (_eval("--model", "hf:org/name+{tmp}/missing-adapter"), 2, "no such directory"),
    (_eval("--model", "embedded:smollm2?dtype=float64"), 2, "dtype"),
    (_eval("--judge", "rubric"), 2, "--judge-model"),
    (_eval("--judge", "nosuch"), 2, "choose one of"),
    (_eval("--judge", "rubric", "--judge-model", "bad"), 2, "KIND:ARG"),
    (_eval("-d", "{tmp}/missing.jsonl"), 2, "no such file"),
    (_eval("-d", "{tmp}/table.csv"), 2, "BENCH:"),
    (_eval("-d", "{tmp}/bad_json.jsonl"), 2, "bad_json.jsonl:2: field '<json>'"),
    (_eval("-d", "{tmp}/bad_label.jsonl"), 2, "field 'label'"),
    (_eval("-d", "{tmp}/bad_pillar.jsonl"), 2, "field 'pillar'"),
    (_eval("-d", "{tmp}/no_prompt.jsonl"), 2, "field 'prompt'"),
    (_eval("-d", "{tmp}/empty.jsonl"), 2, "has no records"),
    (_eval("-d", "{tmp}/dup.jsonl"), 2, "duplicate id 'a'"),
    (_eval("-d", "{tmp}/good.jsonl", "-d", "{tmp}/other.jsonl"), 2, "also appears in good"),
    (_eval("-d", "{tmp}/good.jsonl", "-d", "{tmp}/copy/good.jsonl"), 2, "given twice"),
    (_eval("-d", "seed:holdout"), 2, "unknown split"),
    (_eval("-d", ""), 2, "empty dataset spec"),
    (_eval("-d", "{tmp}/long.jsonl", "--on-long-prompt", "reject"), 2, "max_prompt_chars"),
    (_eval("--on-long-prompt", "maybe"), 2, "on_long_prompt"),
    (_eval("--max-new-tokens", "0"), 2, "max_new_tokens"),
    (_eval("--limit", "0"), 2, "--limit"),
    (_eval("--system-prompt", "@{tmp}/missing.txt"), 2, "no such file"),
    (["eval", "--store", "{tmp}/store.db", "--out", "{tmp}/good.jsonl"], 2, "is a file, not a directory"),
    (_eval("--store", "{tmp}/good.jsonl/sub/s.db"), 2, "nothing can be created inside it"),
    (_eval("--config", "{tmp}/cfg/missing.yaml"), 2, "no such file"),
    (_eval("--config", "{tmp}/cfg/syntax.yaml"), 2, "syntax.yaml:2: field '<yaml>'"),
    (_eval("--config", "{tmp}/cfg/unknown.yaml"), 2, "field 'colour'"),
    (_eval("--config", "{tmp}/cfg/type.yaml"), 2, "type.yaml:3: field 'limit'"),
    (_eval("--config", "{tmp}/cfg/list.yaml"), 2, "expected a mapping"),
    (_eval("--config", "{tmp}/cfg/nodata.yaml"), 2, "field 'datasets'"),
    (_eval("--config", "{tmp}/cfg/dup_key.yaml"), 2, "duplicate key"),
    (_eval("--config", "{tmp}/cfg/reject.yaml"), 2, "on_long_prompt: truncate"),
    (_eval("--config", "{tmp}/cfg"), 2, "is a directory"),
    (["data", "validate", "{tmp}/missing.jsonl"], 1, "no such file"),
    (["data", "validate", "{tmp}/bad_label.jsonl"], 1, "field 'label'"),
    (["data", "stats", "nope:thing"], 1, "valid dataset specs"),
    (["data", "dedup", "{tmp}/good.jsonl", "--out", "{tmp}/copy"], 2, "is a directory"),
    (["data", "load-benchmark", "xstest", "{tmp}/missing.csv", "--out", "{tmp}/out/x.jsonl"], 1, "no such file"),
    (["judge", "--judge", "nosuch", "-i", "{tmp}/good.jsonl", "-o", "{tmp}/out/j.jsonl"], 2, "choose one of"),
    (["judge", "--judge", "rubric", "-i", "{tmp}/good.jsonl", "-o", "{tmp}/out/j.jsonl"], 2, "--judge-model"),
    (["judge", "-i", "{tmp}/missing.jsonl", "-o", "{tmp}/out/j.jsonl"], 2, "no such file"),
    (["judge", "-i", "{tmp}/responses_bad.jsonl", "-o", "{tmp}/out/j.jsonl"], 2, "needs JSON with id, prompt"),
    (["judge", "calibrate", "--labels", "{tmp}/missing.jsonl"], 2, "no such file"),
    (["policy", "list", "--pack", "{tmp}/nopack"], 1, "no pack.yaml"),
    (["policy", "list", "--pack", "{tmp}/missing-pack"], 1, "no such directory"),
    (["policy", "validate", "{tmp}/policy/broken.yaml"], 1, "broken.yaml"),
    (["policy", "show", "safety.nope"], 1, "no policy 'safety.nope'"),
    (["rank", "serve", "--store", "{tmp}/store.db"], 2, "no such store file"),
    (["rank", "export", "--store", "{tmp}/store.db", "--out", "{tmp}/out/r.jsonl"], 2, "no such store file"),
    (["rank", "agreement", "--store", "{tmp}/store.db"], 2, "no such store file"),
    (["rank", "ai", "--store", "{tmp}/store.db", "--batch", "b"], 2, "no such store file"),
    (["rank", "import", "{tmp}/good.jsonl", "--store", "{tmp}/store.db"], 2, "no such store file"),
    (["list", "guards"], 2, "backends"),
]


@pytest.mark.parametrize(("args", "code", "needle"), CASES, ids=[" ".join(c[0][:1] + c[0][5:7]) or c[0][0]
                                                                   for c in CASES])
def test_bad_input_is_one_clear_error(ws: Path, args: list[str], code: int, needle: str) -> None:
    res = runner.invoke(app, [a.replace("{tmp}", str(ws)) for a in args])
    text = res.output + (res.stderr if res.stderr_bytes is not None and res.stderr not in res.output else "")
    assert res.exit_code == code, text
    assert needle in " ".join(text.split()), text  # rich wraps long paths at the console width
    assert "Traceback" not in text
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert not (ws / "store.db").exists(), "a bad input must not create a store"
    assert not (ws / "out").exists(), "a bad input must not write to --out"


def test_policy_validate_reports_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"id: safety.caf\xe9\n")
    res = runner.invoke(app, ["policy", "validate", str(tmp_path / "latin1.yaml")])
    assert res.exit_code == 1 and "not valid UTF-8" in " ".join(res.output.split()), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)


def test_enough_distinct_cases() -> None:
    assert len({tuple(c[0]) for c in CASES}) >= 40


def test_rank_serve_unknown_batch_names_the_known_ones(tmp_path: Path) -> None:
    store = str(tmp_path / "r.db")
    assert runner.invoke(app, ["rank", "demo", "--store", store, "--batch", "demo"]).exit_code == 0
    before = _store_contents(store)
    res = runner.invoke(app, ["rank", "serve", "--store", store, "--batch", "nope"])
    assert res.exit_code == 2 and "no such sample batch" in res.output and "demo" in res.output
    assert _store_contents(store) == before  # file size is no measure: SQLite may checkpoint its journal


def _store_contents(store: str) -> dict[str, int]:
    """Rows per table (what a rejected command must not change)."""
    import sqlite3

    with sqlite3.connect(store) as con:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table'")]
        return {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables}


def test_debug_flag_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    res = runner.invoke(app, ["--debug", "eval", "--model", "hf:/nonexistent"])
    assert res.exit_code == 1 and type(res.exception).__name__ == "ModelSpecError"
    monkeypatch.setenv("RAIPIPE_DEBUG", "1")
    res = runner.invoke(app, ["eval", "--model", "hf:/nonexistent"])
    assert type(res.exception).__name__ == "ModelSpecError"


def test_help_has_no_type_tags() -> None:
    for cmd in (["eval"], ["rank", "serve"], ["data", "validate"], []):
        res = runner.invoke(app, [*cmd, "--help"])
        assert res.exit_code == 0 and "<bool>" not in res.output and "<str>" not in res.output, res.output
    assert "override" in runner.invoke(app, ["eval", "--help"]).output


def test_flags_override_config_and_errors_name_the_flag(ws: Path) -> None:
    cfg = ws / "cfg" / "ok.yaml"
    cfg.write_text("model: embedded:smollm2\ndatasets: [seed:test]\njudges: [rubric]\n")
    res = runner.invoke(app, ["eval", "--config", str(cfg), "--store", str(ws / "store.db"), "--out",
                              str(ws / "out")])
    assert res.exit_code == 2 and "--judge-model" in res.output  # the file's judges apply
    res = runner.invoke(app, ["eval", "--config", str(cfg), "--judge", "nosuch", "--out", str(ws / "out")])
    assert res.exit_code == 2 and "unknown judge 'nosuch'" in res.output  # the flag wins over the file
    res = runner.invoke(app, ["eval", "--config", str(cfg), "--limit", "0"])
    assert res.exit_code == 2


# --- the ranking page's HTTP endpoints: a bad body is a 400 naming the field, and stores nothing ---

@pytest.fixture
def web(tmp_path: Path):
    from fastapi.testclient import TestClient

    from raipipe.posttrain.ranking.demo import seed_demo
    from raipipe.posttrain.ranking.web import create_app
    from raipipe.store import open_store

    store = str(tmp_path / "w.db")
    seed_demo(open_store(store), "demo")
    client = TestClient(create_app(store, "demo"))
    client.post("/rater", data={"rater_id": "alice"}, follow_redirects=False)
    return client, store


def _rankings(store: str) -> int:
    from sqlalchemy import func, select

    from raipipe.store import open_store
    from raipipe.store.posttrain_tables import Ranking

    with open_store(store)() as s:
        return s.scalar(select(func.count()).select_from(Ranking))


@pytest.mark.parametrize(("body", "needle"), [
    ({"order": "999,998"}, "order"),
    ({"order": ""}, "order"),
    ({"order": "not-a-number"}, "candidate id"),
])
def test_rank_post_rejects_bad_bodies(web, body: dict, needle: str) -> None:
    client, store = web
    from raipipe.posttrain.ranking.store_ops import next_item
    from raipipe.store import open_store

    with open_store(store)() as s:
        item = next_item(s, "alice", "demo")
    res = client.post("/rank", data={"batch_id": "demo", "record_id": item.record_id, **body},
                      follow_redirects=False)
    assert res.status_code == 400 and needle in res.text and "Traceback" not in res.text
    assert _rankings(store) == 0


def test_rater_post_rejects_a_bad_id(web) -> None:
    client, _ = web
    res = client.post("/rater", data={"rater_id": "has spaces"}, follow_redirects=False)
    assert res.status_code == 400 and "rater_id" in res.text
