"""Sentence splitting for packing: a rule-based splitter with no model and no downloads.

Choice and tradeoff. Punkt (NLTK) needs a trained model file and pySBD/spaCy add heavy
dependencies and are 10-100x slower; for packing blocks of 512 tokens a sentence boundary
that is occasionally wrong costs little (FULL-SENTENCES only uses boundaries as allowed cut
points; the pair formats get a slightly wrong "sentence"). So: a regex splitter that handles
the frequent traps of news text (abbreviations like "Mr." and "U.S.", initials "J. K.",
decimals "3.14", ellipses, closing quotes/brackets after the stop) and treats every line
break as a boundary (headlines, list items, paragraphs). Known misses: an abbreviation that
really ends a sentence ("... in the U.S. The next") is kept joined; lowercase sentence
starts are not split.

The splitter returns cut offsets that PARTITION the text: piece k is text[cuts[k]:cuts[k+1]],
pieces keep their leading whitespace, and every cut falls between a non-space character and
a whitespace character. The byte-level BPE pre-tokenizer always has a boundary there, so
encoding the pieces separately gives exactly the tokens of encoding the whole document
(tests check this): sentence packing never changes tokenization.
"""
from __future__ import annotations

import re

# Words that end with a period without ending a sentence (compared lowercased, without ".").
ABBREVIATIONS = frozenset("""
mr mrs ms dr prof sr jr st mt ft rev gen col lt sgt capt cmdr adm gov sen rep pres supt
insp det atty hon messrs mme mlle no nos vol vols p pp fig figs ed eds est approx dept
univ assn bros co corp inc ltd llc plc vs v etc al cf ca e.g i.e a.m p.m u.s u.k u.n
u.s.a e.u d.c jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thur
thurs fri sat sun no. op art sec ch para
""".split())

# A candidate end: terminal punctuation, optional closing quotes/brackets, then whitespace.
# One regex so only real candidates reach Python: the next sentence must start with a capital
# letter or digit, possibly after opening quotes/brackets.
_END = re.compile(r"""[.!?…]+["'”’)\]]*(?=\s+["'“‘(\[]*[A-Z0-9À-ÖØ-Þ])""")
_WORD_BEFORE = re.compile(r"""([\w.]+)$""")


def _is_abbreviation(text: str, stop: int) -> bool:
    """True when the '.' at text[stop] ends an abbreviation or an initial, not a sentence."""
    m = _WORD_BEFORE.search(text[max(0, stop - 32):stop])  # a short look-back, not a scan
    if not m:
        return False
    word = m.group(1).lower().strip(".")
    if not word:
        return False
    if word in ABBREVIATIONS:
        return True
    # Single letters ("J. K. Rowling") and dotted acronyms ("U.S.", "a.k.a.").
    return len(word) == 1 and word.isalpha() or bool(re.fullmatch(r"(?:[a-z]\.)+[a-z]", word))


def sentence_cuts(text: str) -> list[int]:
    """Cut offsets [0, c1, ..., len(text)] that partition `text` into sentences."""
    cuts = {0, len(text)}
    for m in _END.finditer(text):
        g = m.group(0)
        if g[0] == "." and len(g.rstrip("\"'”’)]")) == 1 and _is_abbreviation(text, m.start()):
            continue
        cuts.add(m.end())
    nl = text.find("\n")
    while nl >= 0:  # a line break ends a sentence: cut after the line's last non-space char
        c = nl
        while c > 0 and text[c - 1].isspace():
            c -= 1
        if c > 0:
            cuts.add(c)
        nl = text.find("\n", nl + 1)
    # Every candidate already sits between a non-space and a whitespace character; only the
    # trailing whitespace must stay with the last sentence.
    tail = len(text.rstrip())
    return sorted(c for c in cuts if c == 0 or c < tail or c == len(text))

def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, each with its leading whitespace; ''.join(result) == text."""
    cuts = sentence_cuts(text)
    return [text[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]
