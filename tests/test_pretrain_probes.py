"""Pretraining probes: sliding-window perplexity (exact, grouped per pillar, lower after training on the
text), sparse-question scoring with a scripted model and a real judge, the side-by-side report, the CLI,
and that the held-out probe text shares nothing with the training exercises."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from raipipe.data.seed import load_seed
from raipipe.errors import UsageError
from raipipe.judges.base import Judge, JudgeInput, Judgement, Verdict, load_judge
from raipipe.models.base import ChatModel, GenerationParams
from raipipe.policy.loader import load_pack
from raipipe.policy.schema import Pillar
from raipipe.pretrain import generate_exercises
from raipipe.pretrain.probe_cli import app
from raipipe.pretrain.probes import (
    GENERAL,
    CheckpointProbes,
    PerplexitySettings,
    ProbeText,
    compare,
    console_table,
    cut_answer,
    judge_agreement,
    load_fewshot,
    load_probe_texts,
    load_questions,
    overlapping,
    perplexity_by_group,
    probe_model,
    regrade,
    run_sparse_probes,
    to_html,
    windows,
    write_report,
)
from raipipe.pretrain.probes._run import ProbeConfig
from raipipe.pretrain.probes._sparse import replays_example, score_answers, worked_answer_shingles
from raipipe.pretrain.probes._texts import QUESTIONS_FILE, default_probe_dir
from raipipe.pretrain.train import ContinuedPretrainConfig, DataSource, train_continued

TRAINED = "The lighthouse keeper logged every passing ship in a green notebook before dawn."


def _hf(path):
    from raipipe.models import load_model

    return load_model(f"hf:{path}?dtype=float32", batch_size=16)


def test_shipped_probe_material_is_complete():
    texts = load_probe_texts()
    for pillar in Pillar:
        mine = [t for t in texts if t.group == pillar.value]
        assert len(mine) >= 6 and {"en", "es", "fr"} <= {t.language for t in mine}
    general = [t for t in texts if t.group == GENERAL]
    assert len(general) >= 20 and {"es", "fr"} <= {t.language for t in general}
    questions = load_questions()
    assert {q.pillar for q in questions} == set(Pillar)
    pairs = {}
    for q in questions:
        pairs.setdefault(q.pair_id, set()).add(q.label)
    assert all(v == {"harmful", "benign"} for v in pairs.values())
    assert set(load_pack(None).policies) >= {q.policy_id for q in questions}


def test_probe_text_is_held_out_from_training_exercises():
    from raipipe.data.team_replies import load_team_replies

    exercises = [e.text for e in generate_exercises(load_pack(None))] + load_team_replies().answers()
    assert not overlapping([t.text for t in load_probe_texts()], exercises)
    assert not overlapping([q.question for q in load_questions()], exercises + [r.prompt for r in load_seed()])
    assert overlapping([exercises[0]], exercises)  # the check does find shared text


def test_development_pairs_are_held_out_from_the_probe(tmp_path):
    """Settings are chosen on the development pairs; they must not share text with the probe that reports."""
    folder = tmp_path / "dev"
    shutil.copytree(default_probe_dir(), folder)
    shutil.copy(Path(__file__).parents[1] / "benchmarks" / "data" / "pretrain_dev_questions.yaml",
                folder / QUESTIONS_FILE)
    dev = load_questions(folder)
    assert len(dev) >= 600 and {q.pillar for q in dev} == set(Pillar)
    assert not overlapping([q.question for q in dev], [q.question for q in load_questions()], n=6)


def test_windows_score_every_token_once():
    ids = list(range(23))
    for max_length, stride in [(8, 3), (8, 7), (30, 5), (4, 10)]:
        scored = []
        for w, context in windows(ids, max_length, stride):
            assert len(w) <= max_length and context >= 1
            scored += w[context:]
        assert scored == ids[1:]


def test_perplexity_matches_model_loss_and_groups(tiny_model_dir):
    import torch

    model = _hf(tiny_model_dir)
    texts = [ProbeText(id="a", group="safety", language="en", text=TRAINED),
             ProbeText(id="b", group=GENERAL, language="en", text="Rain fell on the quiet harbour all afternoon."),
             ProbeText(id="c", group=GENERAL, language="en", text="Tea tastes better in a warm cup.")]
    full = perplexity_by_group(model.model, model.tokenizer, texts, PerplexitySettings(max_length=64, batch_size=2))
    assert set(full) == {"safety", GENERAL} and full[GENERAL].n_texts == 2
    ids = [model.tokenizer.eos_token_id] + model.tokenizer(TRAINED, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        loss = model.model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    assert full["safety"].n_tokens == len(ids) - 1
    assert full["safety"].perplexity == pytest.approx(math.exp(loss), rel=1e-4)
    slid = perplexity_by_group(model.model, model.tokenizer, texts, PerplexitySettings(max_length=8, stride=3))
    assert slid["safety"].n_tokens == full["safety"].n_tokens  # same tokens, less context each


def test_perplexity_drops_on_text_just_trained_on(tiny_model_dir, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"text": TRAINED}) + "\n")
    texts = [ProbeText(id="t", group="safety", language="en", text=TRAINED)]
    before = perplexity_by_group(*(lambda m: (m.model, m.tokenizer))(_hf(tiny_model_dir)), texts)
    cfg = ContinuedPretrainConfig(model=str(tiny_model_dir), data=[DataSource(path=corpus, weight=4)],
                                  output_dir=tmp_path / "run", max_length=32, batch_size=2, max_steps=3,
                                  learning_rate=1e-2, save_steps=3, probe=False, lora={"full_finetune": True})
    result = train_continued(cfg)
    trained = _hf(result.final_dir)
    after = perplexity_by_group(trained.model, trained.tokenizer, texts)
    assert after["safety"].perplexity < 0.8 * before["safety"].perplexity


class ScriptedModel(ChatModel):
    """Refuses the harmful question of every pillar but safety, and one benign question; rambles on
    into a next few-shot example, as base models do."""

    name = "scripted"

    def __init__(self, refuse: set[str]):
        self.refuse = refuse
        self.seen: list[str] = []

    @property
    def model_id(self) -> str:
        return "scripted@1"

    def generate(self, conversations, params: GenerationParams):
        out = []
        for conv in conversations:
            question = conv[-1].content.rsplit("Q: ", 1)[1].split("\nA:")[0]
            self.seen.append(question)
            answer = ("I'm sorry, I can't help with that." if question in self.refuse
                      else "Dear neighbours, a parcel for you was left at number 12 by mistake; please collect it.")
            out.append([answer + "\n\nQ: Can I ask another thing?\nA: I'm sorry, no."])
        return out


def _scripted():
    questions = load_questions()
    benign_refused = next(q for q in questions if q.pillar == Pillar.FAIRNESS and q.label == "benign")
    refuse = {q.question for q in questions if q.label == "harmful" and q.pillar != Pillar.SAFETY}
    return ScriptedModel(refuse | {benign_refused.question}), questions


def test_sparse_probes_with_scripted_model_and_real_judge():
    model, questions = _scripted()
    judge = load_judge("refusal-opener")
    rates, answers = run_sparse_probes(model, judge, questions, load_fewshot())
    assert all("\nQ:" not in a.answer for a in answers)  # the rambling tail was cut
    safety, fairness, overall = rates["safety"], rates["fairness"], rates["all"]
    n_safety = sum(q.pillar == Pillar.SAFETY and q.label == "harmful" for q in questions)
    n_fair = sum(q.pillar == Pillar.FAIRNESS and q.label == "benign" for q in questions)
    assert safety.violation.k == safety.violation.n == n_safety >= 3 and safety.over_refusal.k == 0
    assert fairness.violation.k == 0 and fairness.over_refusal.k == 1 and fairness.over_refusal.n == n_fair
    assert overall.violation.n == len(questions) // 2 and overall.violation.k == n_safety
    rate = n_safety / overall.violation.n
    assert overall.violation.low < rate < overall.violation.high  # Wilson interval around the rate
    assert cut_answer("Fine.\n Q: next") == "Fine." and cut_answer("A: Fine.\nQ: x\nA: y") == "Fine."


def test_answers_that_copy_a_worked_example_are_counted_and_reported():
    """A copy of the prefix's decline is counted on either side (people label it a deflection whatever the
    question); the count survives a regrade, shows as a report row, and older results without it read n/a."""
    fewshot = load_fewshot()
    decline = next(ex["answer"] for ex in fewshot.examples if "forge" in ex["answer"])
    model, questions = _scripted()
    questions = [q for q in questions if q.language == "en"][:12]
    copier = {q.question for q in questions[:3]}

    class Copier(ScriptedModel):
        def generate(self, conversations, params):
            out = super().generate(conversations, params)
            return [[decline] if c[-1].content.rsplit("Q: ", 1)[1].split("\nA:")[0] in copier else o
                    for c, o in zip(conversations, out, strict=True)]

    rates, answers = run_sparse_probes(Copier(set()), load_judge("refusal-opener"), questions, fewshot)
    assert [a.replays_example for a in answers] == [True] * 3 + [False] * 9
    assert (rates["all"].replayed.k, rates["all"].replayed.n) == (3, 12)
    assert not replays_example("Dear neighbours, a parcel for you was left at number 12 by mistake.",
                            worked_answer_shingles(fewshot))
    checked = CheckpointProbes(label="after", spec="scripted", model_id="scripted@1", dtype="float32",
                               material="m", settings="s", probes=rates, answers=answers, judge_id="refusal-opener@1")
    again = regrade(checked, load_judge("refusal"), load_questions())
    assert [a.replays_example for a in again.answers] == [a.replays_example for a in answers]
    assert again.probes["all"].replayed == rates["all"].replayed
    unchecked = [a.model_copy(update={"replays_example": None}) for a in answers]
    old = checked.model_copy(update={"label": "before", "answers": unchecked, "probes": score_answers(unchecked)})
    assert old.probes["all"].replayed is None
    rows = [r for r in compare([old, checked]).rows if r.metric == "replayed" and r.group == "all"]
    assert [c.text for c in rows[0].cells] == ["n/a", "25% [9%, 53%]"]


def test_unscoreable_answers_are_kept_apart():
    model, questions = _scripted()
    judge = load_judge("refusal-opener")
    empty = type("Empty", (ScriptedModel,), {"generate": lambda self, c, p: [[""] for _ in c]})(set())
    rates, _ = run_sparse_probes(empty, judge, questions[:4], load_fewshot())
    assert rates["all"].unscoreable == 4 and rates["all"].violation.n == 0 and rates["all"].violation.rate is None
    verdict = judge.judge([JudgeInput(prompt="q", response="")])[0].verdict
    assert verdict.value == "unscoreable"


def test_report_compares_checkpoints_side_by_side(tiny_model_dir, tmp_path):
    cfg = ProbeConfig(languages=["es"])
    judge = load_judge("refusal-opener")
    model = _hf(tiny_model_dir)
    first = probe_model(model, "base", f"hf:{tiny_model_dir}", cfg.model_copy(update={"run_sparse": False}))
    scripted, _ = _scripted()
    second = probe_model(scripted, "scripted", "scripted", cfg, judge=judge)
    second = second.model_copy(update={"perplexity": {g: p.model_copy(update={"perplexity": p.perplexity / 2})
                                                      for g, p in first.perplexity.items()}})
    report = compare([first, second])
    ppl = [r for r in report.rows if r.metric == "perplexity"]
    assert {r.group for r in ppl} >= {"safety", GENERAL}
    assert all(r.cells[1].delta == pytest.approx(-0.5) and r.n[0] > 0 for r in ppl)
    viol = next(r for r in report.rows if r.metric == "violation" and r.group == "all")
    assert viol.cells[0].value is None and viol.cells[1].delta is None  # no baseline rate: no delta
    spanish = [q for q in load_questions() if q.language == "es"]
    assert len(first.margins) == len(spanish) and not second.margins  # a scripted model has no likelihoods
    sep = next(r for r in report.rows if r.metric == "separation" and r.group == "all")
    assert 0.0 <= sep.cells[0].value <= 1.0 and sep.n[0] == len(spanish) // 2 and sep.cells[1].text == "n/a"
    assert any(r.metric == "paired" for r in report.rows)
    paths = write_report(report, tmp_path / "rep")
    assert json.loads(paths["json"].read_text())["labels"] == ["base", "scripted"]
    assert "<table>" in to_html(report) and "-50.0%" in paths["html"].read_text()
    assert console_table(report).row_count == len(report.rows)


def french_before_after():
    """Two scripted checkpoints on the French questions: the second refuses 4 more harmful questions, stops
    refusing 1, and now refuses 3 benign ones. Returns both probe results and their judge."""
    questions = [q for q in load_questions() if q.language == "fr"]
    harmful = [q.question for q in questions if q.label == "harmful"]
    benign = [q.question for q in questions if q.label == "benign"]
    judge = load_judge("refusal-opener")
    cfg = ProbeConfig(languages=["fr"], run_preference=False)
    before = probe_model(ScriptedModel(set(harmful[:10])), "before", "a", cfg, judge=judge)
    after = probe_model(ScriptedModel(set(harmful[1:14]) | set(benign[:3])), "after", "b", cfg, judge=judge)
    return before, after, judge


def test_report_tests_each_checkpoint_against_the_first_on_the_same_questions():
    """Paired McNemar rows: which questions turned bad or good, not only two overlapping intervals."""
    before, after, _ = french_before_after()
    harmful = [q for q in load_questions() if q.language == "fr" and q.label == "harmful"]
    report = compare([before, after])
    tests = {c.metric: c.test for c in report.paired}
    assert (tests["violation"].b, tests["violation"].c, tests["violation"].n_pairs) == (4, 1, len(harmful))
    assert (tests["over-refusal"].b, tests["over-refusal"].c) == (0, 3)
    assert tests["violation"].p_value == pytest.approx(0.375)  # exact: 2 * P(X <= 1), X ~ Bin(5, 1/2)
    row = next(r for r in report.rows if r.metric == "violation paired")
    assert row.cells[0].text == "" and row.cells[1].text.startswith("4 fewer, 1 more of")
    assert "over-refusal paired" in to_html(report)


def test_probe_cli_two_models(tiny_model_dir, tmp_path):
    out = tmp_path / "probe"
    spec = f"hf:{tiny_model_dir}?dtype=float32"
    res = CliRunner().invoke(app, ["probe", "--model", spec, "--model", spec, "--label", "a", "--label", "b",
                                   "--out", str(out), "--judge", "refusal-opener", "--max-new-tokens", "8",
                                   "--languages", "fr"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == ["a", "b"] and report["same_material"]
    ppl = [r for r in report["rows"] if r["metric"] == "perplexity"]
    assert ppl and all(r["cells"][1]["delta"] == pytest.approx(0.0, abs=1e-6) for r in ppl)  # same model twice
    bad = CliRunner().invoke(app, ["probe", "--model", "nope:x", "--out", str(out)])
    assert bad.exit_code != 0 and "nope:x" in bad.output


def test_preference_openings_are_not_trained_phrases():
    """The openings must not be phrases post-training or the demonstrations teach, or a checkpoint could
    score by recalling a template rather than by telling harmful from benign."""
    import yaml

    from raipipe.posttrain.refusal_templates import default_templates_path
    from raipipe.pretrain.probes import load_openings
    from raipipe.pretrain.probes._texts import shingles

    openings = load_openings()
    assert {q.language for q in load_questions()} <= set(openings)

    def strings(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for v in node.values():
                yield from strings(v)
        elif isinstance(node, list):
            for v in node:
                yield from strings(v)

    trained = set().union(*(shingles(s, 5) for s in strings(yaml.safe_load(default_templates_path().read_text()))))
    for lang, o in openings.items():
        for text in (*o.refuse, *o.comply):
            assert not shingles(text, 5) & trained, (lang, text)


def _margins(pairs):
    from raipipe.pretrain.probes import QuestionMargin

    out = []
    for i, (pillar, h, b) in enumerate(pairs):
        for label, m in (("harmful", h), ("benign", b)):
            out.append(QuestionMargin(id=f"{pillar}-{i}-{label[0]}", pair_id=f"{pillar}-{i}", pillar=pillar,
                                      label=label, language="en", margin=m))
    return out


def test_preference_scoring_reads_separation_not_the_global_dial():
    from raipipe.pretrain.probes import score_margins

    apart = [("safety", 2.0, -1.0), ("safety", 1.5, 0.5), ("fairness", 0.8, -0.3), ("fairness", 3.0, 0.1)]
    res = score_margins(_margins(apart))
    assert res["all"].auc == 1.0 and res["all"].paired.k == res["all"].paired.n == 4
    assert res["all"].auc_low <= 1.0 and res["safety"].pairs == 2 and list(res)[-1] == "all"
    shifted = score_margins(_margins([(p, h + 7, b + 7) for p, h, b in apart]))  # refuses more, discriminates alike
    assert shifted["all"].auc == res["all"].auc and shifted["all"].paired.k == 4
    flipped = score_margins(_margins([(p, b, h) for p, h, b in apart]))
    assert flipped["all"].auc == 0.0 and flipped["all"].paired.k == 0
    tied = score_margins(_margins([("safety", 1.0, 1.0), ("safety", 0.0, 0.0)]))
    assert tied["all"].auc == 0.5 and tied["all"].paired.k == 0
    lone = _margins(apart)[:-1]  # the last pair lost its benign side: it is left out, not half-counted
    assert score_margins(lone)["all"].pairs == 3


def test_continuation_logprobs_match_an_unbatched_forward(tiny_model_dir):
    import torch

    from raipipe.pretrain.probes import continuation_logprobs

    model = _hf(tiny_model_dir)
    tok = model.tokenizer
    rows = [("Q: where is the ship?\nA:", " In the harbour."), ("Short", " reply that is rather longer"),
            ("A much longer context sentence that pads the others in its batch.", " Yes")]
    batched = continuation_logprobs(model.model, tok, rows, batch_size=3)
    for (ctx, cont), got in zip(rows, batched, strict=True):
        c, o = tok(ctx, add_special_tokens=False)["input_ids"], tok(cont, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logp = model.model(torch.tensor([c + o])).logits[0].float().log_softmax(-1)
        want = sum(float(logp[len(c) - 1 + j, t]) for j, t in enumerate(o))
        assert got == pytest.approx(want, abs=1e-4)


def test_preference_file_errors_name_the_field(tmp_path):
    from raipipe.errors import DatasetError
    from raipipe.pretrain.probes import load_openings, question_margins

    (tmp_path / "preference.yaml").write_text("en:\n  refuse: []\n  comply: [Sure.]\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"en\.refuse"):
        load_openings(tmp_path)
    (tmp_path / "preference.yaml").write_text("en:\n  refuse: [No.]\n  comply: [Sure.]\n", encoding="utf-8")
    spanish = [q for q in load_questions() if q.language == "es"][:2]
    with pytest.raises(ValueError, match="es"):
        question_margins(object(), spanish, load_fewshot(), load_openings(tmp_path))
    assert load_openings(tmp_path / "no-such-dir").keys() >= {"en", "es", "fr"}  # falls back to the shipped file


class CallsEverythingCompliance(Judge):
    """A judge that reads every answer as compliance: the first reading a second judge corrects."""

    name = "test-always-comply"

    @property
    def judge_id(self) -> str:
        return "test-always-comply@1"

    def judge(self, items):
        return [Judgement(verdict=Verdict.COMPLY, judge_id=self.judge_id) for _ in items]


def test_regrade_reads_stored_answers_with_a_second_judge(tmp_path):
    """Regrading costs no generation, gives the rates the second judge would have given, and says how often the
    two judges agree; the CLI writes the regraded results and their report."""
    questions = [q for q in load_questions() if q.language == "fr"]
    harmful = {q.question for q in questions if q.label == "harmful"}
    cfg = ProbeConfig(languages=["fr"], run_preference=False)
    model = ScriptedModel(set(sorted(harmful)[:12]))
    first = probe_model(model, "before", "scripted", cfg, judge=CallsEverythingCompliance())
    direct = probe_model(ScriptedModel(set(sorted(harmful)[:12])), "before", "scripted", cfg,
                         judge=load_judge("refusal-opener"))
    asked = len(model.seen)
    second = regrade(first, load_judge("refusal-opener"), load_questions())
    assert len(model.seen) == asked  # nothing generated again
    assert second.probes["all"].violation == direct.probes["all"].violation != first.probes["all"].violation
    assert [a.verdict for a in second.answers] == [a.verdict for a in direct.answers]
    assert second.settings == f"{first.settings}+judge:refusal-opener@1"
    agreement = judge_agreement(first, second)
    assert agreement.both_scored == len(questions) and agreement.refusal_agreement == pytest.approx(
        1 - 12 / len(questions))
    (tmp_path / "before.json").write_text(first.model_dump_json(), encoding="utf-8")
    res = CliRunner().invoke(app, ["regrade", "--results", str(tmp_path / "before.json"), "--judge",
                                   "refusal-opener", "--out", str(tmp_path / "rg")])
    assert res.exit_code == 0, res.output
    assert "agrees with the first judge on refusal" in res.output and (tmp_path / "rg" / "report.json").is_file()
    stored = CheckpointProbes.model_validate_json((tmp_path / "rg" / "before.json").read_text(encoding="utf-8"))
    assert stored.probes["all"].violation == direct.probes["all"].violation
    other = first.model_copy(update={"answers": [first.answers[0].model_copy(update={"id": "nowhere-h"})]})
    with pytest.raises(UsageError, match="no question in the probe material"):
        regrade(other, load_judge("refusal-opener"), questions)
