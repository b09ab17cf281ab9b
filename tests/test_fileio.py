"""Atomic writes: the content lands whole, no temporary file stays behind, and a failure mid-write
leaves the previous file exactly as it was."""

import json
import os

import pytest

from raipipe.fileio import (
    atomic_dir,
    atomic_open,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_lines,
    atomic_write_text,
)


def _only(directory, *names):
    assert sorted(p.name for p in directory.iterdir()) == sorted(names)


def test_writes_content_and_creates_parents(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    atomic_write_text(target, "héllo\n")
    assert target.read_text(encoding="utf-8") == "héllo\n"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    _only(target.parent, "out.txt")


def test_json_and_lines(tmp_path):
    j = atomic_write_json(tmp_path / "x.json", {"ü": [1, 2]}, indent=2)
    assert json.loads(j.read_text(encoding="utf-8")) == {"ü": [1, 2]}
    assert "ü" in j.read_text(encoding="utf-8") and j.read_text(encoding="utf-8").endswith("}\n")
    lines = atomic_write_lines(tmp_path / "x.jsonl", (json.dumps({"i": i}) for i in range(3)))
    assert lines.read_text().splitlines() == ['{"i": 0}', '{"i": 1}', '{"i": 2}']
    _only(tmp_path, "x.json", "x.jsonl")


def test_failure_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "data.jsonl"
    target.write_text("old\n")

    def lines():
        yield "new 1"
        raise RuntimeError("generator broke half way")

    with pytest.raises(RuntimeError, match="half way"):
        atomic_write_lines(target, lines())
    assert target.read_text() == "old\n"
    _only(tmp_path, "data.jsonl")


def test_unserialisable_json_keeps_the_old_file(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": 1}
    _only(tmp_path, "m.json")


def test_nothing_is_visible_until_the_block_ends(tmp_path):
    target = tmp_path / "stream.txt"
    with atomic_open(target) as fh:
        fh.write("part")
        assert not target.exists()
    assert target.read_text() == "part"


def test_atomic_path_for_writers_that_want_a_file_name(tmp_path):
    target = tmp_path / "head.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"weights")
    assert target.read_bytes() == b"weights"
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise ValueError("writer failed")
    assert target.read_bytes() == b"weights"
    _only(tmp_path, "head.bin")


def test_new_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "perm.txt", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_atomic_open_refuses_append(tmp_path):
    with pytest.raises(ValueError, match="mode"), atomic_open(tmp_path / "x", "a"):
        pass


def test_atomic_dir_replaces_or_keeps_the_winner(tmp_path):
    out = tmp_path / "model"
    with atomic_dir(out) as d:
        (d / "w").write_text("1")
    with atomic_dir(out) as d:
        (d / "w").write_text("2")
    assert (out / "w").read_text() == "2"
    with atomic_dir(out, keep_existing=True) as d:
        (d / "w").write_text("3")
    assert (out / "w").read_text() == "2"
    with pytest.raises(OSError), atomic_dir(out) as d:
        (d / "w").write_text("4")
        raise OSError("disk full")
    assert (out / "w").read_text() == "2"
    _only(tmp_path, "model")
