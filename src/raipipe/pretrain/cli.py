"""`pretrain` sub-commands (mounted as `raipipe pretrain`): generate exercises, find stale ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from raipipe.models import load_model
from raipipe.policy.loader import PolicyError, load_pack
from raipipe.pretrain.anchor import ANCHOR_LIMIT, ANCHOR_PROMPTS
from raipipe.pretrain.exercises import (
    ExerciseConfig,
    ExerciseKind,
    generate_exercises,
    load_documents,
    load_templates,
    paraphrase,
    read_exercises,
    read_manifest,
    stale_exercises,
    write_exercises,
)

app = typer.Typer(no_args_is_help=True, help="Policy-aware pretraining data: learning exercises from policy.")

PackOpt = Annotated[Path | None, typer.Option("--pack", help="policy pack folder (default: the shipped pack)")]


def _fail(exc: Exception) -> typer.Exit:
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {exc}", markup=True)
    return typer.Exit(code=1)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def counts_table(counts: dict[str, dict[str, int]], languages: list[str], title: str) -> Table:
    """Kinds as rows, languages as columns, with totals."""
    table = Table(title=title)
    table.add_column("kind")
    for lang in languages:
        table.add_column(lang, justify="right")
    table.add_column("total", justify="right")
    for kind in ExerciseKind:
        row = counts.get(kind.value, {})
        table.add_row(kind.value, *(str(row.get(lang, 0)) for lang in languages), str(sum(row.values())))
    return table


@app.command("exercises")
def exercises(
    out: Annotated[Path, typer.Option("--out", help="output folder for JSONL shards and manifest.json")],
    pack: PackOpt = None,
    docs: Annotated[Path | None, typer.Option("--docs", help="folder of guidance documents (.md/.txt)")] = None,
    languages: Annotated[str, typer.Option("--languages", help="comma-separated frame languages")] = "en,es,fr",
    kinds: Annotated[str, typer.Option("--kinds", help="comma-separated kinds (default: all)")] = "",
    seed: Annotated[int, typer.Option("--seed", help="seeds template choice and shard order")] = 0,
    variants: Annotated[int, typer.Option("--variants", min=1, help="templates rendered per unit")] = 1,
    templates: Annotated[Path | None, typer.Option("--templates", help="template folder (default: shipped)")] = None,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, help="records per JSONL shard")] = 5000,
    paraphrase_model: Annotated[
        str | None, typer.Option("--paraphrase-model", help="model spec (e.g. embedded:smollm2); off by default")
    ] = None,
) -> None:
    """Generate learning exercises from a policy pack; print counts per kind x language."""
    con = Console(highlight=False, soft_wrap=True)
    try:
        loaded = load_pack(pack)
        tset = load_templates(templates)
        cfg = ExerciseConfig(languages=_split(languages), seed=seed, variants=variants,
                             kinds=[ExerciseKind(k) for k in _split(kinds)] or list(ExerciseKind))
        passages = load_documents(docs, loaded, cfg.max_passage_chars) if docs else []
        records = generate_exercises(loaded, cfg, tset, passages)
    except (PolicyError, KeyError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    model_id = None
    if paraphrase_model:
        model = load_model(paraphrase_model)
        records, model_id = paraphrase(records, model, tset), model.model_id
        model.close()
    manifest = write_exercises(records, out, loaded, cfg, tset.digest, passages, shard_size, model_id)
    title = f"{manifest.total} exercises from {loaded.ref} → {out} ({len(manifest.shards)} shard(s))"
    con.print(counts_table(manifest.counts, cfg.languages, title))


@app.command("stale")
def stale(
    exercises_dir: Annotated[Path, typer.Argument(help="folder written by `exercises`")],
    pack: PackOpt = None,
    old_pack: Annotated[Path | None, typer.Option("--old-pack", help="pack the exercises were made from")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object per stale exercise")] = False,
) -> None:
    """List exercises made from clauses that changed or were removed in the (new) pack."""
    con = Console(highlight=False, soft_wrap=True)
    try:
        manifest = read_manifest(exercises_dir)
        new = load_pack(pack)
        old = load_pack(old_pack) if old_pack else None
        found = stale_exercises(read_exercises(exercises_dir), new, old)
    except (PolicyError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    if as_json:
        for s in found:
            typer.echo(json.dumps(s.model_dump(mode="json"), ensure_ascii=False))
        return
    for s in found:
        con.print(f"{s.id}  {s.policy_id}: {'; '.join(s.reasons)}")
    con.print(f"{len(found)} of {manifest.total} exercises from {manifest.policy_pack} are stale against {new.ref}")


@app.command("demonstrations")
def demonstrations(
    out: Annotated[Path, typer.Option("--out", help="output folder: demonstrations.jsonl, manifest.json, "
                                      "anchor.jsonl")],
    prompts: Annotated[str | None, typer.Option("--prompts", help="comma-separated dataset specs (training "
                                                "splits; default: the generator's en/es/fr train split)")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=0, help="at most N requests, stratified (0: all; "
                                              "default: the config's)")] = None,
    team_replies: Annotated[str, typer.Option("--team-replies", help="team-written replies by generator intent "
                                              "(.jsonl), 'shipped', or 'none'")] = "shipped",
    model: Annotated[str, typer.Option("--model", help="answer model for the benign replies")] = "embedded:smollm2",
    judge: Annotated[str, typer.Option("--judge", help="keeps only benign replies it scores as compliance")]
    = "refusal",
    anchor_prompts: Annotated[str, typer.Option("--anchor-prompts", help="comma-separated dataset specs whose "
                                                "requests the anchor holds")] = ",".join(ANCHOR_PROMPTS),
    anchor_limit: Annotated[int, typer.Option("--anchor-limit", min=0, help="at most N anchor requests (0: all)")]
    = ANCHOR_LIMIT,
    with_probes: Annotated[bool, typer.Option("--hold-out-probes/--no-hold-out-probes",
                                              help="leave out pairs sharing text with the probe questions")] = True,
) -> None:
    """Request → reply demonstrations: policy-written refusals for harmful requests; for their benign
    look-alikes a team-written reply where the file has one for the intent, else the model's own judged-compliant
    reply; pairs kept whole. Also writes anchor.jsonl: requests framed up to where the reply starts, for a training
    config's `anchor` (behaviour anchor)."""
    from raipipe.judges.base import load_judge
    from raipipe.pretrain.demonstrations import DemonstrationConfig, build_demonstrations, write_request_frames
    from raipipe.pretrain.probes import load_questions

    con = Console(highlight=False, soft_wrap=True)
    try:
        overrides: dict = {"prompts": _split(prompts)} if prompts else {}
        if limit is not None:
            overrides["limit"] = limit or None
        cfg = DemonstrationConfig(**overrides, answer_model=model, judge=judge,
                                  team_replies=None if team_replies == "none" else team_replies)
        held_out = [q.question for q in load_questions()] if with_probes else []
        manifest = build_demonstrations(cfg, out, lambda: load_model(cfg.answer_model, batch_size=cfg.batch_size),
                                        load_judge(cfg.judge), held_out=held_out)
        anchor_cfg = cfg.model_copy(update={"prompts": _split(anchor_prompts), "limit": anchor_limit or None})
        n_frames = write_request_frames(anchor_cfg, out / "anchor.jsonl", held_out)
    except (KeyError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(manifest.skipped.items())) or "none"
    con.print(f"{manifest.requests} requests → written {manifest.written} (benign replies by source: "
              f"{manifest.reply_sources}); skipped: {skipped} → {out}")
    con.print(f"{n_frames} request frames for a behaviour anchor → {out / 'anchor.jsonl'}")
