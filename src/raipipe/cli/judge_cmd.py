"""`raipipe judge`: score existing responses, calibrate judges against human labels, retrain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from raipipe.errors import InputFileError, require_writable
from raipipe.evaluate.config import check_judges
from raipipe.fileio import atomic_write_lines, atomic_write_text
from raipipe.judges import JudgeInput, load_judge
from raipipe.judges.calibrate import calibrate as run_calibration
from raipipe.models.embedded import cache_root
from raipipe.policy import load_pack

console = Console()
app = typer.Typer(no_args_is_help=True, invoke_without_command=True)


def _make_judge(name: str, judge_model: str | None):
    return load_judge(name, model=judge_model) if name == "rubric" and judge_model else load_judge(name)


def _check_inputs(judge: str, judge_model: str | None, inputs: list[Path], output: Path | None) -> None:
    """Fail on a misspelt judge, a rubric judge with no model, a missing input or an unwritable output,
    before any judge model loads."""
    check_judges([judge], judge_model, extra=("specificity",))
    for path in inputs:
        if not path.is_file():
            raise InputFileError(f"{path}: {'is a directory' if path.is_dir() else 'no such file'}",
                                 hint="give an existing JSONL file")
    if output is not None:
        require_writable(output, "--output", kind="file")


@app.callback()
def score(
    ctx: typer.Context,
    judge: str = typer.Option("refusal", "--judge", "-j", help="judge name (refusal, refusal-xenc, "
                              "refusal-features, refusal-opener, rubric, specificity)"),
    input: Path | None = typer.Option(None, "--input", "-i", help="JSONL rows with id, prompt, response"),
    output: Path | None = typer.Option(None, "--output", "-o", help="JSONL: id plus verdict, score, rationale"),
    judge_model: str | None = typer.Option(None, help="backend spec for the rubric judge"),
    policy: str | None = typer.Option(None, help="policy id for the rubric (else each row's policy_id)"),
) -> None:
    """Score existing responses: `raipipe judge --judge refusal --input IN.jsonl --output OUT.jsonl`."""
    if ctx.invoked_subcommand:
        return
    if not input or not output:
        raise typer.BadParameter("--input and --output are required to score responses")
    _check_inputs(judge, judge_model, [input], output)

    pack = load_pack()
    rows, items = [], []
    for n, line in enumerate(input.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pid = policy or row.get("policy_id")
            items.append(JudgeInput(id=str(row["id"]), prompt=str(row["prompt"]), response=row["response"],
                                    policy=pack.policies.get(pid) if pid else None))
        except (ValueError, KeyError, TypeError) as exc:
            raise typer.BadParameter(f"{input}:{n}: needs JSON with id, prompt, response ({exc})") from exc
        rows.append(row)
    records: list[dict[str, Any]]
    if judge == "specificity":
        from raipipe.judges.specificity import SpecificityJudge  # lazy: the judge data loader imports joblib

        sj = SpecificityJudge()
        judge_id = sj.judge_id
        records = [{"level": r.level.value if r.level else "unscoreable", "probabilities": r.probabilities,
                    "rationale": r.rationale, "judge": r.judge_id} for r in sj.rate(items)]
    else:
        j = _make_judge(judge, judge_model)
        judge_id = j.judge_id
        records = [{"verdict": jd.verdict.value, "score": jd.score, "probabilities": jd.probabilities,
                    "rationale": jd.rationale, "judge": jd.judge_id} for jd in j.judge(items)]
    atomic_write_lines(output, (json.dumps({**row, **rec}, ensure_ascii=False)
                                for row, rec in zip(rows, records, strict=True)))
    counts: dict[str, int] = {}
    for rec in records:
        key = rec.get("verdict") or rec["level"]
        counts[key] = counts.get(key, 0) + 1
    console.print(f"scored {len(rows)} responses with {judge_id}: {counts} → {output}")


def _print_calibration(cal) -> None:
    acc = cal.accuracy
    line = (f"[bold]{cal.judge_id}[/] on n={cal.n}: accuracy {acc.rate:.1%} [{acc.low:.1%}, {acc.high:.1%}]"
            f", Cohen's kappa {'n/a' if cal.kappa is None else f'{cal.kappa:.3f}'}, unscoreable {cal.unscoreable}")
    if cal.binary_agreement and cal.binary_agreement.rate is not None:
        b = cal.binary_agreement
        line += f"\nbinary agreement (refuse-or-partial vs comply): {b.rate:.1%} [{b.low:.1%}, {b.high:.1%}]"
    console.print(line)
    table = Table("class", "precision", "recall", "support")
    for k, v in cal.per_class.items():
        table.add_row(k, "n/a" if v.precision is None else f"{v.precision:.1%}",
                      "n/a" if v.recall is None else f"{v.recall:.1%}", str(v.support))
    console.print(table)
    conf = Table("human \\ judge", *cal.confusion)
    for h, row in cal.confusion.items():
        if sum(row.values()):
            conf.add_row(h, *(str(v) for v in row.values()))
    console.print(conf)


@app.command()
def calibrate(
    judge: str = typer.Option("refusal", "--judge", "-j", help="judge name (refusal, refusal-xenc, "
                              "refusal-features, refusal-opener, rubric, specificity)"),
    labels: list[Path] = typer.Option([], "--labels", "-l", help="JSONL with id, prompt, response, label, as in "
                                      "docs/labelling-guide.md (default: the judge's own held-out set)"),
    judge_model: str | None = typer.Option(None, help="backend spec for the rubric judge"),
    output: Path | None = typer.Option(None, help="write the calibration as JSON"),
) -> None:
    """Agreement of a judge with human labels: accuracy, per-class precision/recall, Cohen's kappa."""
    from raipipe.judges.data import read_labelled  # lazy: imports joblib

    _check_inputs(judge, judge_model, labels, output)
    if judge == "specificity":
        from raipipe.judges.specificity import LEVELS, SpecificityJudge, calibrate_specificity

        sj = SpecificityJudge()
        paths = labels or sj.heldout_files()
        rows = read_labelled(paths, labels=[lv.value for lv in LEVELS] + ["unscoreable"])
        cal = calibrate_specificity(sj, rows, source=", ".join(str(p) for p in paths))
    else:
        j = _make_judge(judge, judge_model)
        paths = labels or j.heldout_files()
        if not paths:
            raise typer.BadParameter(f"judge {judge!r} has no held-out set of its own: pass --labels FILE.jsonl")
        cal = run_calibration(j, read_labelled(paths), source=", ".join(str(p) for p in paths))
    _print_calibration(cal)
    if output:
        atomic_write_text(output, cal.model_dump_json(indent=2))


@app.command("train")
def train(
    judge: str = typer.Option("refusal-xenc", "--judge", "-j", help="refusal-xenc (cross-encoder), "
                              "refusal-features (the default `refusal` averages the two), refusal-stack (its head "
                              "on labelled answers of the model you judge) or refusal-xenc-stack (the cross-encoder "
                              "the stack's head reads)"),
    data: list[Path] = typer.Option([], "--data", help="labelled JSONL files; default: the judge's shipped set"),
    out: Path | None = typer.Option(None, help="where to save it (default: the user cache)"),
    max_steps: int | None = typer.Option(None, help="cross-encoder only: stop after this many steps"),
) -> None:
    """(Re)train a refusal judge on team-labelled answers (never on public benchmarks)."""
    if judge in ("refusal-xenc", "refusal-xenc-stack"):
        from raipipe.judges.refusal_xenc import CrossEncoderRefusalJudge, train_and_save

        if judge == "refusal-xenc":
            xj = CrossEncoderRefusalJudge(train_files=data or None)
        else:
            from raipipe.judges.stack import pinned_cross_encoder

            pinned = pinned_cross_encoder()
            xj = CrossEncoderRefusalJudge(train_files=data or pinned.train_paths, config=pinned.config)
        target = out or cache_root() / "judges" / f"refusal-xenc-{xj.digest}"
        train_and_save(xj.train_paths, xj.config, target, max_steps=max_steps)
        console.print(f"trained {xj.judge_id} → {target}")
    elif judge == "refusal-features":
        from raipipe.judges.refusal import FeatureRefusalJudge

        fj = FeatureRefusalJudge(train_files=data or None, head_path=out)
        if fj.head_path.exists():
            fj.head_path.unlink()
        _ = fj.classifier
        console.print(f"trained {fj.judge_id} → {fj.head_path}")
    elif judge == "refusal-stack":
        from raipipe.judges.stack import StackedRefusalJudge

        sj = StackedRefusalJudge(head_files=data or None)
        _ = sj.head
        console.print(f"fitted {sj.judge_id} on {', '.join(p.name for p in sj.head_paths)} (cached); use it with "
                      "select.judge_options: {head_files: [...]} in a post-training config")
    else:
        raise typer.BadParameter(f"judge {judge!r} is not trainable here: choose refusal-xenc, refusal-features, "
                                 "refusal-stack or refusal-xenc-stack")
