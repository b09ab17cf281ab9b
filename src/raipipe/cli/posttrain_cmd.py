"""`raipipe posttrain`: the whole loop, or one step of it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()
app = typer.Typer(no_args_is_help=True, invoke_without_command=True)


def _pipeline(config: Path | None):
    from raipipe.posttrain.config import PostTrainConfig
    from raipipe.posttrain.pipeline import PostTrainPipeline

    return PostTrainPipeline(PostTrainConfig.load(config) if config else PostTrainConfig())


@app.callback()
def run_all(ctx: typer.Context, config: Path | None = typer.Option(None, "--config", "-c", help="YAML config")) -> None:
    """Run sample → rank → reward model → train → select → export end to end (resumes when rerun)."""
    if ctx.invoked_subcommand:
        ctx.obj = config
        return
    from raipipe.posttrain.pipeline import NeedsHumanRankings

    try:
        summary = _pipeline(config).run()
    except NeedsHumanRankings as exc:
        console.print(f"[yellow]{exc}[/]")
        raise typer.Exit(3) from exc
    from raipipe.posttrain.report import before_after_table

    sel = summary["selection"]
    console.print(before_after_table(summary, "raipipe posttrain"))
    if summary.get("confirmation"):
        console.print(before_after_table(summary, "raipipe posttrain, confirmation", confirmed=True))
    if summary.get("independence"):
        console.print(f"[yellow]{summary['independence']}[/]")
    console.print(f"selected {sel['chosen']}: " + " ".join(sel["reasons"]))
    console.print(f"report: {Path(summary['config']['out']) / 'report.html'}")


@app.command()
def sample(ctx: typer.Context) -> None:
    """Sample K candidates per trainable prompt from the model under training."""
    console.print(f"batch {_pipeline(ctx.obj).sample()}")


@app.command()
def rank(ctx: typer.Context) -> None:
    """Rank the latest batch (AI feedback, an imported vendor file, or check human progress)."""
    pipe = _pipeline(ctx.obj)
    pipe.rank((pipe.out / "batch_id").read_text().strip())


@app.command("reward-model")
def reward_model(ctx: typer.Context) -> None:
    """Train the auxiliary Bradley–Terry reward model on pairs from the rankings."""
    pipe = _pipeline(ctx.obj)
    train, heldout = pipe.pairs((pipe.out / "batch_id").read_text().strip())
    console.print(pipe.reward_model(train, heldout))


@app.command()
def train(ctx: typer.Context, algorithm: str = typer.Argument(..., help="dpo or grpo")) -> None:
    """Optimise the policy model with DPO (pairs) or GRPO (combined reward)."""
    pipe = _pipeline(ctx.obj)
    pipe.config.algorithm = algorithm  # type: ignore[assignment]
    train_pairs, heldout_pairs = pipe.pairs((pipe.out / "batch_id").read_text().strip())
    console.print(f"checkpoints in {pipe.optimise(train_pairs + heldout_pairs)}")


@app.command()
def select(ctx: typer.Context) -> None:
    """Evaluate every checkpoint on the test split and pick one by the two-sided rule (then confirm it on
    select.confirm_datasets, when configured)."""
    pipe = _pipeline(ctx.obj)
    run_dir = pipe.out / pipe.config.algorithm
    sel = pipe.select(run_dir)
    console.print(f"selected {sel.chosen}: " + " ".join(sel.reasons))
    conf = pipe.confirm(sel, run_dir)
    if conf:
        after = conf.after or conf.baseline
        console.print(f"confirmed on {', '.join(conf.datasets)}: violation {conf.baseline.violation.fmt()} -> "
                      f"{after.violation.fmt()}, over-refusal {conf.baseline.over_refusal.fmt()} -> "
                      f"{after.over_refusal.fmt()} (judge {conf.judge})")
