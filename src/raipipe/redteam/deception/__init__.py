"""Long-horizon deception: scenarios spread over simulated sessions and days, played against a target with
the history carried across, then scored by trajectory-level checks that cite turns and quotes.

Nouns: a Scenario (YAML) is played by a Player into Transcripts; TrajectoryChecks (registered, by name)
turn them into CheckResults with Evidence; a ClaimDetector (pattern / similarity / llm) answers the one
question every check asks — does this reply assert X, deny it, or neither? `run_deception` makes it
resumable per scenario; `write_report` aggregates per pillar with Wilson intervals."""

from raipipe.redteam.deception.checks import (
    CHECKS,
    CheckContext,
    TrajectoryCheck,
    register_check,
)
from raipipe.redteam.deception.detect import (
    DETECTORS,
    ClaimDetector,
    Hit,
    LLMDetector,
    PatternDetector,
    SimilarityDetector,
    Stance,
    load_detector,
    register_detector,
)
from raipipe.redteam.deception.loader import default_scenarios_dir, load_scenario, load_scenarios
from raipipe.redteam.deception.player import Player
from raipipe.redteam.deception.records import CheckResult, Evidence, PlayedTurn, ScenarioResult, Transcript
from raipipe.redteam.deception.report import DeceptionReport, aggregate, write_report
from raipipe.redteam.deception.runner import load_results, run_deception
from raipipe.redteam.deception.schema import Claim, Scenario

__all__ = [
    "CHECKS",
    "DETECTORS",
    "CheckContext",
    "CheckResult",
    "Claim",
    "ClaimDetector",
    "DeceptionReport",
    "Evidence",
    "Hit",
    "LLMDetector",
    "PatternDetector",
    "PlayedTurn",
    "Player",
    "Scenario",
    "ScenarioResult",
    "SimilarityDetector",
    "Stance",
    "TrajectoryCheck",
    "Transcript",
    "aggregate",
    "default_scenarios_dir",
    "load_detector",
    "load_results",
    "load_scenario",
    "load_scenarios",
    "register_check",
    "register_detector",
    "run_deception",
    "write_report",
]
