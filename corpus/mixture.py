"""Mixture weights per source (`corpus_name`): how many times a document is used.

`--mix wikipedia=2,cc-news=1` up-samples Wikipedia 2x; sources not named keep weight 1.
A weight w gives every document floor(w) copies, plus one more for the documents whose
hash (doc_id, salted with the seed) falls below the fractional part: deterministic, the
same on every run and worker count, and in expectation exactly w copies. w=0 drops a
source; w=0.5 keeps a fixed half of it.

Used by train-tokenizer (which texts the BPE trainer sees) and shard-corpus (which
documents are packed, train split only: validation keeps the corpus's natural mix so
losses stay comparable across mixtures).
"""
from __future__ import annotations

import math
import warnings

from corpus.sampling import unit_hash

DEFAULT_SOURCE = "cc-news"  # documents of corpora built before the corpus_name column


def parse_mix(spec: str | dict | None) -> dict[str, float] | None:
    """'wikipedia=2,cc-news=1' (or a dict) -> {'wikipedia': 2.0, 'cc-news': 1.0}; None/'' -> None."""
    if not spec:
        return None
    items = spec.items() if isinstance(spec, dict) else (
        part.split("=", 1) if "=" in part else (part, None) for part in spec.split(",") if part.strip())
    out: dict[str, float] = {}
    for name, weight in items:
        name = str(name).strip()
        try:
            w = float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"bad mixture weight for {name!r}: expected NAME=WEIGHT, "
                             f"e.g. wikipedia=2,cc-news=1") from None
        if not name or not math.isfinite(w) or w < 0:
            raise ValueError(f"bad mixture weight {name!r}={weight!r}: a non-negative number")
        out[name] = w
    return out or None


def copies(doc_id: str, source: str | None, mix: dict[str, float] | None, seed: int = 0) -> int:
    """How many times this document is used under `mix` (1 without a mixture)."""
    if not mix:
        return 1
    w = mix.get(source or DEFAULT_SOURCE, 1.0)
    whole = int(math.floor(w))
    frac = w - whole
    return whole + (1 if frac > 0 and unit_hash(str(doc_id), f"mix-{seed}") < frac else 0)


def warn_unseen_sources(mix: dict[str, float] | None, seen, stage: str) -> None:
    """A weight for a source no document carries is most likely a typo (`--mix wikipedia=2`
    on a corpus whose documents say `wiki`): it would change nothing, silently."""
    unseen = sorted(set(mix or {}) - set(seen))
    if unseen:
        warnings.warn(f"{stage}: --mix names {', '.join(map(repr, unseen))}, but no document "
                      f"came from such a source (sources seen: {', '.join(sorted(seen)) or 'none'}); "
                      "check the names against the corpus_name column", stacklevel=3)
