"""Calibration of a judge on its own held-out human-labelled set, computed once per judge version and
cached, so every report can state how far its judge agrees with people — and correct its rates for
the judge's measured error."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from raipipe.fileio import atomic_write_text
from raipipe.judges.base import Judge
from raipipe.judges.calibrate import Calibration, calibrate
from raipipe.judges.data import files_digest, judge_data_path, read_labelled
from raipipe.models.embedded import cache_root


def cache_name(judge_id: str) -> str:
    """A judge id as one file name: ids may hold ':' or '/' (an endpoint, a model path, an option)."""
    return re.sub(r"[^A-Za-z0-9._+=-]", "-", judge_id)


def cached_calibration(judge: Judge, files: Sequence[Path] | None = None) -> Calibration | None:
    """Calibration on `files` (default: the judge's own held-out set); None means 'not calibrated'."""
    files = [p for p in (judge.heldout_files() if files is None else files) if p.exists()]
    if not files:
        return None
    shipped = all(p.resolve().parent == judge_data_path(p.name).resolve().parent for p in files)
    digest = files_digest(files, b"" if shipped else b"user")  # the source it names is part of what is cached
    path = cache_root() / "judges" / f"calibration-{cache_name(judge.judge_id)}-{digest}.json"
    if path.exists():
        return Calibration.model_validate(json.loads(path.read_text()))
    names = ", ".join(p.name for p in files)
    source = f"raipipe {names} (team-labelled, held out)" if shipped else f"{names} (user-labelled)"
    cal = calibrate(judge, read_labelled(files), source=source)
    atomic_write_text(path, cal.model_dump_json(indent=2))
    return cal
