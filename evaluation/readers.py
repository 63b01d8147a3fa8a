"""Readers for the files users have on disk: GLUE's original TSVs, SQuAD's JSON, RACE's
per-passage JSON files. Each returns plain example records; anything malformed raises
`DataFormatError` naming the file, the line and the field.

Layouts (GLUE as `download_glue_data.py` writes it; tab-separated, *no* quoting -- MNLI and
QQP text contains bare quote characters, so lines are split on tabs, never csv-parsed):

    CoLA/{train,dev}.tsv     no header: source, label, original-label, sentence
    SST-2/{train,dev}.tsv    header: sentence, label
    MRPC/{train,dev}.tsv     header: Quality, #1 ID, #2 ID, #1 String, #2 String
    STS-B/{train,dev}.tsv    header: index genre filename year old_index source1 source2
                             sentence1 sentence2 score
    QQP/{train,dev}.tsv      header: id qid1 qid2 question1 question2 is_duplicate
    MNLI/train.tsv, dev_matched.tsv, dev_mismatched.tsv
                             header: index promptID pairID genre sentence1_binary_parse ...
                             sentence1 sentence2 label1 [label2..label5] gold_label
    QNLI/{train,dev}.tsv     header: index question sentence label
    RTE, WNLI/{train,dev}.tsv header: index sentence1 sentence2 label
    SQuAD/{train,dev}-v{1.1,2.0}.json   {"version", "data": [{"title", "paragraphs":
                             [{"context", "qas": [{"id", "question", "answers":
                             [{"text", "answer_start"}], "is_impossible"?}]}]}]}
    RACE/{train,dev,test}/{middle,high}/*.txt   one JSON object per file: article,
                             questions, options (4 per question), answers ("A".."D"), id
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from evaluation.tasks import CHOICE, REGRESSION, SPAN, TaskSpec, get_task


class DataFormatError(ValueError):
    """A data file is missing or malformed. `path`, `line` (1-based, None when not known) and
    `field` say where."""

    def __init__(self, path, line: int | None, field_name: str | None, problem: str):
        self.path, self.line, self.field = str(path), line, field_name
        where = self.path + (f":{line}" if line is not None else "")
        what = f" field {field_name!r}" if field_name else ""
        super().__init__(f"{where}:{what} {problem}")


# --------------------------------------------------------------------------------------------
# example records
# --------------------------------------------------------------------------------------------

@dataclass
class TextExample:
    """A GLUE example. `label` is a class index, or a float for regression."""
    id: str
    text_a: str
    text_b: str | None
    label: int | float


@dataclass
class SquadExample:
    id: str
    question: str
    context: str
    answers: list[dict] = field(default_factory=list)   # [{"text", "answer_start"}]
    is_impossible: bool = False


@dataclass
class RaceExample:
    id: str
    article: str
    question: str
    options: list[str]
    label: int                 # index of the right option
    level: str                 # "middle" | "high"


# --------------------------------------------------------------------------------------------
# GLUE
# --------------------------------------------------------------------------------------------

# task -> (has_header, {role: column name or index}); roles: a, b, label
_GLUE_COLUMNS = {
    "cola": (False, {"a": 3, "label": 1}, 4),
    "sst2": (True, {"a": "sentence", "label": "label"}, None),
    "mrpc": (True, {"a": "#1 String", "b": "#2 String", "label": "Quality"}, None),
    "stsb": (True, {"a": "sentence1", "b": "sentence2", "label": "score"}, None),
    "qqp": (True, {"a": "question1", "b": "question2", "label": "is_duplicate"}, None),
    "mnli": (True, {"a": "sentence1", "b": "sentence2", "label": "gold_label"}, None),
    "qnli": (True, {"a": "question", "b": "sentence", "label": "label"}, None),
    "rte": (True, {"a": "sentence1", "b": "sentence2", "label": "label"}, None),
    "wnli": (True, {"a": "sentence1", "b": "sentence2", "label": "label"}, None),
}


STSB_SCORES = (0.0, 5.0)     # STS-B similarity scores, the only regression task


def _open_text(path: Path) -> str:
    if not path.is_file():
        raise DataFormatError(path, None, None, "file not found")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataFormatError(path, line, None, f"not valid UTF-8 ({e.reason})") from None


def read_glue_tsv(path: str | os.PathLike, task: str | TaskSpec) -> list[TextExample]:
    """One GLUE TSV file of `task` (train or dev; test files have no labels)."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    path = Path(path)
    has_header, roles, ncols = _GLUE_COLUMNS[spec.name]
    lines = _open_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    if not lines:
        raise DataFormatError(path, 1, None, "empty file")
    start = 0
    index: dict[str, int] = {}
    if has_header:
        header = lines[0].split("\t")
        for role, name in roles.items():
            if name not in header:
                raise DataFormatError(path, 1, name, f"column missing from header {header}")
            index[role] = header.index(name)
        ncols = len(header)
        start = 1
    else:
        index = dict(roles)
    examples = []
    for i in range(start, len(lines)):
        lineno = i + 1
        if not lines[i].strip():
            continue
        cols = lines[i].split("\t")
        if len(cols) < ncols:
            missing = [name for role, name in roles.items() if index[role] >= len(cols)]
            raise DataFormatError(path, lineno, str(missing[0]) if missing else None,
                                  f"expected {ncols} tab-separated columns, found {len(cols)}")
        label_name = roles["label"]
        raw = cols[index["label"]].strip()
        if spec.type == REGRESSION:
            try:
                label: int | float = float(raw)
            except ValueError:
                label = math.nan
            lo, hi = STSB_SCORES
            if not lo <= label <= hi:       # float() takes 'nan' and 'inf'; NaN fails this too
                raise DataFormatError(path, lineno, str(label_name),
                                      f"{raw!r} is not a score from {lo:g} to {hi:g}")
        else:
            if raw not in spec.labels:
                raise DataFormatError(path, lineno, str(label_name),
                                      f"label {raw!r} not in {list(spec.labels)}")
            label = spec.labels.index(raw)
        a = cols[index["a"]]
        b = cols[index["b"]] if "b" in index else None
        examples.append(TextExample(id=f"{path.name}:{lineno}", text_a=a, text_b=b, label=label))
    return examples


# --------------------------------------------------------------------------------------------
# SQuAD
# --------------------------------------------------------------------------------------------

def _load_json(path: Path) -> tuple[str, object]:
    """The file's text and its parsed JSON; a parse error names the file and line."""
    text = _open_text(path)
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFormatError(path, e.lineno, None, f"invalid JSON: {e.msg}") from None


def _line_of(text: str, needle: str) -> int | None:
    pos = text.find(needle)
    return None if pos < 0 else text.count("\n", 0, pos) + 1


def read_squad_json(path: str | os.PathLike, version: int | None = None) -> list[SquadExample]:
    """SQuAD 1.1 / 2.0 JSON. Field errors give the JSON path as the field and, where the
    question id can be found in the file, its line."""
    path = Path(path)
    text, doc = _load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataFormatError(path, 1, "data", "expected an object with a 'data' list")
    out = []
    seen: dict[str, str] = {}    # question id -> where it was first seen
    for ai, article in enumerate(doc["data"]):
        paras = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paras, list):
            raise DataFormatError(path, None, f"data[{ai}].paragraphs", "missing or not a list")
        for pi, para in enumerate(paras):
            where = f"data[{ai}].paragraphs[{pi}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str):
                raise DataFormatError(path, None, f"{where}.context", "missing or not a string")
            if not isinstance(para.get("qas"), list):
                raise DataFormatError(path, None, f"{where}.qas", "missing or not a list")
            ctx = para["context"]
            for qi, qa in enumerate(para["qas"]):
                qwhere = f"{where}.qas[{qi}]"
                qid = qa.get("id") if isinstance(qa, dict) else None
                line = _line_of(text, json.dumps(qid)) if isinstance(qid, str) else None

                def bad(fld, problem):
                    return DataFormatError(path, line, f"{qwhere}.{fld}", problem)

                if not isinstance(qid, str):
                    raise bad("id", "missing or not a string")
                if qid in seen:     # predictions and scores are keyed on the id
                    raise bad("id", f"duplicate question id {qid!r} (first at {seen[qid]})")
                seen[qid] = qwhere
                if not isinstance(qa.get("question"), str):
                    raise bad("question", "missing or not a string")
                impossible = qa.get("is_impossible", False)
                if not isinstance(impossible, bool):    # bool("false") would be True
                    raise bad("is_impossible", f"{impossible!r} is not true or false")
                if impossible and version == 1:
                    raise bad("is_impossible", "unanswerable question in a SQuAD 1.1 file")
                answers = qa.get("answers", [])
                if not isinstance(answers, list):
                    raise bad("answers", "not a list")
                if not impossible and not answers:
                    raise bad("answers", "answerable question without answers")
                clean = []
                for k, a in enumerate(answers):
                    if not isinstance(a, dict) or not isinstance(a.get("text"), str):
                        raise bad(f"answers[{k}].text", "missing or not a string")
                    if not a["text"].strip():   # it would match anywhere in the context
                        raise bad(f"answers[{k}].text", "empty answer")
                    s = a.get("answer_start")
                    if not isinstance(s, int) or isinstance(s, bool) or s < 0 or s > len(ctx):
                        raise bad(f"answers[{k}].answer_start",
                                  f"{s!r} is not an offset into the {len(ctx)}-char context")
                    if ctx[s:s + len(a["text"])] != a["text"]:
                        raise bad(f"answers[{k}].answer_start",
                                  f"context at {s} is {ctx[s:s + len(a['text'])]!r}, "
                                  f"not the answer {a['text']!r}")
                    clean.append({"text": a["text"], "answer_start": s})
                out.append(SquadExample(qid, qa["question"], ctx, [] if impossible else clean,
                                        impossible))
    return out


# --------------------------------------------------------------------------------------------
# RACE
# --------------------------------------------------------------------------------------------

_LETTERS = "ABCD"


def read_race_file(path: str | os.PathLike, level: str) -> list[RaceExample]:
    path = Path(path)
    text, doc = _load_json(path)
    if not isinstance(doc, dict):
        raise DataFormatError(path, 1, None, "expected a JSON object")
    for fld, typ in (("article", str), ("questions", list), ("options", list), ("answers", list)):
        if not isinstance(doc.get(fld), typ):
            raise DataFormatError(path, 1, fld, f"missing or not a {typ.__name__}")
    n = len(doc["questions"])
    if len(doc["options"]) != n or len(doc["answers"]) != n:
        raise DataFormatError(path, 1, "options/answers",
                              f"{n} questions but {len(doc['options'])} option lists and "
                              f"{len(doc['answers'])} answers")
    out = []
    pid = doc.get("id", path.name)
    for i, (q, opts, ans) in enumerate(zip(doc["questions"], doc["options"], doc["answers"])):
        if not isinstance(opts, list) or len(opts) != 4 or not all(isinstance(o, str) for o in opts):
            raise DataFormatError(path, 1, f"options[{i}]", "expected 4 strings")
        if ans not in tuple(_LETTERS):
            raise DataFormatError(path, 1, f"answers[{i}]", f"{ans!r} is not one of A B C D")
        if not isinstance(q, str):
            raise DataFormatError(path, 1, f"questions[{i}]", "not a string")
        out.append(RaceExample(f"{level}/{pid}#{i}", doc["article"], q, list(opts),
                               _LETTERS.index(ans), level))
    return out


def read_race_dir(split_dir: str | os.PathLike, levels=("middle", "high")) -> list[RaceExample]:
    """`RACE/<split>/` with `middle/` and `high/` folders of per-passage files (sorted)."""
    split_dir = Path(split_dir)
    out = []
    for level in levels:
        d = split_dir / level
        if not d.is_dir():
            raise DataFormatError(d, None, None, "directory not found")
        files = sorted(p for p in d.iterdir() if p.suffix == ".txt" and p.is_file())
        if not files:
            raise DataFormatError(d, None, None, "no *.txt passage files")
        for f in files:
            out.extend(read_race_file(f, level))
    return out


# --------------------------------------------------------------------------------------------
# by task
# --------------------------------------------------------------------------------------------

def task_files(task: str | TaskSpec, data_dir: str | os.PathLike) -> dict[str, Path]:
    """{"train": path, <dev split>: path, ...} for `task` under `data_dir`."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    base = Path(data_dir) / spec.directory
    return {"train": base / spec.train_file, **{k: base / v for k, v in spec.dev_files.items()}}


def read_split(task: str | TaskSpec, data_dir: str | os.PathLike, split: str) -> list:
    """Examples of `split` ("train" or a dev split name of the task) from the local layout."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    files = task_files(spec, data_dir)
    if split not in files:
        raise KeyError(f"{spec.name} has no split {split!r}; splits: {list(files)}")
    path = files[split]
    if spec.type == SPAN:
        return read_squad_json(path, spec.squad_version)
    if spec.type == CHOICE:
        return read_race_dir(path)
    return read_glue_tsv(path, spec)


def read_task(task: str | TaskSpec, data_dir: str | os.PathLike) -> dict[str, list]:
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    return {split: read_split(spec, data_dir, split) for split in task_files(spec, data_dir)}


__all__ = ["DataFormatError", "TextExample", "SquadExample", "RaceExample", "read_glue_tsv",
           "read_squad_json", "read_race_file", "read_race_dir", "task_files", "read_split",
           "read_task"]
