"""A job's dev-set predictions, in files the official scorers and any other tool can read.

    SQuAD    <split>-predictions.json   {question id: answer text} ("" = no answer), the file
                                        the official evaluate-v1.1.py / evaluate-v2.0.py take
             <split>-na-probs.json      SQuAD 2.0: {question id: probability of no answer},
                                        evaluate-v2.0.py's --na-prob-file
    GLUE     <split>-predictions.jsonl  one {"id", "prediction", "label"} per dev example,
    RACE                                labels spelt as in the task files (GLUE's label
                                        strings, STS-B's score, RACE's A-D)

The files hold the predictions of the job's best epoch: the epoch whose scores the results
table reports.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from evaluation.tasks import REGRESSION, TaskSpec
from runroot import storage

# A split's predictions: {file suffix: what the file holds}, written as "<split>-<suffix>".
Files = dict[str, object]


def labelled_records(spec: TaskSpec, examples, predicted) -> Files:
    """GLUE and RACE: (id, prediction, label) per example, as the task files spell labels."""
    def spelt(value):
        return float(value) if spec.type == REGRESSION else spec.labels[int(value)]

    records = [{"id": ex.id, "prediction": spelt(p), "label": spelt(ex.label)}
               for ex, p in zip(examples, predicted)]
    return {"predictions.jsonl": records}


def squad_files(answers: dict[str, str], answerable: dict[str, float] | None) -> Files:
    """SQuAD: the answers, and for 2.0 the no-answer probability of each question."""
    files: Files = {"predictions.json": answers}
    if answerable is not None:
        files["na-probs.json"] = {qid: 1.0 - p for qid, p in answerable.items()}
    return files


def write_predictions(directory: str | os.PathLike, split: str, files: Files) -> list[str]:
    """Write one split's files into `directory` (atomically); their names."""
    names = []
    for suffix, content in files.items():
        name = f"{split}-{suffix}"
        if suffix.endswith(".jsonl"):
            text = "".join(json.dumps(record) + "\n" for record in content)
            storage.save_text(Path(directory) / name, text)
        else:
            storage.save_json(Path(directory) / name, content, indent=None, sort_keys=False)
        names.append(name)
    return names


__all__ = ["labelled_records", "squad_files", "write_predictions"]
