"""Quality filters: Gopher (Rae et al. 2021) and C4 (Raffel et al. 2020) style rules on the
extracted text. Each rule has a name; a rejected document is counted as `quality_<name>`
under the first rule it fails, in the order of RULES.

Thresholds are datatrove's defaults (GopherQualityFilter, GopherRepetitionFilter,
FineWebQualityFilter), checked on the bundled sample: its English prose passes and its
boilerplate-only pages fail. Lines are the text's newline-separated lines; for a
trafilatura extraction that is one line per paragraph, heading or list item.

- too_few_words / too_many_words: word count outside [min_words, max_words]. Short
  extractions are mostly menus, captions and error pages.
- mean_word_length: mean word length outside [3, 10] characters: tables of numbers, URLs,
  concatenated tokens, or symbol soup.
- symbol_ratio: ('#' + ellipses) per word above 0.1: hashtag lists, truncated teasers.
- bullet_lines: more than 90% of lines start with a bullet: link lists, not prose.
- ellipsis_lines: more than 30% of lines end with an ellipsis: "read more..." teaser pages.
- alpha_words: under 80% of words contain a letter: numeric dumps, code, tables.
- stop_words: fewer than 2 of Gopher's English stop words (the, be, to, of, and, that,
  have, with). Only applied to English: real sentences use them, keyword lists do not.
- terminal_punct: under 12% of lines end in terminal punctuation (FineWeb's line_punct_thr):
  navigation and lists of headlines do not end sentences.
- dup_lines / dup_line_chars: over 30% of lines, or 20% of characters, in lines that occur
  more than once: templated or scraped-together pages.
- lorem_ipsum: placeholder text (C4).
"""
from __future__ import annotations

from collections import Counter

RULES = ["too_few_words", "too_many_words", "mean_word_length", "symbol_ratio", "bullet_lines",
         "ellipsis_lines", "alpha_words", "stop_words", "terminal_punct", "dup_lines",
         "dup_line_chars", "lorem_ipsum"]

STOP_WORDS_EN = {"the", "be", "to", "of", "and", "that", "have", "with"}
BULLETS = ("•", "-", "*", "·", "‣", "▪", "◦", "–", "—", "●", "➤")
TERMINAL = (".", "!", "?", '"', "'", "”", "’", ":", ";", ")", "…", "。", "！", "？")


def quality_rejection(text: str, lang: str, cfg) -> str | None:
    """Name of the first rule `text` fails (without the `quality_` prefix), or None."""
    words = text.split()
    n = len(words)
    if n < cfg.min_words:
        return "too_few_words"
    if n > cfg.max_words:
        return "too_many_words"
    mean_len = sum(len(w) for w in words) / n
    if not cfg.min_mean_word_length <= mean_len <= cfg.max_mean_word_length:
        return "mean_word_length"
    symbols = text.count("#") + text.count("...") + text.count("…")
    if symbols / n > cfg.max_symbol_word_ratio:
        return "symbol_ratio"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if sum(ln.startswith(BULLETS) for ln in lines) / len(lines) > cfg.max_bullet_lines_ratio:
        return "bullet_lines"
    if sum(ln.endswith(("...", "…")) for ln in lines) / len(lines) > cfg.max_ellipsis_lines_ratio:
        return "ellipsis_lines"
    if sum(any(c.isalpha() for c in w) for w in words) / n < cfg.min_alpha_words_ratio:
        return "alpha_words"
    if lang == "en" and sum(w.lower() in STOP_WORDS_EN for w in words) < cfg.min_stop_words:
        return "stop_words"
    if sum(ln.endswith(TERMINAL) for ln in lines) / len(lines) < cfg.min_terminal_punct_lines_ratio:
        return "terminal_punct"
    counts = Counter(lines)
    dup = [ln for ln in lines if counts[ln] > 1]
    if len(dup) / len(lines) > cfg.max_dup_lines_ratio:
        return "dup_lines"
    if sum(map(len, dup)) / max(1, sum(map(len, lines))) > cfg.max_dup_line_chars_ratio:
        return "dup_line_chars"
    if "lorem ipsum" in text.lower():
        return "lorem_ipsum"
    return None
