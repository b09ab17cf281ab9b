"""AI feedback: the judges rank each prompt's candidates, stored with rater_kind='ai' and a rater id
that names the judges (e.g. 'ai:refusal-minilm@<digest>+rubric:<model>'), so it is never mistaken
for human preference downstream.

Order, best first:
1. behaviour tier from the refusal judge — harmful prompt: refuse > partial > comply; benign prompt:
   comply > partial > refuse; unscoreable (empty, degenerate) always last;
2. within a tier, the rubric judge's 1-5 score when a rubric judge is given (unscoreable = 0);
3. then the refusal judge's probability of the *preferred* class (p(refuse) for harmful prompts,
   p(comply) for benign), so a hedged compliance with a harmful request ranks above a confident one;
4. then `helpfulness()`: distinct-word ratio x min(1, words / 80) — rewards substantive, non-repetitive
   text up to about a paragraph and gives padding nothing more (a refusal that offers safe
   alternatives beats a bare 'No.');
5. then the candidate index, so the order is deterministic.
With `written_behaviour`, a candidate whose behaviour is known from how it was made takes that behaviour's
tier whatever the judge reads: the policy-written refusal refuses, the team's written answer (and the
greedy answer with a helpful opener before it) answers. The judge's verdict is still stored beside it. A
small judge misreads fluent Spanish and French answers written by the team as refusals (about one in seven
Spanish and one in four French in the default run), and each such misreading removes the pair that answer was
written for.
All candidates of the batch go through each judge in one call (the judges batch internally)."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from raipipe.judges.base import Judge, JudgeInput, Judgement, Verdict
from raipipe.judges.refusal import FeatureRefusalJudge
from raipipe.policy import load_pack
from raipipe.posttrain.ranking.store_ops import find_policy, list_rankings, save_ranking
from raipipe.posttrain.reference_answers import OPENED_ORIGIN, REFERENCE_ORIGIN
from raipipe.posttrain.refusal_templates import TEMPLATE_ORIGIN
from raipipe.store.posttrain_tables import Candidate

TIERS: dict[str, list[Verdict]] = {
    "harmful": [Verdict.REFUSE, Verdict.PARTIAL, Verdict.COMPLY, Verdict.UNSCOREABLE],
    "benign": [Verdict.COMPLY, Verdict.PARTIAL, Verdict.REFUSE, Verdict.UNSCOREABLE],
}
# behaviour known from how a candidate was made (written_behaviour)
WRITTEN_BEHAVIOUR: dict[str, Verdict] = {
    TEMPLATE_ORIGIN: Verdict.REFUSE, REFERENCE_ORIGIN: Verdict.COMPLY, OPENED_ORIGIN: Verdict.COMPLY}
HELPFUL_WORDS = 80  # beyond about a paragraph, length earns no more credit
_PROB_RE = re.compile(r"\b(comply|refuse|partial)=([0-9.]+)")


def helpfulness(text: str) -> float:
    """Length-normalised helpfulness heuristic in [0, 1] (see the module docstring)."""
    words = text.lower().split()
    if not words:
        return 0.0
    return len(set(words)) / len(words) * min(1.0, len(words) / HELPFUL_WORDS)


def preferred_probability(j: Judgement, label: str) -> float:
    """The refusal judge's probability of the class this prompt should get (0 when unscoreable)."""
    want = TIERS[label][0].value
    probs = {m.group(1): float(m.group(2)) for m in _PROB_RE.finditer(j.rationale or "")}
    if want in probs:
        return probs[want]
    if j.score is None or j.verdict is Verdict.UNSCOREABLE:
        return 0.0
    return j.score if j.verdict.value == want else 1.0 - j.score


class CandidateScore(BaseModel):
    candidate_id: int
    index: int
    verdict: Verdict = Field(description="refusal judge's verdict")
    written_as: Verdict | None = Field(None, description="behaviour known from how the candidate was made; when "
                                       "set, the tier is this behaviour's, not the verdict's")
    tier: int = Field(description="0 = the preferred behaviour for this prompt's label")
    rubric: float | None = Field(None, description="rubric judge's 1-5 score, if one ran")
    p_preferred: float = Field(description="refusal judge's probability of the preferred class")
    helpfulness: float

    def sort_key(self) -> tuple:
        return (self.tier, -(self.rubric or 0.0), -self.p_preferred, -self.helpfulness, self.index)


def order_candidates(
    label: str, cands: list[Candidate], refusal: list[Judgement], rubric: list[Judgement] | None = None,
    written_behaviour: bool = False,
) -> list[CandidateScore]:
    """Score and sort one prompt's candidates, best first."""
    if label not in TIERS:
        raise ValueError(f"label must be one of {sorted(TIERS)}, got {label!r}")
    scored = []
    for k, (c, rj) in enumerate(zip(cands, refusal, strict=True)):
        ru = rubric[k] if rubric is not None else None
        written = WRITTEN_BEHAVIOUR.get(c.origin) if written_behaviour else None
        scored.append(CandidateScore(
            candidate_id=c.id, index=c.index, verdict=rj.verdict, written_as=written,
            tier=TIERS[label].index(written or rj.verdict),
            rubric=ru.score if ru is not None and ru.verdict is not Verdict.UNSCOREABLE else None,
            p_preferred=preferred_probability(rj, label), helpfulness=helpfulness(c.text),
        ))
    return sorted(scored, key=CandidateScore.sort_key)


def ai_rater_id(refusal_judge: Judge, rubric_judge: Judge | None = None, written_behaviour: bool = False) -> str:
    """'ai:' + the judge ids (+ '+written' when written behaviours set tiers), made safe for a rater id
    (<= 100 chars; long ids end in a hash)."""
    raw = ("ai:" + refusal_judge.judge_id + (f"+{rubric_judge.judge_id}" if rubric_judge else "")
           + ("+written" if written_behaviour else ""))
    safe = re.sub(r"[^A-Za-z0-9_.@:+~\-]", "_", raw)
    if len(safe) > 100:
        safe = safe[:87] + "~" + hashlib.sha256(raw.encode()).hexdigest()[:12]
    return safe


class AIRankReport(BaseModel):
    batch_id: str
    rater_id: str
    judge_ids: list[str]
    items: int = Field(description="prompts ranked in this pass")
    candidates: int
    statuses: dict[str, int] = Field(description="created / replaced / unchanged rankings")
    verdicts: dict[str, dict[str, int]] = Field(description="refusal-judge verdicts per prompt label")


def ai_rank(
    sf: sessionmaker[Session], batch_id: str, refusal_judge: Judge | None = None, rubric_judge: Judge | None = None,
    pack=None, only_missing: bool = False, written_behaviour: bool = False,
) -> AIRankReport:
    """Rank every prompt of a batch with the judges and store the rankings (one transaction)."""
    if refusal_judge is None:
        refusal_judge = FeatureRefusalJudge()
    if pack is None and rubric_judge is not None:
        pack = load_pack()
    rater_id = ai_rater_id(refusal_judge, rubric_judge, written_behaviour)
    with sf() as s:
        cands = list(s.scalars(select(Candidate).where(Candidate.batch_id == batch_id)
                               .order_by(Candidate.record_id, Candidate.index)).all())
        if not cands:
            raise ValueError(f"no candidates in batch {batch_id!r}")
        if only_missing:
            done = {r.record_id for r in list_rankings(s, batch_id=batch_id, rater_id=rater_id)}
            cands = [c for c in cands if c.record_id not in done]
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(cands):
            groups.setdefault(c.record_id, []).append(i)
        groups = {r: ix for r, ix in groups.items() if len(ix) >= 2}
        flat = [i for ix in groups.values() for i in ix]
        inputs = [JudgeInput(id=str(cands[i].id), prompt=cands[i].prompt, response=cands[i].text,
                             policy=find_policy(pack, cands[i].policy_id)) for i in flat]
        ref = dict(zip(flat, refusal_judge.judge(inputs), strict=True)) if inputs else {}
        rub = dict(zip(flat, rubric_judge.judge(inputs), strict=True)) if inputs and rubric_judge else None
        statuses: Counter[str] = Counter()
        verdicts: dict[str, Counter[str]] = {}
        judge_ids = [refusal_judge.judge_id] + ([rubric_judge.judge_id] if rubric_judge else [])
        for record_id, ix in groups.items():
            label = cands[ix[0]].label
            scored = order_candidates(label, [cands[i] for i in ix], [ref[i] for i in ix],
                                      [rub[i] for i in ix] if rub is not None else None, written_behaviour)
            for i in ix:
                verdicts.setdefault(label, Counter())[ref[i].verdict.value] += 1
            ratings = {str(sc.candidate_id): sc.model_dump(exclude={"candidate_id", "index"}, mode="json")
                       for sc in scored}
            note = (f"AI feedback ({' + '.join(judge_ids)}); {label} prompt: "
                    + " > ".join(v.value for v in TIERS[label]))
            statuses[save_ranking(s, batch_id, record_id, rater_id, [sc.candidate_id for sc in scored],
                                  rater_kind="ai", ratings=ratings, note=note)] += 1
        s.commit()
    return AIRankReport(batch_id=batch_id, rater_id=rater_id, judge_ids=judge_ids, items=len(groups),
                        candidates=len(flat), statuses=dict(statuses),
                        verdicts={k: dict(v) for k, v in verdicts.items()})
