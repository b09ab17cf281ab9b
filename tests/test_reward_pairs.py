"""Preference pairs: expansion, rater aggregation, the leak-free split, JSONL + lineage, the store."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from raipipe.posttrain.pairs import (
    PairsError,
    PreferencePair,
    expand_rankings,
    load_pair_dataset,
    pairs_from_store,
    ranking_pairs,
    read_pairs_jsonl,
    save_pair_dataset,
    split_pairs,
)


def _cand(cid, record="r1", text=None, label="harmful", batch="b1", language="en"):
    return SimpleNamespace(id=cid, batch_id=batch, record_id=record, prompt=f"prompt of {record}", label=label,
                           policy_id="safety.fraud-crime", text=text if text is not None else f"answer {cid}",
                           language=language)


def _rank(rid, order, rater="h1", kind="human", record="r1", batch="b1"):
    return SimpleNamespace(id=rid, batch_id=batch, record_id=record, rater_id=rater, rater_kind=kind, order=order)


CANDS = [_cand(1), _cand(2), _cand(3), _cand(4)]


def test_ranking_pairs_all_with_rank_gap():
    assert ranking_pairs([3, 1, 2]) == [(3, 1, 1), (3, 2, 2), (1, 2, 1)]
    assert ranking_pairs([5]) == []


def test_single_ranking_expands_to_all_pairs():
    out = expand_rankings([_rank(1, [3, 1, 2, 4])], CANDS)
    assert len(out.pairs) == 6 and out.stats.pairs == 6 and out.stats.unanimous == 6
    best = {(p.chosen_id, p.rejected_id): p for p in out.pairs}
    assert best[(3, 4)].margin == 3 and best[(3, 1)].margin == 1
    p = best[(3, 4)]
    assert p.chosen == "answer 3" and p.rejected == "answer 4" and p.rater_kinds == ["human"]
    assert p.record_id == "r1" and p.label == "harmful" and p.batch_id == "b1" and not p.ai_feedback


def test_majority_kept_ties_dropped_and_counted():
    ranks = [_rank(1, [1, 2, 3], "a"), _rank(2, [1, 2, 3], "b"), _rank(3, [2, 1, 3], "c", kind="ai"),
             _rank(4, [3, 2, 1], "d", kind="ai")]
    out = expand_rankings(ranks, CANDS)
    by = {(p.chosen_id, p.rejected_id): p for p in out.pairs}
    # 1 vs 2: a,b say 1; c,d say 2 -> tie, dropped
    assert (1, 2) not in by and (2, 1) not in by and out.stats.ties_dropped == 1
    # 1 vs 3: a,b,c say 1, d says 3 -> majority 3:1
    assert by[(1, 3)].votes_for == 3 and by[(1, 3)].votes_against == 1
    assert by[(1, 3)].rater_kinds == ["ai", "human"] and by[(1, 3)].ai_feedback
    assert by[(1, 3)].margin == pytest.approx((2 + 2 + 1) / 3)
    assert out.stats.majority_over_disagreement == 2 and out.stats.unanimous == 0
    assert out.stats.pairs + out.stats.ties_dropped + out.stats.identical_dropped == out.stats.candidate_pairs


def test_rater_kind_filter_and_labels_carried():
    ranks = [_rank(1, [1, 2], "h"), _rank(2, [2, 1], "j", kind="ai")]
    human = expand_rankings(ranks, CANDS, rater_kinds={"human"})
    ai = expand_rankings(ranks, CANDS, rater_kinds={"ai"})
    assert [(p.chosen_id, p.rater_kinds) for p in human.pairs] == [(1, ["human"])]
    assert [(p.chosen_id, p.rater_kinds) for p in ai.pairs] == [(2, ["ai"])]
    assert ai.stats.by_rater_kind == {"ai": 1}


def test_identical_texts_dropped():
    cands = [_cand(1, text="same"), _cand(2, text="same "), _cand(3)]
    out = expand_rankings([_rank(1, [1, 2, 3])], cands)
    assert out.stats.identical_dropped == 1 and len(out.pairs) == 2


@pytest.mark.parametrize("ranking, msg", [
    (_rank(7, [1, 99]), "ranking 7 .*unknown candidate id 99"),
    (_rank(8, [1, 1]), "field 'order': a candidate id appears twice"),
    (_rank(9, [1, 2], kind="robot"), "field 'rater_kind'"),
])
def test_bad_rankings_name_the_ranking_and_field(ranking, msg):
    with pytest.raises(PairsError, match=msg):
        expand_rankings([ranking], CANDS)


def test_candidate_from_another_record_is_an_error():
    with pytest.raises(PairsError, match="belongs to record 'r2'"):
        expand_rankings([_rank(1, [1, 5])], [*CANDS, _cand(5, record="r2")])


def test_bad_candidate_label_names_candidates_and_field():
    with pytest.raises(PairsError, match=r"candidates 1/2 .*field 'label'"):
        expand_rankings([_rank(1, [1, 2])], [_cand(1, label="unsafe"), _cand(2, label="unsafe")])


def _pairs(n_records=10):
    cands, ranks = [], []
    for r in range(n_records):
        label = "harmful" if r % 2 else "benign"
        cands += [_cand(10 * r + k, record=f"rec{r}", label=label) for k in range(3)]
        ranks.append(_rank(r, [10 * r, 10 * r + 1, 10 * r + 2], record=f"rec{r}"))
    return expand_rankings(ranks, cands).pairs


def test_split_by_record_is_disjoint_stratified_and_deterministic():
    pairs = _pairs()
    train, held = split_pairs(pairs, heldout_fraction=0.2, seed=3)
    assert {p.record_id for p in train}.isdisjoint({p.record_id for p in held})
    assert len(train) + len(held) == len(pairs)
    assert {p.label for p in held} == {"harmful", "benign"}
    assert split_pairs(pairs, 0.2, seed=3) == (train, held)


def test_save_and_load_round_trip_with_lineage(tmp_path):
    train, held = split_pairs(_pairs(), 0.3)
    d = save_pair_dataset(tmp_path / "pairs", train, held, extra_lineage={"note": "unit"})
    t2, h2, lineage = load_pair_dataset(d)
    assert (t2, h2) == (train, held)
    assert lineage["kind"] == "preference-pairs" and lineage["note"] == "unit"
    assert lineage["counts"]["train"] == len(train) and lineage["policy_pack"].startswith("raipipe-default@")
    assert lineage["rater_kinds"] == {"human": len(train) + len(held)} and lineage["ai_feedback_pairs"] == 0
    assert sorted(x.name for x in tmp_path.iterdir()) == ["pairs"]  # no temp leftovers
    # tampering is caught against the lineage hash
    lines = (d / "train.jsonl").read_text().splitlines()
    (d / "train.jsonl").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(PairsError, match="content hash differs"):
        load_pair_dataset(d)


def test_save_refuses_overlap(tmp_path):
    pairs = _pairs(2)
    with pytest.raises(PairsError, match="both train and held-out"):
        save_pair_dataset(tmp_path / "x", pairs, pairs[:1])


def test_bad_jsonl_line_names_file_line_field(tmp_path):
    good = _pairs(1)[0]
    row = good.model_dump(mode="json")
    row["label"] = "maybe"
    f = tmp_path / "p.jsonl"
    f.write_text(good.model_dump_json() + "\n\n" + json.dumps(row) + "\n")
    with pytest.raises(PairsError, match=r"p\.jsonl:3: field 'label'"):
        read_pairs_jsonl(f)


def test_pairs_from_store(tmp_path):
    from raipipe.store import Candidate, Ranking, SampleBatch, open_store

    sessions = open_store(tmp_path / "store.db")
    with sessions() as s:
        s.add(SampleBatch(id="b1", manifest={"model": "embedded:smollm2", "dataset_hash": "abc"}))
        s.flush()
        ids = []
        for k, text in enumerate(["I can't help with that.", "Here is a vague idea.", "Sure thing."]):
            c = Candidate(batch_id="b1", record_id="seed-1", index=k, prompt="p?", label="harmful",
                          pillar="safety", language="en", policy_id="safety.fraud-crime", text=text)
            s.add(c)
            s.flush()
            ids.append(c.id)
        s.add(Ranking(batch_id="b1", record_id="seed-1", rater_id="alice", rater_kind="human", order=ids))
        s.add(Ranking(batch_id="b1", record_id="seed-1", rater_id="judge", rater_kind="ai", order=ids[::-1][:2]))
        s.commit()
    out = pairs_from_store(sessions, "b1")
    assert out.lineage["batch_manifest"]["dataset_hash"] == "abc"
    assert out.stats.rankings == 2 and out.stats.ties_dropped == 1 and len(out.pairs) == 2
    assert all(isinstance(p, PreferencePair) and p.rater_kinds == ["human"] for p in out.pairs)
    assert len(pairs_from_store(sessions, "b1", rater_kinds={"ai"}).pairs) == 1
    with pytest.raises(PairsError, match="no sample batch 'nope'"):
        pairs_from_store(sessions, "nope")


def _ai_rank(rid, order, tiers, record="r1"):
    ratings = {str(c): {"tier": t, "verdict": "x"} for c, t in tiers.items()}
    return SimpleNamespace(id=rid, batch_id="b1", record_id=record, rater_id="ai:j", rater_kind="ai", order=order,
                           ratings=ratings)


def test_tier_gap_marks_behaviour_differing_pairs_decisive():
    # 1 and 2 refuse (tier 0), 3 and 4 comply (tier 2) on a harmful prompt.
    out = expand_rankings([_ai_rank(1, [1, 2, 3, 4], {1: 0, 2: 0, 3: 2, 4: 2})], CANDS)
    by = {(p.chosen_id, p.rejected_id): p for p in out.pairs}
    assert by[(1, 3)].tier_gap == 2 and by[(1, 3)].decisive
    assert by[(1, 2)].tier_gap == 0 and not by[(1, 2)].decisive
    assert by[(3, 4)].tier_gap == 0 and not by[(3, 4)].decisive
    assert sum(p.decisive for p in out.pairs) == 4


def test_human_pairs_have_no_tiers_and_stay_decisive():
    out = expand_rankings([_rank(1, [2, 1])], CANDS)
    assert out.pairs[0].tier_gap is None and out.pairs[0].decisive


def test_training_pairs_decisive_filter_and_best_vs_worst():
    from raipipe.posttrain.pair_selection import training_pairs

    ranks = [_ai_rank(1, [1, 2, 3, 4], {1: 0, 2: 0, 3: 1, 4: 2}),
             _ai_rank(2, [5, 6], {5: 0, 6: 0}, record="r2")]
    cands = CANDS + [_cand(5, record="r2"), _cand(6, record="r2")]
    pairs = expand_rankings(ranks, cands).pairs
    assert len(pairs) == 7
    decisive = training_pairs(pairs)
    assert len(decisive) == 5 and all(p.record_id == "r1" and p.tier_gap > 0 for p in decisive)
    assert len(training_pairs(pairs, decisive_only=False)) == 7
    (best,) = training_pairs(pairs, strategy="best-vs-worst")
    assert (best.chosen_id, best.rejected_id, best.tier_gap) == (1, 4, 2)
    with pytest.raises(ValueError, match="pair strategy"):
        training_pairs(pairs, strategy="random")


def test_pairs_carry_language_and_weights_repeat_by_label_and_language():
    from raipipe.posttrain.pair_selection import weight_pairs

    cands = [_cand(1, "r1"), _cand(2, "r1"),
             _cand(3, "r2", label="benign", language="es"), _cand(4, "r2", label="benign", language="es"),
             _cand(5, "r3", label="benign"), _cand(6, "r3", label="benign")]
    ranks = [_rank(1, [1, 2]), _rank(2, [3, 4], record="r2"), _rank(3, [5, 6], record="r3")]
    pairs = expand_rankings(ranks, cands).pairs
    assert {p.record_id: p.language for p in pairs} == {"r1": "en", "r2": "es", "r3": "en"}
    weighted = weight_pairs(pairs, {"benign:es": 3, "benign": 2, "harmful": 0})
    assert [p.record_id for p in weighted].count("r2") == 3  # the most specific key wins
    assert [p.record_id for p in weighted].count("r3") == 2
    assert "r1" not in [p.record_id for p in weighted]  # weight 0 leaves a group out
    assert weight_pairs(pairs, {}) == pairs
    with pytest.raises(PairsError, match="label must be 'harmful' or 'benign'"):
        weight_pairs(pairs, {"benigne:es": 2})
    with pytest.raises(PairsError, match="whole number"):
        weight_pairs(pairs, {"benign": 1.5})


def test_pairs_without_language_still_load(tmp_path):
    line = PreferencePair(prompt="p", chosen="a", rejected="b", margin=1, record_id="r", label="benign",
                          rater_kinds=["human"], batch_id="b").model_dump(mode="json")
    line.pop("language")
    f = tmp_path / "old.jsonl"
    f.write_text(json.dumps(line) + "\n")
    (pair,) = read_pairs_jsonl(f)
    assert pair.language is None


def test_greedy_anchored_pairs_target_the_greedy_answer():
    from raipipe.posttrain.pair_selection import GREEDY_ORIGIN, training_pairs

    def cand(cid, record, origin, label="harmful"):
        c = _cand(cid, record, label=label)
        c.origin = origin
        return c

    # r1 (harmful): greedy answer 3 complies -> it must be the rejected side, the refusal 1 the chosen.
    # r2 (benign): greedy answer 6 complies -> it is the chosen side against the refusal 5.
    cands = [cand(1, "r1", "policy-template-refusal"), cand(2, "r1", "policy-model"), cand(3, "r1", GREEDY_ORIGIN),
             cand(4, "r2", "policy-model", "benign"), cand(5, "r2", "policy-template-refusal", "benign"),
             cand(6, "r2", GREEDY_ORIGIN, "benign"), cand(7, "r3", "policy-model"), cand(8, "r3", "policy-model")]
    ranks = [_ai_rank(1, [1, 2, 3], {1: 0, 2: 2, 3: 2}), _ai_rank(2, [4, 6, 5], {4: 0, 6: 0, 5: 2}, record="r2"),
             _ai_rank(3, [7, 8], {7: 0, 8: 2}, record="r3")]
    pairs = expand_rankings(ranks, cands).pairs
    assert {(p.chosen_origin, p.rejected_origin) for p in pairs if p.record_id == "r1"} >= {
        ("policy-template-refusal", GREEDY_ORIGIN)}
    got = {p.record_id: (p.chosen_id, p.rejected_id) for p in training_pairs(pairs, strategy="greedy-anchored")}
    assert got == {"r1": (1, 3), "r2": (6, 5), "r3": (7, 8)}  # r3 has no greedy answer: best-vs-worst
    bvw = {p.record_id: (p.chosen_id, p.rejected_id) for p in training_pairs(pairs, strategy="best-vs-worst")}
    assert bvw["r2"] == (4, 5)  # best-vs-worst would have ignored the greedy answer


def _anchored_and_clearest_pairs():
    """Three prompts (harmful en, benign en, harmful es), each with a refusal (tier 0), the greedy answer
    partly complying (tier 1) and a sample complying (tier 2): the anchored pair holds the greedy answer,
    the clearest pair the sample. Returns (pairs, candidates)."""
    from raipipe.posttrain.pair_selection import GREEDY_ORIGIN

    def cand(cid, record, origin, label, language="en"):
        c = _cand(cid, record, label=label, language=language)
        c.origin = origin
        return c

    cands = []
    for i, (record, label, lang) in enumerate([("r1", "harmful", "en"), ("r2", "benign", "en"),
                                               ("r3", "harmful", "es")]):
        cands += [cand(3 * i + 1, record, "policy-template-refusal", label, lang),
                  cand(3 * i + 2, record, "policy-model", label, lang),
                  cand(3 * i + 3, record, GREEDY_ORIGIN, label, lang)]
    ranks = [_ai_rank(1, [1, 3, 2], {1: 0, 3: 1, 2: 2}), _ai_rank(2, [5, 6, 4], {5: 0, 6: 1, 4: 2}, record="r2"),
             _ai_rank(3, [7, 9, 8], {7: 0, 9: 1, 8: 2}, record="r3")]
    return expand_rankings(ranks, cands).pairs, cands


def test_clearest_pairs_are_added_after_the_anchored_ones_for_named_groups():
    from raipipe.posttrain.pair_selection import training_pairs

    pairs, cands = _anchored_and_clearest_pairs()

    def picked(**kw):
        kept = training_pairs(pairs, strategy="greedy-anchored", **kw)
        return [(p.record_id, p.chosen_id, p.rejected_id) for p in kept]

    anchored = picked()
    assert anchored == [("r1", 1, 3), ("r2", 6, 4), ("r3", 7, 9)]
    assert picked(add_clearest=["harmful"]) == anchored + [("r1", 1, 2), ("r3", 7, 8)]
    assert picked(add_clearest=["harmful:es"]) == anchored + [("r3", 7, 8)]
    assert picked(add_clearest=["benign"]) == anchored + [("r2", 5, 4)]
    # where the clearest pair is the anchored one, nothing is added twice
    same = [_ai_rank(1, [1, 2, 3], {1: 0, 2: 2, 3: 2})]
    assert len(training_pairs(expand_rankings(same, cands[:3]).pairs, strategy="greedy-anchored",
                              add_clearest=["harmful"])) == 1
    with pytest.raises(PairsError, match="add_clearest 'harmfull'"):
        training_pairs(pairs, strategy="greedy-anchored", add_clearest=["harmfull"])
    with pytest.raises(ValueError, match="greedy-anchored"):
        training_pairs(pairs, strategy="best-vs-worst", add_clearest=["harmful"])


def test_pipeline_dpo_pairs_apply_add_clearest_then_weights(tmp_path):
    from raipipe.posttrain.config import PostTrainConfig
    from raipipe.posttrain.pipeline import PostTrainPipeline

    pairs, _ = _anchored_and_clearest_pairs()
    cfg = PostTrainConfig(out=tmp_path, pair_strategy="greedy-anchored", add_clearest=["harmful:es"],
                          pair_weights={"harmful": 2})
    got = [(p.record_id, p.chosen_id, p.rejected_id) for p in PostTrainPipeline(cfg).dpo_pairs(pairs)]
    assert got == [("r1", 1, 3)] * 2 + [("r2", 6, 4)] + [("r3", 7, 9)] * 2 + [("r3", 7, 8)] * 2
