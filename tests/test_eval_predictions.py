"""The saved predictions are what the table reports: scored by implementations that share no
code with evaluation/metrics.py (the official SQuAD 2.0 script's logic, written out here, and
scikit-learn for GLUE), each seed's prediction files give its score, and the median over the
seeds the table row's value. RTE is the real GLUE file where the workspace has it (else one in
its format); SQuAD 2.0 a generated stand-in with answerable and unanswerable questions."""
import collections
import json
import re
import statistics
import string
from pathlib import Path

import pytest

from evaluation.aggregate import aggregate
from evaluation.finetune import run_job
from evaluation.results import append_results, read_results
from evaluation.synthetic import make_tiny_checkpoint, write_synthetic_squad
from tests.fixtures_eval import dev_rows, rte_data

pytestmark = pytest.mark.usefixtures("one_thread")
sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", max_positions=128)


def table_after_jobs(root: Path, checkpoint, task: str, data, seeds, **settings) -> list[dict]:
    """Run one job per seed, saving predictions, and append their rows: the table's rows."""
    jobs = [run_job(checkpoint, task, data, seed=seed, predictions_dir=root / f"pred-{seed}",
                    **settings) for seed in seeds]
    assert not [j["error"] for j in jobs if j["error"]]
    append_results(root, aggregate(jobs), model="tiny")
    return [r for r in read_results(root).to_pylist() if r["task"] == task]


# ------------------------------------------------------------------ SQuAD 2.0, official logic
# From the official evaluate-v2.0.py (SQuAD 2.0's evaluation script), with its default
# --na-prob-thresh of 1.0.

def official_normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(re.compile(r"\b(a|an|the)\b", re.UNICODE), " ", s)
    return " ".join(s.split())


def official_f1(gold, pred):
    gold_toks = official_normalize(gold).split() if gold else []
    pred_toks = official_normalize(pred).split() if pred else []
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision, recall = num_same / len(pred_toks), num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def official_squad2(dataset_file: Path, pred_file: Path, na_prob_file: Path) -> dict:
    dataset = json.loads(dataset_file.read_text())["data"]
    preds, na_probs = json.loads(pred_file.read_text()), json.loads(na_prob_file.read_text())
    exact, f1, has_ans = {}, {}, {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                qid = qa["id"]
                has_ans[qid] = bool(qa["answers"])
                gold = [a["text"] for a in qa["answers"] if official_normalize(a["text"])] or [""]
                exact[qid] = max(int(official_normalize(a) == official_normalize(preds[qid]))
                                 for a in gold)
                f1[qid] = max(official_f1(a, preds[qid]) for a in gold)
    for scores in (exact, f1):                           # apply_no_ans_threshold, 1.0
        for qid in scores:
            if na_probs[qid] > 1.0:
                scores[qid] = float(not has_ans[qid])
    out = {}
    for prefix, qids in (("", list(exact)), ("HasAns_", [q for q in exact if has_ans[q]]),
                         ("NoAns_", [q for q in exact if not has_ans[q]])):
        if qids:
            out[prefix + "exact"] = 100.0 * sum(exact[q] for q in qids) / len(qids)
            out[prefix + "f1"] = 100.0 * sum(f1[q] for q in qids) / len(qids)
    return out


def test_squad2_predictions_scored_officially_give_the_table(checkpoint, tmp_path):
    data = tmp_path / "data"
    write_synthetic_squad(data, n_train=100, n_dev=45, seed=1, version=2)
    rows = table_after_jobs(tmp_path / "run", checkpoint, "squad2", data, seeds=(1, 2),
                            lr=1e-3, batch_size=16, epochs=2, max_len=128, doc_stride=32)
    by_metric = {r["metric"]: r for r in rows}
    assert set(by_metric) == {"exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact",
                              "NoAns_f1"}
    dirs = json.loads(by_metric["f1"]["predictions"])
    official = {seed: official_squad2(data / "SQuAD" / "dev-v2.0.json",
                                      Path(d) / "dev-predictions.json",
                                      Path(d) / "dev-na-probs.json") for seed, d in dirs.items()}
    assert sorted(dirs) == ["1", "2"]
    for metric, row in by_metric.items():
        median = statistics.median(scores[metric] for scores in official.values())
        assert row["value"] == pytest.approx(median, abs=1e-9), metric
        assert row["n_dev"] == 45
    probs = json.loads((Path(dirs["1"]) / "dev-na-probs.json").read_text())
    assert len(probs) == 45 and all(0.0 <= p <= 1.0 for p in probs.values())


def test_glue_predictions_scored_by_sklearn_give_the_table(checkpoint, tmp_path):
    data = rte_data(tmp_path / "glue")
    rows = table_after_jobs(tmp_path / "run", checkpoint, "rte", data, seeds=(1, 2, 3),
                            lr=1e-3, batch_size=16, epochs=1, limit=48, max_len=128)
    [row] = rows
    assert (row["n_train"], row["n_dev"], row["train_limit"]) == (48, dev_rows(data), 48)
    accuracies = []
    for d in json.loads(row["predictions"]).values():
        records = [json.loads(line) for line in
                   (Path(d) / "dev-predictions.jsonl").read_text().splitlines()]
        assert len(records) == row["n_dev"]
        assert {r["label"] for r in records} == {"entailment", "not_entailment"}
        accuracies.append(100 * sklearn_metrics.accuracy_score(
            [r["label"] for r in records], [r["prediction"] for r in records]))
    assert row["value"] == pytest.approx(statistics.median(accuracies), abs=1e-9)
