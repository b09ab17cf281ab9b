"""The evaluation runner end to end on the embedded model: store, cache, resume after kill -9, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from raipipe.data.io import write_jsonl
from raipipe.data.seed import load_seed
from raipipe.evaluate.config import EvalConfig
from raipipe.evaluate.runner import EvalRun
from raipipe.models import GenerationParams
from raipipe.report.html import render_report
from raipipe.report.summary import build_summary, write_summary
from raipipe.store.db import ItemRow, ResponseRow, RunRow, ScoreRow, open_store


def _small_dataset(tmp_path: Path, n_pairs: int) -> Path:
    records = load_seed(split="dev")
    by_pair: dict[str, list] = {}
    for r in records:
        by_pair.setdefault(r.pair_id, []).append(r)
    keep = [r for pid in sorted(by_pair)[:: max(1, len(by_pair) // n_pairs)][:n_pairs] for r in by_pair[pid]]
    path = tmp_path / "small.jsonl"
    write_jsonl(keep, path)
    return path


def test_run_stores_manifest_scores_and_report(tmp_path, smollm, feature_judge):
    data = _small_dataset(tmp_path, 6)
    cfg = EvalConfig(model="embedded:smollm2", datasets=[str(data)], store=str(tmp_path / "s.db"),
                     params=GenerationParams(max_new_tokens=24), out=tmp_path / "out", chunk_size=5)
    run = EvalRun(cfg, model=smollm, judges=[feature_judge])
    run_id = run.execute()
    sessions = open_store(cfg.store)
    with sessions() as s:
        manifest = s.get(RunRow, run_id).manifest
        n_items = s.scalar(select(func.count()).select_from(ItemRow).where(ItemRow.run_id == run_id))
        n_scores = s.scalar(select(func.count()).select_from(ScoreRow).where(ScoreRow.run_id == run_id))
    assert n_items == n_scores == 12
    assert manifest["model"] == "embedded:smollm2" and manifest["policy_pack"].startswith("raipipe-default@")
    assert manifest["judges"] == [feature_judge.judge_id] and len(manifest["policy_versions"]) >= 16
    assert all(len(d["hash"]) >= 12 for d in manifest["datasets"].values())

    # The same config again is the same run: nothing regenerated, nothing duplicated.
    again = EvalRun(cfg, model=smollm, judges=[feature_judge])
    assert again.run_id == run_id
    again.execute()
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(ItemRow)) == 12
        assert s.scalar(select(func.count()).select_from(ResponseRow)) == 12

    summary = build_summary(run)
    assert summary["metrics"]["n"] == 12
    o = summary["metrics"]["overall"]
    assert o["violation"]["n"] + o["unscoreable_harmful"] == 6
    html = render_report(summary, cfg.out).read_text()
    write_summary(summary, cfg.out)
    assert json.loads((cfg.out / "summary.json").read_text())["run_id"] == run_id
    assert "<svg" in html and "Violation rate" in html and "Wilson" in html
    assert 'src="http' not in html and "<link" not in html  # self-contained: no external assets


def test_system_prompt_is_part_of_the_run_identity(tmp_path, smollm, feature_judge):
    data = _small_dataset(tmp_path, 2)
    base = dict(model="embedded:smollm2", datasets=[str(data)], store=str(tmp_path / "s.db"),
                params=GenerationParams(max_new_tokens=8))
    a = EvalRun(EvalConfig(**base), model=smollm, judges=[feature_judge])
    b = EvalRun(EvalConfig(**base, scaffolding={"system_prompt": "Refuse unsafe requests."}), model=smollm,
                judges=[feature_judge])
    assert a.run_id != b.run_id
    assert b.conversation(b.datasets[next(iter(b.datasets))][0])[0].role == "system"


def _count(db: Path, table) -> int:
    sessions = open_store(db)
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(table))


def test_kill_9_then_resume_without_redoing_or_duplicating(tmp_path):
    data = _small_dataset(tmp_path, 16)  # 32 prompts
    db = tmp_path / "kill.db"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({
        "model": "embedded:smollm2", "datasets": [str(data)], "store": str(db), "out": str(tmp_path / "o"),
        "chunk_size": 2, "params": {"max_new_tokens": 12},  # small chunks: the kill lands mid-run
    }))
    cmd = [sys.executable, "-m", "raipipe", "eval", "--config", str(cfg)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        if db.exists() and _count(db, ItemRow) >= 8:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _count(db, ItemRow)
    assert 8 <= done_before < 32, "the kill should land mid-run"
    sessions = open_store(db)
    with sessions() as s:
        first = {r.cache_key: (r.id, r.created_at) for r in s.scalars(select(ResponseRow))}

    # The timeout only guards against a hang: on a loaded 2-core machine the resumed run took over 300 s.
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(ItemRow)) == 32
        assert s.scalar(select(func.count(func.distinct(ItemRow.record_id)))) == 32
        assert s.scalar(select(func.count()).select_from(ScoreRow)) == 32
        after = {r.cache_key: (r.id, r.created_at) for r in s.scalars(select(ResponseRow))}
    assert len(after) == 32
    assert all(after[k] == v for k, v in first.items()), "finished responses must not be regenerated"
    assert (tmp_path / "o" / "report.html").exists()


def test_store_opened_while_another_process_creates_it(tmp_path, monkeypatch):
    """The race test_kill_9 hit on a slow machine: CREATE TABLE loses to a concurrent creator."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from raipipe.store.db import Base

    real, calls = Base.metadata.create_all, []

    def racing(engine, **kw):
        calls.append(1)
        if len(calls) <= 5:  # the other process creates a table between our check and our CREATE, five times
            real(engine, **kw)
            raise OperationalError("CREATE TABLE runs", {}, sqlite3.OperationalError("table runs already exists"))
        return real(engine, **kw)

    monkeypatch.setattr(Base.metadata, "create_all", racing)
    sessions = open_store(tmp_path / "race.db")
    assert len(calls) == 6
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(ItemRow)) == 0

    def broken(engine, **kw):
        raise OperationalError("CREATE TABLE runs", {}, sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(Base.metadata, "create_all", broken)
    with pytest.raises(OperationalError, match="disk I/O error"):
        open_store(tmp_path / "other.db")
