"""Optional paraphrasing through any chat backend, off by default.

Template text alone repeats a few frames many times; a paraphrase varies the surface while a check
keeps what the exercise teaches: a rewrite must keep the policy id, the clause path and every quoted
request it contained, or the template text is kept. Paraphrased records get a new id and name the model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from raipipe.models.base import ChatModel, GenerationParams, Message
from raipipe.pretrain.exercises._records import Exercise, exercise_id
from raipipe.pretrain.exercises._templates import TemplateSet

_QUOTED = re.compile(r"[\"«“]\s?([^\"»”]{12,}?)\s?[\"»”]")


def must_keep(record: Exercise) -> list[str]:
    """Substrings a faithful paraphrase has to contain unchanged."""
    keep = [s for s in (record.policy_id, record.clause) if s and s in record.text]
    return keep + [m.group(1) for m in _QUOTED.finditer(record.text)]


def faithful(record: Exercise, rewrite: str) -> bool:
    return bool(rewrite.strip()) and all(s in rewrite for s in must_keep(record))


def paraphrase(records: Sequence[Exercise], model: ChatModel, templates: TemplateSet,
               params: GenerationParams | None = None, batch_size: int = 16) -> list[Exercise]:
    """Rewrite each record's text in its own language; unfaithful or empty rewrites keep the original."""
    params = params or GenerationParams(max_new_tokens=512)
    out: list[Exercise] = []
    for start in range(0, len(records), batch_size):
        batch = list(records[start:start + batch_size])
        convs = [[Message(role="user", content=templates.get(r.language).phrases.paraphrase.format(text=r.text))]
                 for r in batch]
        for rec, completions in zip(batch, model.generate(convs, params), strict=True):
            text = completions[0].strip() if completions else ""
            if not faithful(rec, text):
                out.append(rec)
                continue
            new_id = exercise_id(rec.kind.value, rec.language, rec.template_id, text, rec.source)
            out.append(rec.model_copy(update={"text": text, "id": new_id, "paraphrased_by": model.model_id}))
    return out
