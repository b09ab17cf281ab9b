"""`raipipe posttrain`: the whole loop, one step of it (`--only`), or from a step on (`--from`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

console = Console()
app = typer.Typer(no_args_is_help=True, invoke_without_command=True)

STEPS_HELP = "sample, rank, pairs, reward-model, train, select, confirm, ood, export, report"  # steps.STEP_NAMES


def _pipeline(config: Path | None, algorithm: str | None = None):
    from raipipe.posttrain.config import PostTrainConfig
    from raipipe.posttrain.pipeline import PostTrainPipeline

    cfg = PostTrainConfig.load(config) if config else PostTrainConfig()
    if algorithm:
        cfg = cfg.model_copy(update={"algorithm": PostTrainConfig.model_validate({"algorithm": algorithm}).algorithm})
    return PostTrainPipeline(cfg)


def _run(config: Path | None, only: list[str], start: str | None, algorithm: str | None = None) -> dict:
    """Run the planned steps; a missing human ranking or an unfinished earlier step is a clean exit."""
    from raipipe.posttrain.pipeline import NeedsHumanRankings
    from raipipe.posttrain.steps import PlanError, StepNotReady

    try:
        return _pipeline(config, algorithm).run(only=only, start=start)
    except NeedsHumanRankings as exc:
        console.print(f"[yellow]{exc}[/]")
        raise typer.Exit(3) from exc
    except (StepNotReady, PlanError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc


def _print_results(results: dict) -> None:
    """The before/after tables when the report step is among the results, else one line per step."""
    from raipipe.posttrain.report import before_after_table

    if "report" not in results:
        for name, output in results.items():
            console.print(f"{name}: {output.model_dump_json(exclude={'selection', 'confirmation'})}")
        return
    summary = json.loads(Path(results["report"].summary_path).read_text(encoding="utf-8"))
    sel = summary["selection"]
    console.print(before_after_table(summary, "raipipe posttrain"))
    if summary.get("confirmation"):
        console.print(before_after_table(summary, "raipipe posttrain, confirmation", confirmed=True))
    if summary.get("independence"):
        console.print(f"[yellow]{summary['independence']}[/]")
    console.print(f"selected {sel['chosen']}: " + " ".join(sel["reasons"]))
    console.print(f"report: {results['report'].report_path}")


@app.callback()
def run_all(ctx: typer.Context, config: Path | None = typer.Option(None, "--config", "-c", help="YAML config"),
            only: list[str] = typer.Option([], "--only", help=f"run just this step (repeatable): {STEPS_HELP}"),
            start: str | None = typer.Option(None, "--from", help="run this step and every one after it")) -> None:
    """Run sample → rank → pairs → reward model → train → select → confirm → ood → export → report. A rerun skips
    the steps the store records as done under the same config and resumes at the one that was running."""
    if ctx.invoked_subcommand:
        ctx.obj = config
        return
    _print_results(_run(config, only, start))


@app.command()
def sample(ctx: typer.Context) -> None:
    """Sample K candidates per trainable prompt from the model under training (= --only sample)."""
    _print_results(_run(ctx.obj, ["sample"], None))


@app.command()
def rank(ctx: typer.Context) -> None:
    """Rank the sampled batch: AI feedback, an imported vendor file, or check human progress (= --only rank)."""
    _print_results(_run(ctx.obj, ["rank"], None))


@app.command("reward-model")
def reward_model(ctx: typer.Context) -> None:
    """Expand rankings into pairs and train the auxiliary Bradley–Terry reward model on them."""
    _print_results(_run(ctx.obj, ["pairs", "reward-model"], None))


@app.command()
def train(ctx: typer.Context, algorithm: str = typer.Argument(..., help="dpo or grpo")) -> None:
    """Expand rankings into pairs and optimise the policy model with DPO (pairs) or GRPO (combined reward)."""
    _print_results(_run(ctx.obj, ["pairs", "train"], None, algorithm=algorithm))


@app.command()
def select(ctx: typer.Context) -> None:
    """Evaluate every checkpoint on the test split and pick one by the two-sided rule (then confirm it on
    select.confirm_datasets, when configured)."""
    _print_results(_run(ctx.obj, ["select", "confirm"], None))
