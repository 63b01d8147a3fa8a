"""The task registry against the paper (fairseq_recipe.md §2.2 Table 10, §5 Tables 5-8)."""
import pytest

from evaluation.tasks import GLUE_TASKS, TASKS, get_task, hyperparameter_grid, parse_tasks


def test_all_tasks_present_with_types_and_metrics():
    assert set(GLUE_TASKS) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"}
    assert {"squad1", "squad2", "race"} <= set(TASKS)
    assert get_task("MNLI").dev_files == {"matched": "dev_matched.tsv",
                                          "mismatched": "dev_mismatched.tsv"}
    assert get_task("cola").metrics == ("mcc",) and get_task("stsb").metrics == ("pearson", "spearman")
    assert get_task("mrpc").metrics == get_task("qqp").metrics == ("accuracy", "f1")
    assert get_task("squad2").metrics == ("exact", "f1", "HasAns_exact", "HasAns_f1",
                                          "NoAns_exact", "NoAns_f1")
    assert get_task("squad1").metrics == ("exact", "f1")
    assert get_task("mnli").split_of("accuracy_mm") == "mismatched"
    assert get_task("mnli").split_of("accuracy_m") == "matched"
    assert get_task("race").split_of("accuracy_high") == get_task("rte").split_of("accuracy") == "dev"
    assert get_task("race").metrics == ("accuracy", "accuracy_middle", "accuracy_high")
    assert get_task("stsb").num_labels == 1 and get_task("mnli").num_labels == 3
    for spec in TASKS.values():
        assert spec.primary_metric in spec.metrics


def test_reference_numbers_from_the_paper():
    base = {"mnli": 87.6, "qnli": 92.8, "qqp": 91.9, "rte": 78.7, "sst2": 94.8, "mrpc": 90.2,
            "cola": 63.6, "stsb": 91.2}                                    # Table 8
    large = {"mnli": 90.2, "qnli": 94.7, "qqp": 92.2, "rte": 86.6, "sst2": 96.4, "mrpc": 90.9,
             "cola": 68.0, "stsb": 92.4, "wnli": 91.3}                     # Table 5 dev
    for name, v in base.items():
        spec = get_task(name)
        assert spec.reference(spec.primary_metric).base == v
    for name, v in large.items():
        spec = get_task(name)
        assert spec.reference(spec.primary_metric).large == v
    assert get_task("mnli").reference("accuracy_mm").large == 90.2
    assert get_task("mnli").reference("accuracy_mm").base is None
    assert get_task("wnli").reference("accuracy").base is None
    assert (get_task("squad1").reference("exact").large, get_task("squad1").reference("f1").large) == (88.9, 94.6)
    assert (get_task("squad2").reference("exact").large, get_task("squad2").reference("f1").large) == (86.5, 89.4)
    assert get_task("squad2").reference("f1").base is None
    race = get_task("race")
    assert [race.reference(m).large for m in race.metrics] == [83.2, 86.5, 81.3]
    assert race.reference_split == "test"


def test_table10_grid():
    grid = hyperparameter_grid("rte")
    assert len(grid) == 3 * 2 * 5
    assert {(g["lr"], g["batch_size"]) for g in grid} == {(lr, b) for lr in (1e-5, 2e-5, 3e-5)
                                                          for b in (16, 32)}
    assert {g["epochs"] for g in grid} == {10} and {g["weight_decay"] for g in grid} == {0.1}
    assert {g["warmup_ratio"] for g in grid} == {0.06}
    sq = hyperparameter_grid("squad2", seeds=[1, 2])
    assert [(g["lr"], g["batch_size"], g["epochs"], g["weight_decay"]) for g in sq] == [(1.5e-5, 48, 2, 0.01)] * 2
    race = hyperparameter_grid("race")
    assert {(g["lr"], g["batch_size"], g["epochs"], g["weight_decay"]) for g in race} == {(1e-5, 16, 4, 0.1)}


def test_parse_tasks():
    assert [t.name for t in parse_tasks("mrpc, squad2,mrpc")] == ["mrpc", "squad2"]
    assert len(parse_tasks("glue")) == 9 and len(parse_tasks("all")) == 12
    assert get_task("SST-2").name == "sst2" and get_task("squad").name == "squad1"
    with pytest.raises(KeyError, match="unknown task"):
        get_task("imdb")
