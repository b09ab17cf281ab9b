"""Turn a task phrase into a full prompt: template + persona + context, then casual noise.

Kept apart from the generator so the wording rules (French elision, typo noise, capitalisation)
can be tested and changed without touching the split and deduplication logic.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass

from raipipe.data.generator_blocks import Phrasings, Snippet, Style, Template

# French elides de/que/je/me/te/se/le/ne before a vowel: "de acheter" -> "d'acheter".
_FR_ELISION = re.compile(r"\b([dDjJmMtTsSnNlL]e|[qQ]ue) +(?=[aeiouyàâéèêëîïôûAEIOUYÀÂÉÈÊÎÔÛ])")
_SPACES = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class Frame:
    """One way of phrasing a task: a template, plus the persona and context it was filled with."""

    template: Template
    persona: Snippet | None = None
    context: Snippet | None = None

    @property
    def key(self) -> str:
        parts = [self.template.id, self.persona.id if self.persona else "-", self.context.id if self.context else "-"]
        return "/".join(parts)


def frames(phrasings: Phrasings, rng: random.Random) -> list[Frame]:
    """Every distinct frame, shuffled: templates without a persona once, the rest once per persona.

    The context sentence is drawn at random so long variants do not share one fixed preamble, which
    would make prompts about unrelated topics near-duplicates of each other.
    """
    out: list[Frame] = []
    for t in phrasings.templates:
        uses_persona = any("{persona}" in t.text(lang) for lang in ("en", "es", "fr"))
        uses_context = any("{context}" in t.text(lang) for lang in ("en", "es", "fr"))
        for persona in phrasings.personas if uses_persona else [None]:
            context = rng.choice(phrasings.contexts) if uses_context else None
            out.append(Frame(t, persona, context))
    rng.shuffle(out)
    # short, persona-free frames first so that every style is used before persona variants repeat one
    out.sort(key=lambda f: f.persona is not None)
    return out


def _capitalise(text: str) -> str:
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1 :]
    return text


def render(frame: Frame, task: str, language: str) -> str:
    """Fill the template; sentence-case the start and tidy spacing and French elision."""
    text = frame.template.text(language).format(
        task=task,
        persona=frame.persona.text(language) if frame.persona else "",
        context=frame.context.text(language) if frame.context else "",
    )
    if language == "fr":
        text = _FR_ELISION.sub(lambda m: m.group(1)[:-1] + "'", text)
    text = _SPACES.sub(" ", text).strip()
    return text if frame.template.style == Style.CASUAL else _capitalise(text)


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 2)
    op = rng.choice(("swap", "drop", "double"))
    if op == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def add_noise(text: str, rng: random.Random, typos: int = 2) -> str:
    """Casual-register noise: lower case, often no accents, and a few keyboard slips."""
    text = text.lower()
    if rng.random() < 0.5:
        text = _strip_accents(text)
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    for i in rng.sample(candidates, min(typos, len(candidates))):
        words[i] = _typo(words[i], rng)
    return " ".join(words)
