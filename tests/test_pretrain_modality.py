"""Modality alignment: the shipped fixture validates, its hashes match (and its bytes rebuild from the
drawing code), exercises come out in text space, and bad records name file, line and field."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from raipipe.errors import DatasetError
from raipipe.pretrain.modality import (
    RECORDS_FILE,
    default_fixture_dir,
    fixture_media,
    load_fixture,
    load_records,
    modality_exercises,
    verify_media,
    write_exercises_jsonl,
)
from raipipe.pretrain.train import DataSource, load_mix


def test_fixture_validates_and_hashes_match():
    records, path = load_fixture()
    assert len(records) == 10
    kinds = {r.media.media_type for r in records}
    assert kinds == {"image/png", "audio/wav"}
    for r in records:
        data = (path.parent / r.media.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r.media.sha256


def test_fixture_bytes_rebuild_from_code():
    shipped = {p.name: p.read_bytes() for p in default_fixture_dir().iterdir() if p.suffix in {".png", ".wav"}}
    assert fixture_media() == shipped


def test_exercises_in_text_space(tmp_path):
    records, _ = load_fixture()
    exercises = modality_exercises(records, seed=0)
    caption = [e for e in exercises if e.kind == "caption_risk"]
    match = [e for e in exercises if e.kind == "match"]
    assert len(caption) == len(records)
    assert sum(e.match is True for e in match) == len(records) and sum(e.match is False for e in match) == len(records)
    padlock = next(e for e in caption if e.record_ids == ["padlock"])
    assert "security.cyber-intrusion" in padlock.text and "under which policy" in padlock.text
    for e in match:
        if e.match is False:  # a mismatch pairs concepts under different policies
            a, b = (next(r for r in records if r.id == i) for i in e.record_ids)
            assert a.policy_id != b.policy_id and e.text.rstrip().endswith(f"about {b.concept}.")
    out = write_exercises_jsonl(exercises, tmp_path / "modality.jsonl")
    assert len(load_mix([DataSource(path=out)])) == len(exercises)  # a ready training source


def _copy_fixture(tmp_path):
    target = tmp_path / "fx"
    shutil.copytree(default_fixture_dir(), target)
    return target / RECORDS_FILE


def test_bad_record_names_file_line_field(tmp_path):
    path = _copy_fixture(tmp_path)
    lines = path.read_text().splitlines()
    row = json.loads(lines[2])
    row["media"]["media_type"] = "video/mp4"
    lines[2] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as err:
        load_records(path)
    assert err.value.line == 3 and err.value.field == "media.media_type"
    assert str(path) in str(err.value)


def test_tampered_media_fails_hash_check(tmp_path):
    path = _copy_fixture(tmp_path)
    records = load_records(path)
    (path.parent / records[1].media.path).write_bytes(b"\x89PNG\r\n\x1a\n" + b"tampered")
    with pytest.raises(DatasetError) as err:
        verify_media(records, path)
    assert err.value.line == 2 and err.value.field == "media.sha256"


def test_wrong_type_and_missing_file(tmp_path):
    path = _copy_fixture(tmp_path)
    records = load_records(path)
    png, wav = records[0], next(r for r in records if r.media.media_type == "audio/wav")
    swapped = png.model_copy(update={"media": png.media.model_copy(update={"path": wav.media.path})})
    with pytest.raises(DatasetError, match="is not image/png"):
        verify_media([swapped], path)
    gone = png.model_copy(update={"media": png.media.model_copy(update={"path": "../outside.png"})})
    with pytest.raises(DatasetError, match="no such file"):
        verify_media([gone], path)
