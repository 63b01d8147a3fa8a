"""Readers on fixtures in each real format, and malformed/missing files: the error names the
file, the line and the field."""
import json

import pytest

from evaluation.readers import (DataFormatError, read_glue_tsv, read_race_dir, read_split,
                                read_squad_json, read_task, task_files)
from evaluation.tasks import GLUE_TASKS, TASKS, get_task
from tests.fixtures_eval import (GLUE_DIRS, real_glue_dir, squad_doc, write_all_glue,
                                 write_race_fixture, write_squad_fixture)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    write_all_glue(d)
    write_squad_fixture(d, 1)
    write_squad_fixture(d, 2)
    write_race_fixture(d)
    return d


@pytest.mark.parametrize("task", GLUE_TASKS)
def test_glue_reader_every_task(data_dir, task):
    spec = get_task(task)
    splits = read_task(task, data_dir)
    assert set(splits) == {"train", *spec.dev_files}
    assert len(splits["train"]) == 4 and all(len(v) == 3 for k, v in splits.items() if k != "train")
    ex = splits["train"][0]
    assert ex.text_a.strip() and (ex.text_b is None) == (spec.type != "pair_classification"
                                                         and spec.name != "stsb")
    for e in splits["train"]:
        if spec.name == "stsb":
            assert isinstance(e.label, float) and 0 <= e.label <= 5
        else:
            assert e.label in range(spec.num_labels)


def test_glue_column_layouts(data_dir):
    cola = read_glue_tsv(data_dir / "CoLA" / "train.tsv", "cola")          # no header
    assert cola[0].text_a.startswith("Our friends won't") and cola[0].label == 0
    mrpc = read_glue_tsv(data_dir / "MRPC" / "dev.tsv", "mrpc")
    assert (mrpc[0].text_a, mrpc[0].text_b) == ("A man is playing a guitar.",
                                                "A person plays an instrument.")
    mnli = read_split("mnli", data_dir, "mismatched")                       # 16-column dev file
    assert [e.label for e in mnli] == [1, 0, 2]   # entailment, contradiction, neutral
    qqp = read_glue_tsv(data_dir / "QQP" / "train.tsv", "qqp")
    assert qqp[3].text_a == 'He said "no" twice.?'                          # bare quotes kept
    assert read_glue_tsv(data_dir / "STS-B" / "train.tsv", "stsb")[1].label == 3.75


def test_squad_and_race_readers(data_dir):
    v1 = read_split("squad1", data_dir, "dev")
    assert [e.id for e in v1] == ["q1", "q2"] and len(v1[1].answers) == 2
    v2 = read_split("squad2", data_dir, "train")
    assert [e.is_impossible for e in v2] == [False, False, True] and v2[2].answers == []
    race = read_split("race", data_dir, "dev")
    assert len(race) == 8 and {e.level for e in race} == {"middle", "high"}
    assert race[0].label == 1 and race[1].label == 3 and len(race[0].options) == 4


def _err(excinfo):
    return excinfo.value, str(excinfo.value)


def test_glue_malformed(tmp_path):
    p = tmp_path / "train.tsv"
    p.write_text("gj04\t1\t\tFine sentence.\ngj04\t0\t*\n")               # line 2: 3 columns
    with pytest.raises(DataFormatError) as ei:
        read_glue_tsv(p, "cola")
    e, msg = _err(ei)
    assert e.line == 2 and e.field == "3" and str(p) in msg and ":2:" in msg

    p.write_text("sentence\tlabel\ngood film\t1\nbad film\tpositive\n")
    with pytest.raises(DataFormatError) as ei:
        read_glue_tsv(p, "sst2")
    assert (ei.value.line, ei.value.field) == (3, "label") and "'positive'" in str(ei.value)

    p.write_text("Quality\t#1 ID\t#2 ID\t#1 String\n1\t1\t2\ta\n")     # a column missing
    with pytest.raises(DataFormatError) as ei:
        read_glue_tsv(p, "mrpc")
    assert (ei.value.line, ei.value.field) == (1, "#2 String")

    p.write_text("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
                 "sentence2\tscore\n0\tx\tx\tx\tx\tx\tx\ta\tb\tfive\n")
    with pytest.raises(DataFormatError) as ei:
        read_glue_tsv(p, "stsb")
    assert (ei.value.line, ei.value.field) == (2, "score")

    p.write_bytes(b"sentence\tlabel\nok\t1\n\xff\xfe bad\t0\n")
    with pytest.raises(DataFormatError) as ei:
        read_glue_tsv(p, "sst2")
    assert ei.value.line == 3 and "UTF-8" in str(ei.value)


def test_missing_files(tmp_path):
    with pytest.raises(DataFormatError, match="file not found") as ei:
        read_split("rte", tmp_path, "train")
    assert ei.value.path.endswith("RTE/train.tsv")
    with pytest.raises(DataFormatError, match="directory not found"):
        read_split("race", tmp_path, "dev")
    assert task_files("mnli", tmp_path)["matched"].name == "dev_matched.tsv"


def test_squad_malformed(tmp_path):
    p = tmp_path / "dev-v1.1.json"
    p.write_text('{"version": "1.1",\n "data": [\n  {"title": "x",, }]}')
    with pytest.raises(DataFormatError) as ei:
        read_squad_json(p)
    assert ei.value.line == 3 and "invalid JSON" in str(ei.value)

    doc = squad_doc(1)
    doc["data"][0]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] = 5
    p.write_text(json.dumps(doc, indent=1))
    with pytest.raises(DataFormatError) as ei:
        read_squad_json(p)
    assert ei.value.field == "data[0].paragraphs[0].qas[1].answers[0].answer_start"
    lines = p.read_text().splitlines()
    assert ei.value.line == 1 + next(i for i, ln in enumerate(lines) if '"id": "q2"' in ln)

    doc = squad_doc(2)
    del doc["data"][0]["paragraphs"][0]["qas"][0]["question"]
    p.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=r"qas\[0\]\.question"):
        read_squad_json(p)
    with pytest.raises(DataFormatError, match="unanswerable question in a SQuAD 1.1"):
        p.write_text(json.dumps(squad_doc(2)))
        read_squad_json(p, version=1)


def test_race_malformed(tmp_path):
    write_race_fixture(tmp_path, splits=("dev",))
    bad = tmp_path / "RACE" / "dev" / "high" / "2.txt"
    doc = json.loads(bad.read_text())
    doc["answers"][1] = "E"
    bad.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError) as ei:
        read_race_dir(tmp_path / "RACE" / "dev")
    assert ei.value.path == str(bad) and ei.value.field == "answers[1]"
    doc["answers"][1] = "A"
    doc["options"] = doc["options"][:1]
    bad.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match="2 questions but 1 option lists"):
        read_race_dir(tmp_path / "RACE" / "dev")


def test_every_registered_task_has_fixture_coverage():
    assert set(GLUE_DIRS) == set(GLUE_TASKS)
    assert set(TASKS) == set(GLUE_TASKS) | {"squad1", "squad2", "race"}


@pytest.mark.parametrize("score", ["nan", "inf", "-inf", "-7", "5.5"])
def test_stsb_scores_must_be_finite_and_in_range(tmp_path, score):
    p = tmp_path / "train.tsv"
    p.write_text("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
                 "sentence2\tscore\n0\tx\tx\tx\tx\tx\tx\ta\tb\t2.5\n"
                 f"1\tx\tx\tx\tx\tx\tx\ta\tb\t{score}\n")
    with pytest.raises(DataFormatError, match="not a score from 0 to 5") as ei:
        read_glue_tsv(p, "stsb")
    assert (ei.value.line, ei.value.field) == (3, "score") and repr(score) in str(ei.value)


def _squad_error(tmp_path, doc) -> DataFormatError:
    p = tmp_path / "dev-v2.0.json"
    p.write_text(json.dumps(doc, indent=1))
    with pytest.raises(DataFormatError) as ei:
        read_squad_json(p, version=2)
    assert str(p) in str(ei.value)
    return ei.value


def test_squad_is_impossible_must_be_a_bool(tmp_path):
    doc = squad_doc(2)
    doc["data"][0]["paragraphs"][0]["qas"][0]["is_impossible"] = "false"
    e = _squad_error(tmp_path, doc)
    assert e.field == "data[0].paragraphs[0].qas[0].is_impossible" and "'false'" in str(e)


def test_squad_duplicate_question_ids(tmp_path):
    doc = squad_doc(2)
    doc["data"][0]["paragraphs"][0]["qas"][2]["id"] = "q1"
    e = _squad_error(tmp_path, doc)
    assert e.field == "data[0].paragraphs[0].qas[2].id" and "duplicate question id 'q1'" in str(e)


def test_squad_empty_answer_text(tmp_path):
    doc = squad_doc(2)
    doc["data"][0]["paragraphs"][0]["qas"][1]["answers"][1] = {"text": "", "answer_start": 0}
    e = _squad_error(tmp_path, doc)
    assert e.field == "data[0].paragraphs[0].qas[1].answers[1].text" and "empty answer" in str(e)


@pytest.mark.parametrize("task, n_train, n_dev, dev_counts", [
    ("rte", 2490, 277, {"entailment": 146, "not_entailment": 131}),
    ("sst2", 67349, 872, {"1": 444, "0": 428}),
])
def test_real_glue_files_read_whole(task, n_train, n_dev, dev_counts):
    """The released RTE and SST-2 files (shared/data/README.md gives their rows): every row
    read, none dropped, labels as in the files."""
    data = real_glue_dir()
    splits = read_task(task, data)
    assert (len(splits["train"]), len(splits["dev"])) == (n_train, n_dev)
    spec = get_task(task)
    counts = {label: sum(spec.labels[e.label] == label for e in splits["dev"])
              for label in spec.labels}
    assert counts == dev_counts
    lines = (data / spec.directory / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    text_col = 1 if task == "rte" else 0
    assert [e.text_a for e in splits["dev"]] == [ln.split("\t")[text_col] for ln in lines]
