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


@app.command("reward-ablation")
def reward_ablation(ctx: typer.Context, weights: list[float] = typer.Option(
        [0.0, 0.5, 1.0], "--weight", help="reward-model weights to compare (repeatable; the first is the reference)")
) -> None:
    """What the reward model adds to GRPO's combined reward: the run's decisive held-out pairs, each scored as a
    group of two at every weight, against the evaluation judge's order. Writes OUT/reward_model/ablation.json."""
    from rich.table import Table

    from raipipe.posttrain.config import PostTrainConfig
    from raipipe.posttrain.pairs import load_pair_dataset
    from raipipe.posttrain.reward_model import RewardModelScorer
    from raipipe.posttrain.steps.training import ablate_reward_model

    cfg = PostTrainConfig.load(ctx.obj) if ctx.obj else PostTrainConfig()
    rm_dir, pairs_dir = Path(cfg.out) / "reward_model", Path(cfg.out) / "pairs"
    if not (rm_dir / "metrics.json").exists() or not (pairs_dir / "lineage.json").exists():
        console.print(f"[red]no reward model or pairs under {cfg.out}: run `raipipe posttrain reward-model` first[/]")
        raise typer.Exit(2)
    ablation = ablate_reward_model(cfg, load_pair_dataset(pairs_dir)[1], RewardModelScorer(rm_dir),
                                   weights=tuple(weights))
    if ablation is None:
        console.print("[yellow]nothing to compare: no decisive held-out pair, or no weight above 0[/]")
        raise typer.Exit(2)
    heads, rows = ablation.table()
    table = Table(title=f"combined reward vs {ablation.grader} on the {ablation.n_grader_decided} of "
                        f"{ablation.n_pairs} held-out pairs it separates")
    for col in heads:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if ablation.paired:
        console.print(f"paired, weight {weights[0]:g} vs {weights[-1]:g}: {ablation.paired.c} pairs ordered wrongly "
                      f"only at {weights[-1]:g}, {ablation.paired.b} only at {weights[0]:g} "
                      f"(exact p = {ablation.paired.p_value:.2g})")
    (rm_dir / "ablation.json").write_text(ablation.model_dump_json(indent=2), encoding="utf-8")
