"""How much an answer reads as words of a real language: signals for telling word salad from a poor attempt.

A small model's Spanish and French answers are often word salad: real words and near-words ("entiellos",
"besuites") strung together without meaning. The degenerate detector's rules catch keyboard mash and loops
but not this, so a refusal judge scores it as compliance and inflates violation rates. People label most of
it unscoreable. No single rule separates it from a clumsy but readable attempt, so these signals feed a head
fitted on labelled answers of the judged model (`raipipe.judges.stack`).

Word frequencies come from `wordfreq` (offline, shipped inside the package): a word it does not know in
the answer's best-fitting language is a near-word."""

from __future__ import annotations

from functools import lru_cache

LANGUAGES = ("en", "es", "fr", "de", "it", "pt")
UNKNOWN_ZIPF = 1.0  # below: not a word of the language (wordfreq's Zipf scale: 1 = once per 100 million words)
RARE_ZIPF = 3.0  # below: a rare word (once per million words)
FLUENCY_NAMES = ["unknown_words", "rare_words", "mean_zipf", "language_mismatch", "prompt_not_english",
                 "content_overlap"]


@lru_cache(maxsize=200_000)
def _zipf(word: str, language: str) -> float:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, language)


@lru_cache(maxsize=4096)
def _tokens(text: str) -> tuple[str, ...]:
    from wordfreq import tokenize

    return tuple(w for w in tokenize(text, LANGUAGES[0]) if w.isalpha())


def _words(text: str, language: str) -> list[str]:
    """The text's words as wordfreq looks them up. It tokenizes all of LANGUAGES by the same rules (Latin script,
    NFC, case folding), so one pass serves every language: tokenizing once per language was most of the time the
    salad head costs."""
    if language not in LANGUAGES:
        raise ValueError(f"no word frequencies for language {language!r} (known: {', '.join(LANGUAGES)})")
    return list(_tokens(text))


def best_language(text: str) -> tuple[str, list[float]]:
    """The language whose vocabulary knows most of the text's words (ties: the higher mean frequency),
    with the words' Zipf frequencies in it."""
    best: tuple[float, float, str, list[float]] | None = None
    for language in LANGUAGES:
        zipfs = [_zipf(w, language) for w in _words(text, language)]
        if not zipfs:
            continue
        known = sum(z >= UNKNOWN_ZIPF for z in zipfs) / len(zipfs)
        key = (known, sum(zipfs) / len(zipfs), language, zipfs)
        if best is None or key[:2] > best[:2]:
            best = key
    return (best[2], best[3]) if best else ("", [])


def fluency_signals(prompt: str, response: str) -> list[float]:
    """One row of FLUENCY_NAMES, each scaled to about [0, 1]."""
    language, zipfs = best_language(response)
    prompt_language, _ = best_language(prompt)
    if not zipfs:
        return [0.0, 0.0, 0.0, 0.0, float(prompt_language != "en"), 0.0]
    prompt_words = set(_words(prompt, language))
    content = [w for w in _words(response, language) if len(w) >= 4]
    overlap = sum(w in prompt_words for w in content) / len(content) if content else 0.0
    return [sum(z < UNKNOWN_ZIPF for z in zipfs) / len(zipfs), sum(z < RARE_ZIPF for z in zipfs) / len(zipfs),
            sum(zipfs) / len(zipfs) / 8, float(language != prompt_language), float(prompt_language != "en"), overlap]
