"""Red-team report: attack success rate per strategy and per pillar with Wilson intervals, the policy ×
strategy coverage heat map, and replayable transcripts of what broke through.

The rate counts judged attempts only (success + partial over success + partial + target refused).
Attacker failures, unscoreable answers and errors are counted apart and never as the target holding:
a strategy whose attacker refused every rewrite has tested nothing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from markupsafe import escape
from pydantic import BaseModel
from rich.table import Table

from raipipe.data.records import PromptRecord
from raipipe.evaluate.stats import Rate, wilson
from raipipe.policy.loader import load_pack
from raipipe.redteam.records import AttackOutcome, AttackRecord
from raipipe.redteam.run_state import read_attacks_tolerant
from raipipe.redteam.seeds import read_manifest, read_seeds

BROKE = (AttackOutcome.SUCCESS, AttackOutcome.PARTIAL)
JUDGED = (*BROKE, AttackOutcome.TARGET_REFUSED)
APART = (AttackOutcome.ATTACKER_FAILED, AttackOutcome.UNSCOREABLE, AttackOutcome.ERROR)


class GroupStats(BaseModel):
    """Outcomes of one group of attempts, and its attack success rate over the judged ones."""

    attempts: int
    outcomes: dict[str, int]
    asr: Rate
    seeds: int
    seeds_broken: int

    @classmethod
    def of(cls, records: Sequence[AttackRecord]) -> GroupStats:
        counts = {o.value: sum(r.outcome == o for r in records) for o in AttackOutcome}
        broke = sum(counts[o.value] for o in BROKE)
        judged = sum(counts[o.value] for o in JUDGED)
        broken = {r.seed_id for r in records if r.outcome in BROKE}
        return cls(attempts=len(records), outcomes=counts, asr=wilson(broke, judged),
                   seeds=len({r.seed_id for r in records}), seeds_broken=len(broken))

    @property
    def apart(self) -> int:
        return sum(self.outcomes[o.value] for o in APART)


class RedteamReport(BaseModel):
    run_id: str
    target_model_id: str
    by_strategy: dict[str, GroupStats]
    by_pillar: dict[str, GroupStats]
    coverage: dict[str, dict[str, GroupStats]]  # policy -> strategy -> stats
    overall: GroupStats


def build_report(records: Sequence[AttackRecord], seeds: Iterable[PromptRecord], run: dict,
                 policies: Iterable[str] = ()) -> RedteamReport:
    """Group the attempts; `policies` adds rows for policies no seed covered (the gaps of the matrix)."""
    by_id = {s.id: s for s in seeds}
    groups: dict[str, dict[str, list[AttackRecord]]] = {"strategy": defaultdict(list), "pillar": defaultdict(list)}
    cells: dict[str, dict[str, list[AttackRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        seed = by_id.get(r.seed_id)
        groups["strategy"][r.strategy].append(r)
        groups["pillar"][seed.pillar.value if seed else "unknown"].append(r)
        cells[(seed.policy_id if seed else None) or "unknown"][r.strategy].append(r)
    for p in policies:
        cells[p]  # noqa: B018 - touching the defaultdict adds an empty row: a policy never attacked
    return RedteamReport(
        run_id=run.get("run_id", ""), target_model_id=run.get("config", {}).get("target_model_id", ""),
        by_strategy={k: GroupStats.of(v) for k, v in sorted(groups["strategy"].items())},
        by_pillar={k: GroupStats.of(v) for k, v in sorted(groups["pillar"].items())},
        coverage={p: {s: GroupStats.of(v) for s, v in sorted(row.items())} for p, row in sorted(cells.items())},
        overall=GroupStats.of(records))


def load_run_report(run_dir: str | Path) -> tuple[RedteamReport, list[AttackRecord]]:
    run_dir = Path(run_dir)
    run = read_manifest(run_dir / "run.json") or {}
    records = read_attacks_tolerant(run_dir / "attacks.jsonl")
    return build_report(records, read_seeds(run_dir), run, _pack_policies()), records


def _pack_policies() -> list[str]:
    try:
        return sorted(load_pack(None).policies)
    except Exception:  # noqa: BLE001 - without a pack the matrix shows attacked policies only
        return []


def console_table(report: RedteamReport) -> Table:
    table = Table(title=f"red team {report.run_id} vs {report.target_model_id}")
    for col in ("group", "attack success [95% CI]", "seeds broken", "refused", "attacker failed",
                "unscoreable", "error"):
        table.add_column(col, justify="left" if col == "group" else "right")
    rows = [(f"strategy {k}", v) for k, v in report.by_strategy.items()]
    rows += [(f"pillar {k}", v) for k, v in report.by_pillar.items()] + [("all", report.overall)]
    for name, g in rows:
        o = g.outcomes
        table.add_row(name, g.asr.fmt(), f"{g.seeds_broken}/{g.seeds}", str(o["target_refused"]),
                      str(o["attacker_failed"]), str(o["unscoreable"]), str(o["error"]))
    return table


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ddd;padding:4px 8px;font-size:13px}th{background:#f4f4f4}.num{text-align:right}
.muted{color:#777;font-size:11px}pre{white-space:pre-wrap;background:#f8f8f8;padding:6px;margin:2px 0}
details{margin:6px 0;border:1px solid #eee;padding:4px}"""


def _rate_cell(g: GroupStats) -> str:
    r = g.asr
    main = f"n/a (n={r.n})" if r.rate is None else f"{r.rate:.1%} <span class='muted'>[{r.low:.1%}, {r.high:.1%}]" \
        f" n={r.n}</span>"
    return f"<td class='num'>{main}</td><td class='num'>{g.seeds_broken}/{g.seeds}</td><td class='num'>{g.apart}</td>"


def _rate_table(title: str, groups: dict[str, GroupStats]) -> str:
    head = (f"<h2>{escape(title)}</h2><table><tr><th>group</th><th>attack success [95 % CI]</th><th>seeds broken</th>"
            "<th>not judged (attacker failed, unscoreable, error)</th></tr>")
    return head + "".join(f"<tr><td>{escape(k)}</td>{_rate_cell(g)}</tr>" for k, g in groups.items()) + "</table>"


def _heat(g: GroupStats | None) -> str:
    if g is None:
        return "<td style='background:#eee' class='muted'>not attacked</td>"
    if g.asr.rate is None:
        return f"<td style='background:#ddd' class='muted'>no judged attempt ({g.apart} apart)</td>"
    red = int(255 * g.asr.rate)
    return (f"<td style='background:rgb(255,{255 - red},{255 - red})' class='num'>{g.asr.rate:.0%}"
            f" <span class='muted'>n={g.asr.n}</span></td>")


def _coverage(report: RedteamReport) -> str:
    strategies = list(report.by_strategy)
    head = "<h2>Coverage: policy × strategy (attack success)</h2><table><tr><th>policy</th>" + "".join(
        f"<th>{escape(s)}</th>" for s in strategies) + "</tr>"
    body = "".join(f"<tr><td>{escape(p)}</td>" + "".join(_heat(row.get(s)) for s in strategies) + "</tr>"
                   for p, row in report.coverage.items())
    return head + body + "</table>"


def _transcript(r: AttackRecord, max_chars: int) -> str:
    chain = " → ".join(f"{s.name}(seed={s.seed}{', ' + str(s.params) if s.params else ''})" for s in r.chain) or "—"
    turns = "".join(
        "".join(f"<div class='muted'>{escape(m.role)}</div><pre>{escape(m.content[:max_chars])}</pre>" for m in t.sent)
        + f"<div class='muted'>target ({escape(t.verdict.verdict.value if t.verdict else 'unjudged')})</div>"
        f"<pre>{escape(t.response[:max_chars])}{'…' if len(t.response) > max_chars else ''}</pre>" for t in r.turns)
    return (f"<details><summary>{escape(r.strategy)} · seed {escape(r.seed_id)} · {escape(r.outcome.value)} · "
            f"record {escape(r.id)}</summary><p>chain: <code>{escape(chain)}</code> (chain seed {r.chain_seed}); "
            f"replay: <code>raipipe.redteam.replay(record)</code></p>{turns}</details>")


def render_html(report: RedteamReport, records: Sequence[AttackRecord], out: Path, max_transcripts: int = 100,
                max_chars: int = 1200) -> Path:
    """One self-contained HTML file (no external assets)."""
    broke = [r for r in records if r.outcome in BROKE][:max_transcripts]
    o = report.overall
    html = (f"<!doctype html><html><head><meta charset='utf-8'><title>red team {escape(report.run_id)}</title>"
            f"<style>{_CSS}</style></head><body><h1>Red-team run {escape(report.run_id)}</h1>"
            f"<p>target <code>{escape(report.target_model_id)}</code> · {o.attempts} attempts on {o.seeds} seeds · "
            f"attack success {escape(o.asr.fmt())} · counted apart: {o.apart} "
            f"(attacker failed {o.outcomes['attacker_failed']}, unscoreable {o.outcomes['unscoreable']}, "
            f"error {o.outcomes['error']}), never as target-safe</p>"
            + _rate_table("By strategy", report.by_strategy) + _rate_table("By pillar", report.by_pillar)
            + _coverage(report)
            + f"<h2>Transcripts of attacks that got through ({len(broke)} shown)</h2>"
            + "".join(_transcript(r, max_chars) for r in broke) + "</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
