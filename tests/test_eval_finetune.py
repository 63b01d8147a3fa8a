"""Proof that the harness learns (tiny random-init model, CPU, seconds), determinism, every head
on the real-format fixtures, any HF RoBERTa directory as a starting point, failures as results."""
import json
import re
import shutil

import pytest
import torch

from evaluation.finetune import finetune_and_evaluate, linear_schedule, run_job
from evaluation.readers import read_task
from evaluation.synthetic import make_tiny_checkpoint, write_synthetic_squad, write_synthetic_sst2
from tests.fixtures_eval import write_glue_fixture, write_race_fixture, write_squad_fixture

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ck"), seed=0)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    d = tmp_path_factory.mktemp("synthetic")
    write_synthetic_sst2(d, n_train=300, n_dev=100, seed=0)
    write_synthetic_squad(d, n_train=200, n_dev=50, seed=0, version=1)
    return d


def test_tiny_model_learns_synthetic_glue_task(checkpoint, synthetic):
    r = finetune_and_evaluate(checkpoint, "sst2", synthetic, lr=1e-3, batch_size=8, epochs=4,
                              seed=1)
    accs = [h["accuracy"] for h in r["history"]]
    assert r["error"] is None and r["n_train"] == 300 and r["n_dev"] == {"dev": 100}
    assert r["best"]["accuracy"] == max(accs) >= 90.0, accs          # chance is ~50
    assert r["history"][-1]["train_loss"] < 0.3
    assert r["steps"] == 4 * 38 and r["best_epoch"] == accs.index(max(accs)) + 1


def test_tiny_model_learns_synthetic_squad_task(checkpoint, synthetic):
    r = finetune_and_evaluate(checkpoint, "squad1", synthetic, lr=1e-3, batch_size=16,
                              epochs=3, seed=1)
    assert r["best"]["f1"] >= 60.0 and r["best"]["exact"] > 0, r["history"]
    assert r["primary_metric"] == "f1" and r["doc_stride"] == 128


def test_deterministic_given_seed(checkpoint, synthetic):
    kw = dict(lr=1e-3, batch_size=8, epochs=1, limit=64)
    a = finetune_and_evaluate(checkpoint, "sst2", synthetic, seed=3, **kw)
    b = finetune_and_evaluate(checkpoint, "sst2", synthetic, seed=3, **kw)
    c = finetune_and_evaluate(checkpoint, "sst2", synthetic, seed=4, **kw)
    assert a["history"] == b["history"]
    assert a["history"][0]["train_loss"] != c["history"][0]["train_loss"]


@pytest.mark.parametrize("task", ["cola", "mrpc", "stsb", "mnli", "squad2", "race"])
def test_every_head_runs_on_real_format_fixtures(checkpoint, tmp_path, task):
    if task == "squad2":
        write_squad_fixture(tmp_path, 2)
    elif task == "race":
        write_race_fixture(tmp_path)
    else:
        write_glue_fixture(tmp_path, task)
    seen = []
    r = finetune_and_evaluate(checkpoint, task, tmp_path, lr=1e-4, batch_size=2, epochs=2,
                              seed=1, max_len=64, doc_stride=16,
                              progress=lambda stage, done, total: seen.append(stage))
    from evaluation.tasks import get_task
    spec = get_task(task)
    assert set(spec.metrics) <= set(r["history"][0]) and set(r["best"]) == set(spec.metrics)
    assert all(isinstance(v, float) for v in r["best"].values())
    assert seen.count("train") == r["steps"] and any(s.startswith("eval:") for s in seen)


def test_defaults_come_from_table_10(checkpoint, tmp_path):
    write_glue_fixture(tmp_path, "rte")
    r = finetune_and_evaluate(checkpoint, "rte", tmp_path, epochs=1)
    assert (r["lr"], r["batch_size"], r["weight_decay"], r["warmup_ratio"]) == (1e-5, 16, 0.1, 0.06)
    assert linear_schedule(0, 100, 6) == pytest.approx(1 / 6)
    assert linear_schedule(5, 100, 6) == 1.0 and linear_schedule(99, 100, 6) == 0.0


def test_starts_from_any_hf_roberta_directory(checkpoint, tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.RobertaConfig(vocab_size=600, hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64,
                                     max_position_embeddings=514, type_vocab_size=1)
    hf_dir = tmp_path / "hf"
    torch.manual_seed(0)
    transformers.RobertaForMaskedLM(cfg).save_pretrained(hf_dir)
    for name in ("vocab.json", "merges.txt"):                 # GPT-2 style files only
        shutil.copy(checkpoint / name, hf_dir / name)
    write_glue_fixture(tmp_path, "mrpc")
    r = finetune_and_evaluate(hf_dir, "mrpc", tmp_path, lr=1e-4, batch_size=2, epochs=1)
    assert r["error"] is None and "f1" in r["best"]


def test_failures_become_results(checkpoint, tmp_path):
    r = run_job(checkpoint, "qnli", tmp_path, lr=2e-5, batch_size=16, seed=2)
    assert r["best"] == {} and r["seed"] == 2 and r["lr"] == 2e-5
    assert r["error"].startswith("DataFormatError:") and "QNLI/train.tsv" in r["error"]


def _empty_glue_dev(d):
    write_glue_fixture(d, "mrpc")
    dev = d / "MRPC" / "dev.tsv"
    dev.write_text(dev.read_text().splitlines()[0] + "\n")       # the header only
    return dev


def _empty_race_dev(d):
    write_race_fixture(d, splits=("train", "dev"))
    for f in (d / "RACE" / "dev").rglob("*.txt"):                # passages without questions
        f.write_text(json.dumps({"article": "x", "questions": [], "options": [], "answers": []}))
    return d / "RACE" / "dev"


def _empty_squad_dev(d):
    write_squad_fixture(d, 2)
    dev = d / "SQuAD" / "dev-v2.0.json"
    dev.write_text('{"version": "v2.0", "data": []}')
    return dev


@pytest.mark.parametrize("task, make_empty", [("mrpc", _empty_glue_dev),
                                              ("race", _empty_race_dev),
                                              ("squad2", _empty_squad_dev)])
def test_an_empty_split_is_an_error_before_training(checkpoint, tmp_path, task, make_empty):
    path = make_empty(tmp_path)
    seen = []
    r = run_job(checkpoint, task, tmp_path, lr=1e-4, batch_size=2, epochs=1, max_len=64,
                progress=lambda stage, done, total: seen.append(stage))
    assert r["error"] == f"ValueError: {task}: the dev split has no examples ({path})"
    assert seen == []                                            # nothing was trained


def test_diverged_training_is_an_error(checkpoint, tmp_path):
    write_glue_fixture(tmp_path, "mrpc")
    r = run_job(checkpoint, "mrpc", tmp_path, lr=1e6, batch_size=2, epochs=3, seed=1)
    assert re.match(r"FloatingPointError: mrpc: training loss is (nan|inf) at epoch \d, update "
                    r"\d+ \(lr 1000000.0\): training diverged", r["error"]), r["error"]
    assert r["best"] == {}


def test_a_non_finite_dev_score_is_an_error(checkpoint, tmp_path):
    write_glue_fixture(tmp_path, "stsb")
    data = read_task("stsb", tmp_path)
    data["dev"][0].label = float("nan")             # `examples` bypass the readers' checks
    r = run_job(checkpoint, "stsb", None, lr=1e-4, batch_size=2, epochs=1, examples=data)
    assert r["error"].startswith("FloatingPointError: stsb: non-finite dev scores at epoch 1")
    assert "'pearson': nan" in r["error"] and r["best"] == {}


def test_limit_cuts_training_examples_only_and_dev_limit_is_recorded(checkpoint, synthetic):
    r = finetune_and_evaluate(checkpoint, "sst2", synthetic, lr=1e-3, batch_size=8, epochs=1,
                              limit=40)
    assert (r["n_train"], r["n_dev"], r["limit"], r["dev_limit"]) == (40, {"dev": 100}, 40, None)
    r = finetune_and_evaluate(checkpoint, "sst2", synthetic, lr=1e-3, batch_size=8, epochs=1,
                              limit=40, dev_limit=30)
    assert (r["n_train"], r["n_dev"], r["dev_limit"]) == (40, {"dev": 30}, 30)


def test_the_best_epochs_predictions_are_saved(checkpoint, synthetic, tmp_path):
    r = finetune_and_evaluate(checkpoint, "sst2", synthetic, lr=1e-3, batch_size=8, epochs=3,
                              seed=2, limit=120, predictions_dir=tmp_path / "pred")
    assert r["predictions"] == {"dir": str(tmp_path / "pred"), "files": ["dev-predictions.jsonl"]}
    lines = (tmp_path / "pred" / "dev-predictions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 100 and records[0]["id"] == "dev.tsv:2"
    assert {r_["label"] for r_ in records} <= {"0", "1"}
    correct = sum(x["prediction"] == x["label"] for x in records)
    assert 100.0 * correct / len(records) == r["best"]["accuracy"]   # the best epoch's, not the last's


def test_a_stop_request_ends_a_job_between_updates(checkpoint, synthetic, tmp_path):
    from evaluation.stopping import STOP, JobStopped

    steps = []

    def stop_after_three(stage, done, total):
        steps.append(done)
        if done == 3:
            STOP.set()             # as the CLI's signal handler does, from another thread

    try:
        with pytest.raises(JobStopped, match="stopped on request during sst2 update 4/"):
            run_job(checkpoint, "sst2", synthetic, lr=1e-3, batch_size=8, epochs=2, limit=80,
                    progress=stop_after_three, predictions_dir=tmp_path / "pred")
    finally:
        STOP.clear()
    assert steps == [1, 2, 3] and not (tmp_path / "pred").exists()    # nothing written
