"""The official metrics: GLUE (as in the GLUE benchmark / `sklearn` / `scipy`), SQuAD (the
official v1.1 / v2.0 evaluation scripts' normalization, EM and F1), RACE accuracy.

The low-level functions return fractions, like scikit-learn; `task_metrics` returns percent,
the scale of the paper's tables (CoLA's Matthews correlation x 100, as GLUE reports it).
Only numpy is needed.
"""
from __future__ import annotations

import collections
import re
import string

import numpy as np

from evaluation.tasks import MNLI_SPLIT_METRICS, TaskSpec, get_task


# --------------------------------------------------------------------------------------------
# classification / regression
# --------------------------------------------------------------------------------------------

def accuracy(preds, labels) -> float:
    p, y = np.asarray(preds), np.asarray(labels)
    return float((p == y).mean()) if len(y) else 0.0


def f1_binary(preds, labels, positive: int = 1) -> float:
    """F1 of the positive class (sklearn `f1_score`, average='binary'; 0 when undefined)."""
    p, y = np.asarray(preds) == positive, np.asarray(labels) == positive
    tp = float(np.sum(p & y))
    denom = float(np.sum(p) + np.sum(y))
    return 2 * tp / denom if denom else 0.0


def matthews_corr(preds, labels) -> float:
    """Matthews correlation, multiclass form (sklearn `matthews_corrcoef`; 0 when undefined)."""
    p, y = np.asarray(preds), np.asarray(labels)
    classes = np.union1d(p, y)
    c = np.zeros((len(classes), len(classes)), dtype=np.float64)
    np.add.at(c, (np.searchsorted(classes, y), np.searchsorted(classes, p)), 1)
    t, pk = c.sum(axis=1), c.sum(axis=0)       # true / predicted counts per class
    n, correct = c.sum(), np.trace(c)
    cov_yp = correct * n - t @ pk
    cov_pp = n * n - pk @ pk
    cov_yy = n * n - t @ t
    if cov_pp == 0 or cov_yy == 0:
        return 0.0
    return float(cov_yp / np.sqrt(cov_pp * cov_yy))


def pearson(x, y) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    xc, yc = x - x.mean(), y - y.mean()
    denom = np.sqrt((xc @ xc) * (yc @ yc))
    return float(xc @ yc / denom) if denom else 0.0


def _rank(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (scipy.stats.rankdata 'average')."""
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    boundaries = np.flatnonzero(np.r_[True, s[1:] != s[:-1], True])
    ranks = np.empty(len(a), dtype=np.float64)
    for lo, hi in zip(boundaries[:-1], boundaries[1:]):
        ranks[order[lo:hi]] = (lo + 1 + hi) / 2.0
    return ranks


def spearman(x, y) -> float:
    return pearson(_rank(np.asarray(x, dtype=np.float64)), _rank(np.asarray(y, dtype=np.float64)))


# --------------------------------------------------------------------------------------------
# SQuAD (official evaluate-v2.0.py; on answerable questions it equals evaluate-v1.1.py)
# --------------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (official script)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def squad_exact(gold: str, pred: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(pred))


def squad_f1(gold: str, pred: str) -> float:
    gold_toks, pred_toks = normalize_answer(gold).split(), normalize_answer(pred).split()
    if not gold_toks or not pred_toks:     # no-answer: F1 is 1 if both empty, else 0
        return float(gold_toks == pred_toks)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def squad_scores(examples, predictions: dict[str, str]) -> dict[str, float]:
    """Official SQuAD scoring in percent: `exact`, `f1`, `total`, and for 2.0-style data the
    `HasAns_*` / `NoAns_*` breakdown. Each score is the max over the gold answers; a question
    without (non-empty) gold answers has gold "" and is matched by the empty prediction.
    `examples`: SquadExample records (or dicts with id/answers); a question missing from
    `predictions` scores 0, as in the official script."""
    ex_scores, f1_scores, has_ans = {}, {}, {}
    for ex in examples:
        qid = ex["id"] if isinstance(ex, dict) else ex.id
        answers = ex["answers"] if isinstance(ex, dict) else ex.answers
        gold = [a["text"] for a in answers if normalize_answer(a["text"])] or [""]
        has_ans[qid] = gold != [""]
        if qid not in predictions:
            ex_scores[qid] = f1_scores[qid] = 0.0
            continue
        pred = predictions[qid]
        ex_scores[qid] = max(squad_exact(g, pred) for g in gold)
        f1_scores[qid] = max(squad_f1(g, pred) for g in gold)
    n = len(ex_scores)
    out = {"exact": 100.0 * sum(ex_scores.values()) / n if n else 0.0,
           "f1": 100.0 * sum(f1_scores.values()) / n if n else 0.0, "total": n}
    for name, want in (("HasAns", True), ("NoAns", False)):
        ids = [q for q in ex_scores if has_ans[q] == want]
        if ids:                                  # as the official script: when present
            out[f"{name}_exact"] = 100.0 * sum(ex_scores[q] for q in ids) / len(ids)
            out[f"{name}_f1"] = 100.0 * sum(f1_scores[q] for q in ids) / len(ids)
            out[f"{name}_total"] = len(ids)
    return out


# --------------------------------------------------------------------------------------------
# by task, in percent
# --------------------------------------------------------------------------------------------

def task_metrics(task: str | TaskSpec, preds, labels, split: str = "dev",
                 levels=None) -> dict[str, float]:
    """The task's metrics (percent) for one dev split of a GLUE task or RACE.

    MNLI: split "matched" gives `accuracy_m`, "mismatched" `accuracy_mm`. RACE: `levels`
    ("middle"/"high" per example) adds `accuracy_middle` and `accuracy_high`."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    preds, labels = np.asarray(preds), np.asarray(labels)
    if spec.name == "cola":
        return {"mcc": 100 * matthews_corr(preds, labels)}
    if spec.name == "stsb":
        return {"pearson": 100 * pearson(preds, labels), "spearman": 100 * spearman(preds, labels)}
    if spec.name in ("mrpc", "qqp"):
        return {"accuracy": 100 * accuracy(preds, labels), "f1": 100 * f1_binary(preds, labels)}
    if spec.name == "mnli":
        return {MNLI_SPLIT_METRICS[split]: 100 * accuracy(preds, labels)}
    out = {"accuracy": 100 * accuracy(preds, labels)}
    if spec.name == "race" and levels is not None:
        lv = np.asarray(levels)
        for level in ("middle", "high"):
            sel = lv == level
            if sel.any():
                out[f"accuracy_{level}"] = 100 * accuracy(preds[sel], labels[sel])
    return out


__all__ = ["accuracy", "f1_binary", "matthews_corr", "pearson", "spearman", "normalize_answer",
           "squad_exact", "squad_f1", "squad_scores", "task_metrics"]
