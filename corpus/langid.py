"""Language identification with py3langid, whose model ships inside the wheel (no download).

py3langid (an optimised langid.py) gives normalised probabilities with a length-aware
temperature, so a threshold means the same thing for short and long texts. The model loads
once per process (about half a second) and is shared by every call in that process.
"""
from __future__ import annotations

import threading

_IDENTIFIER = None
_LOCK = threading.Lock()


def _identifier():
    global _IDENTIFIER
    if _IDENTIFIER is None:
        with _LOCK:
            if _IDENTIFIER is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier
                _IDENTIFIER = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _IDENTIFIER


def identify(text: str, max_chars: int = 20_000) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the most likely language of `text`.

    Only the first `max_chars` characters are read: language is settled long before that,
    and LID cost is linear in length."""
    if not text.strip():
        return "und", 0.0
    lang, prob = _identifier().classify(text[:max_chars])
    return lang, float(prob)


def is_wanted(lang: str, prob: float, languages: tuple[str, ...], threshold: float) -> str | None:
    """None if (lang, prob) passes, else the outcome name for the rejection."""
    if lang not in languages:
        return "lang_not_wanted"
    if prob < threshold:
        return "lang_low_score"
    return None
