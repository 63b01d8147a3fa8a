"""SQuAD predictions from window logits: the best span over all of an example's doc-stride
windows, mapped back to the context's characters through the token offsets.

A candidate (s, e) lies in the window's context part, s <= e, at most `max_answer_tokens`
long; its score is start[s] + end[e] (BERT's rule; the top `n_best` starts and ends of each
window are paired). SQuAD 2.0: the answerability classifier's probability, the largest over the
example's windows (a window "has the answer" in training iff the answer lies inside it), below
`null_threshold` gives the empty answer.
"""
from __future__ import annotations

import numpy as np


def best_span(start: np.ndarray, end: np.ndarray, first: int, last: int,
              n_best: int = 20, max_answer_tokens: int = 30) -> tuple[float, int, int] | None:
    """(score, s, e) of the best span with first <= s <= e <= last, or None."""
    if last < first:
        return None
    s_cand = first + np.argsort(-start[first:last + 1], kind="stable")[:n_best]
    e_cand = first + np.argsort(-end[first:last + 1], kind="stable")[:n_best]
    best = None
    for s in s_cand:
        for e in e_cand:
            if e < s or e - s + 1 > max_answer_tokens:
                continue
            score = float(start[s] + end[e])
            if best is None or score > best[0]:
                best = (score, int(s), int(e))
    return best


def answerable_probs(examples, windows, answerable_prob) -> dict[str, float]:
    """{question id: probability that it has an answer}: the largest over the example's
    windows (0 for an example without a window)."""
    best = [0.0] * len(examples)
    for w, p in zip(windows, answerable_prob):
        best[w.example_index] = max(best[w.example_index], float(p))
    return {ex.id: best[i] for i, ex in enumerate(examples)}


def decode_predictions(examples, windows, start_logits, end_logits, answerable_prob=None,
                       null_threshold: float = 0.5, n_best: int = 20,
                       max_answer_tokens: int = 30) -> dict[str, str]:
    """{question id: answer text}. `start_logits`/`end_logits`: one 1-D array per window
    (its real tokens); `answerable_prob`: one float per window, or None for SQuAD 1.1."""
    best: dict[int, tuple[float, str]] = {}
    for w_i, w in enumerate(windows):
        first = w.context_start
        last = w.context_start + len(w.offsets) - 1
        found = best_span(np.asarray(start_logits[w_i]), np.asarray(end_logits[w_i]), first, last,
                          n_best, max_answer_tokens)
        if found is None:
            continue
        score, s, e = found
        if w.example_index not in best or score > best[w.example_index][0]:
            ctx = examples[w.example_index].context
            a, b = w.offsets[s - first][0], w.offsets[e - first][1]
            best[w.example_index] = (score, ctx[a:b].strip())
    p_answerable = (answerable_probs(examples, windows, answerable_prob)
                    if answerable_prob is not None else None)
    preds = {}
    for i, ex in enumerate(examples):
        text = best[i][1] if i in best else ""
        if p_answerable is not None and p_answerable[ex.id] < null_threshold:
            text = ""
        preds[ex.id] = text
    return preds


__all__ = ["best_span", "decode_predictions", "answerable_probs"]
