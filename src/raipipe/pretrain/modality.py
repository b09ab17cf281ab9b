"""Modality alignment in text space: records pairing an image or audio file with text about the same
concept, turned into text exercises a language model can pretrain on.

A record names its media by path, sha256 and media type, so a training set is tied to the exact bytes
it describes, and says what the media shows (caption), what risk that concept carries, and which policy
covers it. Two exercise kinds come from it: caption → "what risk does this show, under which policy",
and matching pairs (a caption with its own risk description, or with another concept's) usable as text
or as contrastive pairs. The shipped fixture (tiny PNG icons and WAV tones) is drawn by code here, so
its bytes can be rebuilt and checked."""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import struct
import wave
import zlib
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from raipipe.errors import DatasetError
from raipipe.policy.schema import Pillar

MediaType = Literal["image/png", "audio/wav"]
MAGIC = {"image/png": (b"\x89PNG\r\n\x1a\n", 0), "audio/wav": (b"WAVE", 8)}
RECORDS_FILE = "records.jsonl"


class MediaRef(BaseModel):
    """The media file, relative to the records file's folder, with the digest of its bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str = Field(min_length=1, description="path relative to the records file")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex sha256 of the file's bytes")
    media_type: MediaType


class ModalityRecord(BaseModel):
    """One concept seen in two modalities: the media and the text about it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1)
    media: MediaRef
    concept: str = Field(min_length=1, description="short name of what the media shows")
    caption: str = Field(min_length=1, description="what a person sees or hears")
    risk: str = Field(min_length=1, description="the responsible-AI risk the concept relates to")
    policy_id: str = Field(min_length=1)
    pillar: Pillar
    language: str = "en"


class ModalityExercise(BaseModel):
    """A text-space exercise; `text` is what a trainer reads (same field as the policy exercises)."""

    model_config = ConfigDict(frozen=True)
    id: str
    kind: Literal["caption_risk", "match"]
    text: str
    record_ids: list[str]
    media_sha256: list[str]
    policy_id: str
    match: bool | None = Field(default=None, description="match exercises: do the two texts describe one concept")


def default_fixture_dir() -> Path:
    return Path(str(resources.files("raipipe") / "resources" / "pretrain" / "modality_fixture"))


def load_records(path: Path | str) -> list[ModalityRecord]:
    """Read a records JSONL file; a bad line raises DatasetError naming file, line and field."""
    p = Path(path)
    out, seen = [], set()
    for line_no, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = ModalityRecord.model_validate_json(line)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(map(str, err["loc"])) or None
            raise DatasetError(p, line_no, field, err["msg"]) from None
        if rec.id in seen:
            raise DatasetError(p, line_no, "id", f"duplicate id {rec.id!r}")
        seen.add(rec.id)
        out.append(rec)
    return out


def verify_media(records: list[ModalityRecord], records_path: Path | str) -> None:
    """Every file exists under the records' folder, has the declared type and the recorded sha256.
    Errors give the record's 1-based position as the line (the line itself for files without blank lines)."""
    root = Path(records_path).parent
    for line_no, rec in enumerate(records, 1):
        f = (root / rec.media.path).resolve()
        if not f.is_relative_to(root.resolve()) or not f.is_file():
            raise DatasetError(records_path, line_no, "media.path",
                               f"{rec.media.path}: no such file beside the records")
        data = f.read_bytes()
        magic, offset = MAGIC[rec.media.media_type]
        if data[offset : offset + len(magic)] != magic:
            raise DatasetError(records_path, line_no, "media.media_type",
                               f"{rec.media.path} is not {rec.media.media_type}")
        digest = hashlib.sha256(data).hexdigest()
        if digest != rec.media.sha256:
            raise DatasetError(records_path, line_no, "media.sha256",
                               f"{rec.media.path}: file hashes to {digest[:12]}…, record says {rec.media.sha256[:12]}…")


def _noun(rec: ModalityRecord) -> str:
    return "image" if rec.media.media_type.startswith("image/") else "audio clip"


def caption_risk_exercise(rec: ModalityRecord) -> ModalityExercise:
    text = (f"{_noun(rec).capitalize()} description: {rec.caption}\n"
            f"Question: What risk does this {_noun(rec)} show, and under which policy?\n"
            f"Answer: {rec.risk} It falls under the policy {rec.policy_id} ({rec.pillar.value.replace('_', ' ')}).")
    return ModalityExercise(id=f"{rec.id}:caption_risk", kind="caption_risk", text=text, record_ids=[rec.id],
                            media_sha256=[rec.media.sha256], policy_id=rec.policy_id)


def _match(a: ModalityRecord, b: ModalityRecord) -> ModalityExercise:
    same = a.id == b.id
    verdict = ("Yes. Both describe the same concept" if same
               else f"No. The {_noun(a)} is about {a.concept}, while the description is about {b.concept}")
    text = (f"{_noun(a).capitalize()} description: {a.caption}\nRisk description: {b.risk}\n"
            f"Do these describe the same concept?\nAnswer: {verdict}.")
    return ModalityExercise(id=f"{a.id}:match:{b.id}", kind="match", text=text, record_ids=[a.id, b.id],
                            media_sha256=[a.media.sha256, b.media.sha256], policy_id=a.policy_id, match=same)


def match_exercises(records: list[ModalityRecord], seed: int = 0) -> list[ModalityExercise]:
    """Per record one matching pair and one mismatched pair (a concept under another policy, seeded)."""
    rng = random.Random(seed)
    out = []
    for rec in records:
        others = [o for o in records if o.policy_id != rec.policy_id]
        out.append(_match(rec, rec))
        if others:
            out.append(_match(rec, rng.choice(others)))
    return out


def modality_exercises(records: list[ModalityRecord], seed: int = 0) -> list[ModalityExercise]:
    return [caption_risk_exercise(r) for r in records] + match_exercises(records, seed)


def write_exercises_jsonl(exercises: list[ModalityExercise], path: Path | str) -> Path:
    """JSONL with a `text` field: a ready source for continued pretraining."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(json.dumps(e.model_dump(mode="json"), ensure_ascii=False) + "\n" for e in exercises),
                 encoding="utf-8")
    return p


# --- the team-made fixture: icons drawn on a 32x32 grid, tones synthesised -----------------------------

Pixel = tuple[int, int, int]
SIZE = 32


def png_bytes(pixels: list[list[Pixel]]) -> bytes:
    """A truecolour PNG; stored (level-0) deflate keeps the bytes identical on every zlib."""
    h, w = len(pixels), len(pixels[0])
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b"")


def _canvas(test, colour: Pixel, background: Pixel = (255, 255, 255)) -> list[list[Pixel]]:
    """Paint `colour` where test(x, y) holds, on a centred -1..1 grid."""
    def at(i: int) -> float:
        return (i + 0.5) / SIZE * 2 - 1

    return [[colour if test(at(x), at(y)) else background for x in range(SIZE)] for y in range(SIZE)]


ICONS = {
    "warning-sign": (lambda x, y: y > -0.8 and y < 0.8 and abs(x) < (y + 0.8) / 1.6 * 0.9
                     and not (abs(x) < 0.08 and (-0.3 < y < 0.3 or 0.45 < y < 0.6)), (230, 160, 0)),
    "padlock": (lambda x, y: (abs(x) < 0.6 and 0 < y < 0.8) or (y <= 0 and 0.3 < math.hypot(x, y) < 0.45),
                (90, 90, 100)),
    "shield": (lambda x, y: abs(x) < 0.7 * (1 - max(0.0, y) ** 2) and -0.8 < y < 0.95, (30, 90, 200)),
    "id-card": (lambda x, y: (abs(x) < 0.9 and abs(y) < 0.6) and not (abs(x) < 0.82 and abs(y) < 0.52)
                or math.hypot(x + 0.45, y + 0.1) < 0.2 or (0.0 < x < 0.7 and abs(y - 0.2) < 0.05), (40, 40, 40)),
    "eye": (lambda x, y: abs(y) < 0.5 * (1 - x * x) and not 0.15 < math.hypot(x, y) < 0.3, (60, 120, 60)),
    "robot-chat": (lambda x, y: (abs(x) < 0.8 and -0.7 < y < 0.3 and not (math.hypot(abs(x) - 0.35, y + 0.25) < 0.12))
                   or (0.3 <= y < 0.7 and -0.5 < x < -0.1 + (0.7 - y)), (120, 60, 160)),
    "scales": (lambda x, y: abs(x) < 0.05 and -0.8 < y < 0.8 or abs(y + 0.6) < 0.05 and abs(x) < 0.8
               or (abs(abs(x) - 0.6) < 0.25 and 0.0 < y < 0.12) or (abs(y - 0.8) < 0.06 and abs(x) < 0.4),
               (150, 110, 40)),
    "document-seal": (lambda x, y: (abs(x) < 0.6 and abs(y) < 0.85 and not (abs(x) < 0.52 and abs(y) < 0.77))
                      or (abs(x) < 0.4 and any(abs(y - k) < 0.04 for k in (-0.5, -0.3, -0.1)))
                      or math.hypot(x - 0.25, y - 0.45) < 0.2, (170, 30, 30)),
}


def wav_bytes(tones: list[tuple[float, float]], rate: int = 8000, volume: float = 0.4) -> bytes:
    """16-bit mono WAV of (frequency Hz, seconds) segments; frequency 0 is silence."""
    frames = bytearray()
    for freq, secs in tones:
        for n in range(int(rate * secs)):
            value = volume * math.sin(2 * math.pi * freq * n / rate) if freq else 0.0
            frames += struct.pack("<h", int(round(value * 32767)))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return buf.getvalue()


SOUNDS = {
    "alarm-beeps": [(880.0, 0.15), (0.0, 0.1)] * 3,
    "synthetic-voice-tone": [(220.0, 0.2), (247.0, 0.2), (196.0, 0.25)],
}


def fixture_media() -> dict[str, bytes]:
    """File name → bytes of every fixture medium, drawn or synthesised deterministically."""
    files = {f"{name}.png": png_bytes(_canvas(test, colour)) for name, (test, colour) in ICONS.items()}
    files |= {f"{name}.wav": wav_bytes(tones) for name, tones in SOUNDS.items()}
    return files


def load_fixture(directory: Path | str | None = None) -> tuple[list[ModalityRecord], Path]:
    """The fixture's records, validated and with every file's hash checked."""
    path = Path(directory or default_fixture_dir()) / RECORDS_FILE
    records = load_records(path)
    verify_media(records, path)
    return records, path
