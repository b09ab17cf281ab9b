"""The cross-encoder refusal judge: a fine-tuned MiniLM cross-encoder (see `cross_encoder`).

It learns from every team-written answer set (e–h, a–d, j–m, then n). Sets j, k and l are German, Italian
and Portuguese, m long answers in Spanish, French and English: with only ~130 training answers in each of
de/it/pt the judge agreed with people on 59–74 % of those languages' held-out answers against ~90 % in
English. Read with the feature judge in the default `refusal` ensemble, adding j–m raised agreement on the
two held-out sets by independent authors (d, e) and kept it within a point on the older ones (see
`benchmarks/bench_judges.py`). Last come the embedded model's own labelled answers (`refusal_train_model.jsonl`,
`refusal_train_posttrained.jsonl`; those labelled unscoreable are left out): short, often rambling answers that no
team-written set resembles. Without them the judge agreed with people on 77 % of that model's held-out answers,
below the lexical opener rule; with them the default ensemble rose 6–8 points on the three held-out sets of the
model's answers and stayed within a point on the five team-written ones taken together. Set n comes after them:
answers that open warmly or note a risk and then answer in full, beside refusals that use the same warm words. The
ensemble had read a quarter of the team's fluent Spanish and French answers as refusals or partial ones. Set n
raised its agreement on the five held-out sets together by half a point, and the compliance it reads in those answers
by 7–11 points. Post-training does not grade with this judge:
`refusal-stack` reads its own cross-encoder, trained on e–h only (shipped as `refusal-xenc-stack`), so its grade
shares no training answer with `refusal-features`, which ranks the training answers.

The trained weights ship with the package (`resources/judge_models/refusal-xenc/`) with the digest
of the data and settings they were trained from. If the shipped data or settings change, the judge
retrains once (about 45 minutes on two cores) and caches the result, so a stale file is never used."""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from raipipe.judges import cross_encoder as xenc
from raipipe.judges.base import Judge, JudgeInput, Judgement, judgement_from_probs, register_judge, split_degenerate
from raipipe.judges.data import (
    MODEL_ANSWER_TRAIN_FILES,
    REFUSAL_HELDOUT_FILES,
    judge_data_path,
    read_labelled,
    scoreable,
)
from raipipe.models.embedded import cache_root, encoder_dir

TRAIN_FILES = ["refusal_train_e.jsonl", "refusal_train_f.jsonl", "refusal_train_g.jsonl",
               "refusal_train_h.jsonl", "refusal_train_a.jsonl", "refusal_train_b.jsonl", "refusal_train_c.jsonl",
               "refusal_train_d.jsonl", "refusal_train_j.jsonl", "refusal_train_k.jsonl", "refusal_train_l.jsonl",
               "refusal_train_m.jsonl", *MODEL_ANSWER_TRAIN_FILES, "refusal_train_n.jsonl"]
HELDOUT_FILES = REFUSAL_HELDOUT_FILES


def shipped_weights_dir(name: str = "refusal-xenc") -> Path:
    """Where weights ship: `refusal-xenc` (the default settings and data), `refusal-xenc-stack` (the ones
    `refusal-stack` was fitted on)."""
    return Path(str(resources.files("raipipe") / "resources" / "judge_models" / name))


SHIPPED_WEIGHTS = ("refusal-xenc", "refusal-xenc-stack")


def train_and_save(train_paths: Sequence[Path], config: xenc.CrossEncoderConfig, out_dir: Path,
                   max_steps: int | None = None) -> xenc.CrossEncoderClassifier:
    """Train the cross-encoder on labelled rows with a progress bar and save it with its manifest; the rows
    labelled unscoreable are left out (see `scoreable`) and counted in the manifest."""
    labelled = read_labelled(train_paths)
    rows = scoreable(labelled)
    model = xenc.CrossEncoderClassifier(encoder_dir("minilm"), config)
    with Progress(TextColumn("training refusal cross-encoder"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total} steps, loss {task.fields[loss]:.3f}"), TimeRemainingColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task("train", total=None, loss=float("nan"))
        losses = xenc.train(model, rows, max_steps=max_steps,
                            progress=lambda step, total, loss: bar.update(task, completed=step, total=total,
                                                                           loss=loss))
    manifest = {"digest": xenc.data_digest(train_paths, config), "config": config.model_dump(),
                "train_files": [p.name for p in train_paths], "train_rows": len(rows),
                "unscoreable_rows_left_out": len(labelled) - len(rows), "steps": len(losses),
                "final_loss": losses[-1] if losses else None}
    xenc.save(model, out_dir, manifest)
    return model


@register_judge
class CrossEncoderRefusalJudge(Judge):
    """MiniLM fine-tuned as a cross-encoder (post-training grades with it); comply / refuse / partial."""

    name = "refusal-xenc"

    def __init__(self, train_files: Sequence[str | Path] | None = None,
                 config: xenc.CrossEncoderConfig | None = None, weights_dir: str | Path | None = None):
        self.train_paths = [Path(p) for p in train_files] if train_files else [judge_data_path(f) for f in TRAIN_FILES]
        self.config = config or xenc.CrossEncoderConfig()
        self.digest = xenc.data_digest(self.train_paths, self.config)
        self.weights_dir = Path(weights_dir) if weights_dir else None
        self._model: xenc.CrossEncoderClassifier | None = None

    @property
    def judge_id(self) -> str:
        return f"refusal-xenc@{self.digest}"

    def heldout_files(self) -> list[Path]:
        return [p for p in (judge_data_path(f) for f in HELDOUT_FILES) if p.exists()]

    def _candidate_dirs(self) -> list[Path]:
        if self.weights_dir:
            return [self.weights_dir]
        cached = cache_root() / "judges" / f"refusal-xenc-{self.digest}"
        return [*(shipped_weights_dir(n) for n in SHIPPED_WEIGHTS), cached]

    @property
    def model(self) -> xenc.CrossEncoderClassifier:
        """The trained classifier: shipped or cached weights whose digest matches, else trained now."""
        if self._model is None:
            for directory in self._candidate_dirs():
                manifest = directory / "manifest.json"
                if manifest.exists() and json.loads(manifest.read_text()).get("digest") == self.digest:
                    model = xenc.CrossEncoderClassifier(encoder_dir("minilm"), self.config)
                    xenc.load_weights(model, directory)
                    self._model = model
                    break
            else:
                self._model = train_and_save(self.train_paths, self.config, self._candidate_dirs()[-1])
        return self._model

    def judge(self, items: Sequence[JudgeInput]) -> list[Judgement]:
        out, todo = split_degenerate(items, self.judge_id)
        if todo:
            probs = xenc.predict_proba(self.model, [items[i].prompt for i in todo], [items[i].response for i in todo])
            for i, p in zip(todo, probs, strict=True):
                out[i] = judgement_from_probs(xenc.CLASSES, p, self.judge_id)
        return out  # type: ignore[return-value]
