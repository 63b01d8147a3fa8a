"""Our metrics against scikit-learn and scipy; the SQuAD scorer on hand-checked cases."""
import numpy as np
import pytest

from evaluation.metrics import (accuracy, f1_binary, matthews_corr, normalize_answer, pearson,
                                spearman, squad_exact, squad_f1, squad_scores, task_metrics)
from evaluation.readers import SquadExample

sklearn_metrics = pytest.importorskip("sklearn.metrics")
stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    p = np.where(rng.random(200) < 0.7, y, 1 - y)
    assert accuracy(p, y) == pytest.approx(sklearn_metrics.accuracy_score(y, p))
    assert f1_binary(p, y) == pytest.approx(sklearn_metrics.f1_score(y, p))
    assert matthews_corr(p, y) == pytest.approx(sklearn_metrics.matthews_corrcoef(y, p))
    y3, p3 = rng.integers(0, 3, 150), rng.integers(0, 3, 150)        # multiclass MCC too
    assert matthews_corr(p3, y3) == pytest.approx(sklearn_metrics.matthews_corrcoef(y3, p3))


def test_degenerate_cases_match_sklearn():
    y = np.array([0, 1, 1, 0])
    const = np.zeros(4, dtype=int)
    assert matthews_corr(const, y) == sklearn_metrics.matthews_corrcoef(y, const) == 0.0
    assert f1_binary(const, const) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy(seed):
    rng = np.random.default_rng(seed)
    x = np.round(rng.random(100) * 5, 1)                               # ties, like STS-B
    y = np.round(x + rng.normal(0, 1, 100), 1)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])


def test_task_metrics_in_percent():
    y, p = [0, 1, 1, 0], [0, 1, 0, 0]
    assert task_metrics("mrpc", p, y) == pytest.approx({"accuracy": 75.0, "f1": 100 * 2 / 3})
    assert task_metrics("mnli", p, y, split="mismatched") == {"accuracy_mm": 75.0}
    assert set(task_metrics("stsb", [1.0, 2, 3], [1.5, 2, 2.5])) == {"pearson", "spearman"}
    assert task_metrics("cola", p, y)["mcc"] == pytest.approx(100 * sklearn_metrics.matthews_corrcoef(y, p))
    race = task_metrics("race", [0, 1, 2, 3], [0, 1, 0, 0], levels=["middle", "middle", "high", "high"])
    assert race == {"accuracy": 50.0, "accuracy_middle": 100.0, "accuracy_high": 0.0}


def test_squad_normalization_and_scores_by_hand():
    assert normalize_answer("The  Golden, Statue!") == "golden statue"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("theater") == "theater"                   # article only as a word
    assert squad_exact("the Virgin Mary", "Virgin Mary.") == 1
    # pred "golden statue of mary" vs gold "a golden statue of the virgin mary":
    # common {golden, statue, of, mary} = 4; P = 4/4, R = 4/5 -> F1 = 8/9
    assert squad_f1("a golden statue of the Virgin Mary", "golden statue of Mary") == pytest.approx(8 / 9)
    assert squad_f1("Denver Broncos", "Carolina Panthers") == 0.0
    assert squad_f1("", "") == 1.0 and squad_f1("", "something") == 0.0


def test_squad_scores_max_over_gold_and_no_answer():
    exs = [SquadExample("a", "q", "c", [{"text": "Catholic", "answer_start": 0},
                                        {"text": "a Catholic character", "answer_start": 0}]),
           SquadExample("b", "q", "c", [{"text": "1889", "answer_start": 0}]),
           SquadExample("c", "q", "c", [], is_impossible=True),
           SquadExample("d", "q", "c", [], is_impossible=True)]
    preds = {"a": "Catholic character", "b": "in 1889", "c": "", "d": "gold"}
    s = squad_scores(exs, preds)
    # a: gold 2 normalises to "catholic character" ("a" is an article): EM 1, F1 1 (max).
    # b: EM 0, F1 = 2*(1/2*1)/(1/2+1) = 2/3; c: empty matches no-answer: 1/1; d: 0/0.
    assert s["exact"] == pytest.approx(100 * (1 + 0 + 1 + 0) / 4)
    assert s["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4)
    assert s["HasAns_total"] == 2 and s["NoAns_total"] == 2
    assert s["NoAns_exact"] == 50.0 and s["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert squad_scores(exs[:2], {})["f1"] == 0.0                    # missing prediction = 0
