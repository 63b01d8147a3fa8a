"""Optional hub loading: the hub's on-disk format (`save_to_disk`) -> our records, labels mapped
by name. Skipped where the `hub` extra (`datasets`) is not installed."""
import importlib.util

import pytest

from evaluation.hub import hub_split, load_from_hub
from evaluation.tasks import get_task


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="datasets installed")
def test_clear_error_without_the_extra(tmp_path):
    with pytest.raises(ImportError, match=r"roberta-pipeline\[hub\]"):
        load_from_hub("rte", "train", path=tmp_path)


def test_hub_split_names():
    assert hub_split(get_task("mnli"), "mismatched") == "validation_mismatched"
    assert hub_split(get_task("rte"), "dev") == "validation"


def test_saved_hub_datasets_convert(tmp_path):
    datasets = pytest.importorskip("datasets")
    mnli = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict(
            {"premise": ["a", "b"], "hypothesis": ["c", "d"], "label": [0, 2], "idx": [0, 1]},
            features=datasets.Features({"premise": datasets.Value("string"),
                                        "hypothesis": datasets.Value("string"),
                                        "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
                                        "idx": datasets.Value("int32")}))})
    mnli.save_to_disk(tmp_path / "mnli")
    ex = load_from_hub("mnli", "train", path=tmp_path / "mnli")
    assert [e.label for e in ex] == [1, 0]          # entailment, contradiction in GLUE order
    squad = datasets.DatasetDict({"validation": datasets.Dataset.from_dict(
        {"id": ["q1", "q2"], "title": ["t", "t"], "context": ["abc def", "abc def"],
         "question": ["?", "?"],
         "answers": [{"text": ["def"], "answer_start": [4]}, {"text": [], "answer_start": []}]})})
    squad.save_to_disk(tmp_path / "squad")
    ex = load_from_hub("squad2", "dev", path=tmp_path / "squad")
    assert ex[0].answers == [{"text": "def", "answer_start": 4}] and ex[1].is_impossible
    race = datasets.DatasetDict({"validation": datasets.Dataset.from_dict(
        {"example_id": ["high1.txt"], "article": ["x"], "answer": ["C"], "question": ["q"],
         "options": [["a", "b", "c", "d"]]})})
    race.save_to_disk(tmp_path / "race")
    (r,) = load_from_hub("race", "dev", path=tmp_path / "race")
    assert (r.label, r.level) == (2, "high")
