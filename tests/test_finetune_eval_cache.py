"""The finetune-eval job cache key follows the task's data files, not only the checkpoint and
the hyperparameters: fixed data is finetuned on again."""
from evaluation.job_cache import data_fingerprint, job_key
from tests.fixtures_eval import write_glue_fixture, write_race_fixture


def test_data_fingerprint_follows_every_data_file(tmp_path):
    write_glue_fixture(tmp_path, "stsb")
    write_race_fixture(tmp_path, splits=("train", "dev"))
    stsb, race = data_fingerprint("stsb", tmp_path), data_fingerprint("race", tmp_path)
    assert data_fingerprint("stsb", tmp_path) == stsb and stsb != race

    train = tmp_path / "STS-B" / "train.tsv"
    train.write_text(train.read_text().replace("\t3.750\n", "\t3.75\n"))   # a fixed score
    assert data_fingerprint("stsb", tmp_path) != stsb
    passage = tmp_path / "RACE" / "dev" / "high" / "2.txt"                 # inside a folder
    passage.write_text(passage.read_text() + "\n")
    assert data_fingerprint("race", tmp_path) != race

    job = {"task": "stsb", "lr": 1e-5, "batch_size": 16, "seed": 1}
    assert job_key("ck", stsb, job) != job_key("ck", data_fingerprint("stsb", tmp_path), job)
    assert data_fingerprint("qnli", tmp_path)      # missing files: the job reports them


def test_the_fingerprint_is_of_the_content_not_the_place(tmp_path):
    """The same files copied elsewhere, or touched, are the same data; one changed byte is not."""
    import os
    import shutil

    a = tmp_path / "a"
    write_glue_fixture(a, "rte")
    shutil.copytree(a, tmp_path / "b")                 # new mtimes, another directory
    assert data_fingerprint("rte", tmp_path / "b") == data_fingerprint("rte", a)
    assert data_fingerprint("rte", tmp_path / "a" / ".." / "a") == data_fingerprint("rte", a)
    os.utime(a / "RTE" / "dev.tsv", (1, 1))
    assert data_fingerprint("rte", a) == data_fingerprint("rte", tmp_path / "b")
    dev = tmp_path / "b" / "RTE" / "dev.tsv"
    dev.write_bytes(dev.read_bytes().replace(b"entailment", b"Entailment", 1))
    assert data_fingerprint("rte", tmp_path / "b") != data_fingerprint("rte", a)
