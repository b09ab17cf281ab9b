"""Which preference pairs a trainer learns from: behaviour-differing pairs, one per prompt by a strategy,
repeated by label/language weights. Kept apart from pairs.py (building, splitting and storing pairs)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from typing import Literal

from raipipe.posttrain.pairs import PairsError, PreferencePair
from raipipe.posttrain.reference_answers import OPENED_ORIGIN, REFERENCE_ORIGIN

GREEDY_ORIGIN = "policy-model-greedy"  # the model's greedy answer: what evaluation will see
PairStrategy = Literal["best-vs-worst", "greedy-anchored", "all"]


def training_pairs(pairs: Iterable[PreferencePair], decisive_only: bool = True,
                   strategy: PairStrategy = "all", add_clearest: Collection[str] = ()) -> list[PreferencePair]:
    """The pairs a trainer learns from.

    `decisive_only` drops pairs whose answers show the same behaviour (both refuse, both comply): the
    judges ordered those by finer scores and a length heuristic, which taught the first reward model
    nothing (chance accuracy). Human pairs carry no tiers and are kept. `best-vs-worst` keeps the
    clearest pair per prompt (widest behaviour gap, then rank gap), which keeps CPU training short.
    `greedy-anchored` keeps, per prompt, the clearest pair that contains the model's greedy answer:
    chosen when the greedy answer already behaves as it should, rejected when it does not; so DPO
    works on the behaviour evaluation sees and anchors what is already right. Prompts without a
    greedy candidate fall back to best-vs-worst. `add_clearest` names prompt groups ('harmful',
    'harmful:es', as in pair weights) whose clearest pair is added where the anchored pair is another one
    (after all anchored pairs, in prompt order): anchored pairs alone moved Spanish and French harmful
    prompts little; the clearest pair puts a refusal above the most compliant sample there. Under either
    per-prompt strategy a prompt with a team-written reference answer also gets its clearest pair with that
    answer chosen (where that is another pair): that answer is why the reference was written; likewise a
    harmful prompt with an opened greedy answer gets its clearest pair with that answer rejected."""
    check_add_clearest(add_clearest, strategy)
    kept = [p for p in pairs if p.decisive] if decisive_only else list(pairs)
    if strategy == "all":
        return kept
    if strategy not in ("best-vs-worst", "greedy-anchored"):
        raise ValueError(f"pair strategy must be 'best-vs-worst', 'greedy-anchored' or 'all', got {strategy!r}")

    def key(p: PreferencePair) -> tuple[float, float]:
        return (p.tier_gap or 0.0, p.margin)

    by_record: dict[str, list[PreferencePair]] = defaultdict(list)
    for p in kept:
        by_record[p.record_id].append(p)
    out, extra = [], []
    for group in by_record.values():
        clearest = max(group, key=key)
        anchored = [p for p in group if GREEDY_ORIGIN in (p.chosen_origin, p.rejected_origin)]
        pick = max(anchored, key=key) if strategy == "greedy-anchored" and anchored else clearest
        out.append(pick)
        added = [pick]
        if in_groups(clearest, add_clearest) and not _same(clearest, pick):
            extra.append(clearest)
            added.append(clearest)
        for written in ([p for p in group if p.chosen_origin == REFERENCE_ORIGIN],
                        [p for p in group if p.rejected_origin == OPENED_ORIGIN]):
            best = max(written, key=key) if written else None
            if best is not None and not any(_same(best, p) for p in added):
                extra.append(best)
                added.append(best)
    return out + extra


def _same(a: PreferencePair, b: PreferencePair) -> bool:
    return (a.chosen, a.rejected) == (b.chosen, b.rejected)


def check_group_key(key: str, field: str) -> None:
    """Raise PairsError naming the field and entry unless `key` is 'LABEL' or 'LABEL:LANGUAGE'."""
    label, _, lang = key.partition(":")
    if label not in ("harmful", "benign"):
        raise PairsError(f"{field} {key!r}: label must be 'harmful' or 'benign'")
    if ":" in key and not lang.strip():
        raise PairsError(f"{field} {key!r}: empty language after ':'")


def check_add_clearest(groups: Collection[str], strategy: str) -> None:
    """Raise PairsError unless every group is 'LABEL' or 'LABEL:LANGUAGE' and the pairs are greedy-anchored."""
    for key in groups:
        check_group_key(key, "add_clearest")
    if groups and strategy != "greedy-anchored":
        raise PairsError(f"add_clearest adds pairs to greedy-anchored ones; pair_strategy is {strategy!r}")


def in_groups(pair: PreferencePair, groups: Collection[str]) -> bool:
    """The pair's prompt belongs to a named group: its label, or its label:language."""
    return pair.label in groups or f"{pair.label}:{pair.language}" in groups


def check_pair_weights(weights: Mapping[str, int]) -> None:
    """Raise PairsError naming the bad entry: keys are 'LABEL' or 'LABEL:LANGUAGE', values whole numbers >= 0."""
    for key, w in weights.items():
        check_group_key(key, "pair weight")
        if not isinstance(w, int) or w < 0:
            raise PairsError(f"pair weight {key!r}: must be a whole number >= 0, got {w!r}")


def weight_pairs(pairs: Iterable[PreferencePair], weights: Mapping[str, int]) -> list[PreferencePair]:
    """Repeat pairs by their prompt's label and language: 'benign:es': 2 shows Spanish benign pairs twice.

    TRL's trainers take no per-example weights, so a weight is a whole number of repeats; the most
    specific key wins ('benign:es' over 'benign'), anything not named keeps weight 1. Why: on a small
    model the refusal learned from harmful prompts spreads to the benign look-alikes of a language
    the model understands poorly; repeating those benign pairs holds the over-refusal side there."""
    check_pair_weights(weights)
    out: list[PreferencePair] = []
    for p in pairs:
        w = weights.get(f"{p.label}:{p.language}", weights.get(p.label, 1))
        out.extend([p] * w)
    return out
