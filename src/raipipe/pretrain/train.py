"""Continued pretraining: causal-LM training (LoRA via PEFT, or full) on a mixed text corpus, with the
pretraining probes run before and after and compared in one report.

The corpus is one or more JSONL/Parquet sources with a text field (an exercises folder works as is);
each source has a weight, so RAI exercises can be mixed with general text in a chosen ratio. Texts are
tokenized, separated by the end-of-sequence token and packed into `max_length` blocks (or truncated one
per row). A run is resumable: started again on the same `output_dir`, it continues from the last saved
checkpoint with its optimizer and scheduler state."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from raipipe.errors import ConfigError, DatasetError
from raipipe.judges.base import load_judge
from raipipe.posttrain.lora import (
    DEFAULT_MODEL,
    LoraSettings,
    build_lineage,
    cpu_trainer_args,
    lineage_callback,
    list_checkpoints,
    load_base,
    resolve_model,
    rows_hash,
    write_json,
)
from raipipe.pretrain.anchor import BehaviourAnchor, anchor_batches, anchored_trainer_class
from raipipe.pretrain.chains import chain_texts
from raipipe.pretrain.exercises import shard_paths
from raipipe.pretrain.probes import (
    CheckpointProbes,
    ProbeComparison,
    ProbeConfig,
    compare,
    material_digest,
    run_probes,
    write_report,
)


class DataSource(BaseModel):
    """One part of the training mix."""

    model_config = ConfigDict(extra="forbid")
    path: Path = Field(description="a .jsonl or .parquet file, an exercises folder (manifest.json), or a folder of "
                       ".jsonl/.parquet files")
    text_field: str = Field(default="text", description="column holding the training text")
    weight: float = Field(default=1.0, gt=0, description="share of this source's rows used: 0.5 samples half, "
                          "2 repeats every row twice (seeded)")
    languages: list[str] | None = Field(default=None, min_length=1, description="keep only rows whose `language` "
                                        "column is one of these, so one file can enter the mix with a weight per "
                                        "language (default: every row)")
    labels: list[str] | None = Field(default=None, min_length=1, description="keep only rows whose `label` column "
                                     "is one of these (e.g. a demonstrations file's harmful requests), so each "
                                     "side of a look-alike pair can get its own weight (default: every row)")
    chain: str | None = Field(default=None, min_length=1, description="chain group: the sampled texts of every "
                              "source in the group are shuffled together and joined `chain_length` at a time into "
                              "one document (raipipe.pretrain.chains), e.g. a demonstrations file's refusals and "
                              "answers with their own weights (default: each text is its own document)")

    def row_filter(self) -> dict[str, list[str]]:
        """Column -> the values a row must have to enter the mix."""
        return {k: v for k, v in (("language", self.languages), ("label", self.labels)) if v}


class ContinuedPretrainConfig(BaseModel):
    """Everything a continued-pretraining run needs; saved as config.json in the output folder."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(default=DEFAULT_MODEL, description="parent model: embedded:NAME, hf:DIR, "
                       "hf:BASE_DIR+ADAPTER_DIR or a directory")
    data: list[DataSource] = Field(min_length=1, description="the training mix")
    output_dir: Path = Field(default=Path("out/pretrain"), description="checkpoints, final model, probes, report")
    max_length: int = Field(default=256, ge=16, description="tokens per training block")
    packing: bool = Field(default=True, description="pack texts into full blocks (else one truncated text per row)")
    chain_length: int = Field(default=4, ge=1, description="texts per document in a chain group (sources with `chain`)")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="adapters, or full_finetune=true")
    anchor: BehaviourAnchor | None = Field(default=None, description="keep the parent's next-token distribution "
                                           "on these request texts (KL added to the loss; LoRA only)")
    learning_rate: float = Field(default=2e-4, gt=0, description="peak learning rate (linear decay)")
    max_steps: int = Field(default=100, description="optimizer steps; <= 0 trains for `epochs` instead")
    epochs: float = Field(default=1.0, gt=0, description="passes over the mix when max_steps <= 0")
    batch_size: int = Field(default=4, ge=1, description="blocks per device step")
    grad_accum: int = Field(default=1, ge=1, description="device steps per optimizer step")
    save_steps: int = Field(default=50, ge=1, description="save a resumable checkpoint every N steps")
    save_total_limit: int | None = Field(default=2, ge=1, description="keep only the newest N checkpoints")
    logging_steps: int = Field(default=10, ge=1, description="log the loss every N steps")
    seed: int = Field(default=0, description="seeds source sampling, block order and initialisation")
    resume: bool = Field(default=True, description="continue from the last checkpoint in output_dir if there is one")
    overwrite: bool = Field(default=False, description="delete another run's checkpoints in output_dir (resume=false)")
    probe: bool = Field(default=True, description="run the probes before and after training and write the report")
    probes: ProbeConfig = Field(default_factory=ProbeConfig, description="probe settings")

    @model_validator(mode="after")
    def _anchor_needs_lora(self) -> ContinuedPretrainConfig:
        if self.anchor is not None and self.lora.full_finetune:
            raise ValueError("anchor: the behaviour anchor needs LoRA (its parent is the model with adapters off)")
        return self


class ContinuedPretrainResult(BaseModel):
    output_dir: Path
    final_dir: Path
    final_spec: str = Field(description="model spec of the trained model, for probes and evaluation")
    steps: int
    resumed_from: Path | None
    n_texts: int
    n_blocks: int
    train_seconds: float
    history: list[dict[str, Any]]


def load_config(path: Path | str) -> ContinuedPretrainConfig:
    """Read a YAML/JSON config file; errors name the file and the field."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
        return ContinuedPretrainConfig.model_validate(data)
    except yaml.YAMLError as exc:
        raise ConfigError(p, None, None, f"not valid YAML: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(p, None, ".".join(map(str, err["loc"])), err["msg"]) from None


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if (path / "manifest.json").is_file():
        return shard_paths(path)
    found = sorted([*path.glob("*.jsonl"), *path.glob("*.parquet")])
    if not found:
        raise DatasetError(path, None, None, "no .jsonl or .parquet files (or missing path)")
    return found


def _read_texts(path: Path, field: str, keep: dict[str, list[str]] | None = None) -> list[str]:
    """The non-empty texts of one file, keeping only rows whose columns hold one of `keep`'s values."""
    keep = keep or {}
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        for column in (field, *keep):
            if column not in table.column_names:
                raise DatasetError(path, None, column, f"column missing (columns: {table.column_names})")
        columns = {c: table.column(c).to_pylist() for c in keep}
        kept = [all(columns[c][i] in v for c, v in keep.items()) for i in range(table.num_rows)]
        return [t for t, ok in zip(table.column(field).to_pylist(), kept, strict=True)
                if ok and isinstance(t, str) and t.strip()]
    texts = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(path, line_no, None, f"not valid JSON: {exc.msg}") from None
            text = row.get(field) if isinstance(row, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise DatasetError(path, line_no, field, "missing or not a non-empty string")
            for column in keep:
                if not isinstance(row.get(column), str):
                    raise DatasetError(path, line_no, column, f"missing (the source keeps only some {column}s)")
            if all(row[c] in v for c, v in keep.items()):
                texts.append(text)
    return texts


def load_mix(sources: list[DataSource], seed: int = 0, chain_length: int = 4) -> list[str]:
    """Every source's texts, sampled or repeated by its weight, chain groups joined into documents, shuffled
    together (seeded)."""
    rng = random.Random(seed)
    mix: list[str] = []
    groups: dict[str, list[str]] = {}
    for src in sources:
        texts = [t for f in _files(src.path) for t in _read_texts(f, src.text_field, src.row_filter())]
        whole, frac = int(src.weight), src.weight - int(src.weight)
        sampled = texts * whole + rng.sample(texts, round(frac * len(texts)))
        (groups.setdefault(src.chain, []) if src.chain else mix).extend(sampled)
    for name in sorted(groups):
        mix += chain_texts(groups[name], chain_length, rng)
    rng.shuffle(mix)
    return mix


def tokenize_blocks(texts: list[str], tokenizer, max_length: int, packing: bool) -> list[list[int]]:
    """Packed: one stream (each text followed by EOS) cut into `max_length` blocks, the tail kept.
    Unpacked: one block per text, truncated."""
    eos = tokenizer.eos_token_id
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] + [eos] for t in texts]
    if not packing:
        return [ids[:max_length] for ids in encoded]
    stream = [tok for ids in encoded for tok in ids]
    return [stream[i : i + max_length] for i in range(0, len(stream), max_length) if len(stream) - i > 1]


class CausalCollator:
    """Right-pads blocks; labels are the inputs with padding masked (EOS separators stay targets)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
            mask[i, : len(r["input_ids"])] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def _prepare_dir(cfg: ContinuedPretrainConfig) -> Path | None:
    """The checkpoint to resume from, or None; refuses to mix runs unless told to overwrite."""
    out = cfg.output_dir
    found = list_checkpoints(out) if out.is_dir() else []
    if found and cfg.resume:
        return found[-1][1]
    if found and not cfg.overwrite:
        raise FileExistsError(f"{out} holds checkpoints of another run; set resume=true to continue it, "
                              "overwrite=true to replace it, or choose another output_dir")
    for _, ckpt in found:
        shutil.rmtree(ckpt)
    out.mkdir(parents=True, exist_ok=True)
    return None


def _anchor_texts(cfg: ContinuedPretrainConfig) -> list[str]:
    if cfg.anchor is None:
        return []
    texts = [t for f in _files(cfg.anchor.path) for t in _read_texts(f, cfg.anchor.text_field)]
    if not texts:
        raise DatasetError(cfg.anchor.path, None, cfg.anchor.text_field, "the behaviour anchor holds no text")
    return texts


def _trainer(cfg: ContinuedPretrainConfig, model, tok, blocks: list[list[int]], lineage: dict[str, Any],
             anchor_texts: list[str]):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    args = cpu_trainer_args(cfg.output_dir, seed=cfg.seed, learning_rate=cfg.learning_rate, max_steps=cfg.max_steps,
                            epochs=cfg.epochs, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                            save_steps=cfg.save_steps, logging_steps=cfg.logging_steps, save_only_model=False)
    args.update(save_total_limit=cfg.save_total_limit, remove_unused_columns=False)
    common = dict(model=model, args=TrainingArguments(**args), train_dataset=Dataset.from_dict({"input_ids": blocks}),
                  data_collator=CausalCollator(tok.pad_token_id), processing_class=tok,
                  callbacks=[lineage_callback(lineage)])
    if cfg.anchor is None:
        return Trainer(**common)
    return anchored_trainer_class()(**common, anchor=cfg.anchor,
                                    anchor_stream=anchor_batches(anchor_texts, tok, cfg.anchor, cfg.seed))


def _save_final(cfg: ContinuedPretrainConfig, model, tok, parent) -> tuple[Path, str]:
    """Save the trained model; return its folder and a loadable model spec."""
    final = cfg.output_dir / "final"
    if final.exists():
        shutil.rmtree(final)
    if cfg.lora.full_finetune:
        model.save_pretrained(final)
        tok.save_pretrained(final)
        return final, f"hf:{final}"
    if parent.adapter is None:
        model.save_pretrained(final)
        return final, f"hf:{parent.directory}+{final}"
    merged = model.merge_and_unload()  # the parent's own adapter was merged at load: save whole weights
    merged.save_pretrained(final)
    tok.save_pretrained(final)
    return final, f"hf:{final}"


def train_continued(cfg: ContinuedPretrainConfig) -> ContinuedPretrainResult:
    """Train (or resume) and save the final model; no probes (see `run_continued_pretraining`)."""
    resume_from = _prepare_dir(cfg)
    anchor_texts = _anchor_texts(cfg)  # a bad anchor fails before the model loads
    parent = resolve_model(cfg.model)
    model, tok = load_base(parent)
    texts = load_mix(cfg.data, cfg.seed, cfg.chain_length)
    blocks = tokenize_blocks(texts, tok, cfg.max_length, cfg.packing)
    if not blocks:
        raise DatasetError(cfg.data[0].path, None, None, "the training mix holds no text")
    if not cfg.lora.full_finetune:
        from peft import get_peft_model

        model = get_peft_model(model, cfg.lora.peft_config())
    hashes = {"mix": rows_hash({"text": t} for t in texts)}
    if anchor_texts:
        hashes["anchor"] = rows_hash({"text": t} for t in anchor_texts)
    lineage = build_lineage("continued-pretrain", parent, hashes, cfg.model_dump(mode="json"),
                            extra={"n_texts": len(texts), "n_blocks": len(blocks)})
    write_json(cfg.output_dir / "config.json", cfg.model_dump(mode="json"))
    write_json(cfg.output_dir / "lineage.json", lineage)
    trainer = _trainer(cfg, model, tok, blocks, lineage, anchor_texts)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - t0
    final, spec = _save_final(cfg, trainer.model, tok, parent)
    history = [dict(h) for h in trainer.state.log_history]
    write_json(cfg.output_dir / "log_history.json", history)
    return ContinuedPretrainResult(output_dir=cfg.output_dir, final_dir=final, final_spec=spec,
                                   steps=int(trainer.state.global_step), resumed_from=resume_from,
                                   n_texts=len(texts), n_blocks=len(blocks), train_seconds=round(seconds, 2),
                                   history=history)


def _probe_cached(spec: str, label: str, cfg: ContinuedPretrainConfig, fresh: bool, judge=None) -> CheckpointProbes:
    """Probe results are kept in output_dir/probes/LABEL.json; the 'before' ones survive a resume unless the
    model, the probe files or the probe settings (e.g. the judge) changed."""
    path = cfg.output_dir / "probes" / f"{label}.json"
    if not fresh and path.is_file():
        cached = CheckpointProbes.model_validate_json(path.read_text(encoding="utf-8"))
        if (cached.spec, cached.material, cached.settings) == (spec, material_digest(cfg.probes.probe_dir),
                                                               cfg.probes.digest()) \
                and (cached.judge_id or not cfg.probes.run_sparse):  # older results did not name their judge
            return cached
    result = run_probes(spec, label, cfg.probes, judge=judge)
    write_json(path, result.model_dump(mode="json"))
    return result


def run_continued_pretraining(cfg: ContinuedPretrainConfig) -> tuple[ContinuedPretrainResult, ProbeComparison | None]:
    """Probe the parent, train (or resume), probe the result, write report.json/report.html."""
    _prepare_dir(cfg)  # fail on a clash of runs before minutes of probing
    spec = f"hf:{cfg.model}" if Path(cfg.model).is_dir() else cfg.model  # a bare directory trains; probes need a spec
    judge = load_judge(cfg.probes.sparse.judge) if cfg.probe and cfg.probes.run_sparse else None
    judge_error = cfg.probes.report_calibration(judge) if cfg.probe else None  # measured before the long work
    before = _probe_cached(spec, "before", cfg, fresh=False, judge=judge) if cfg.probe else None
    result = train_continued(cfg)
    if before is None:
        return result, None
    after = _probe_cached(result.final_spec, "after", cfg, fresh=True, judge=judge)
    report = compare([before, after], judge_error)
    write_report(report, cfg.output_dir)
    return result, report
