"""Optional: the same tasks from the Hugging Face hub through `datasets` (the `hub` extra),
for machines that are online -- or from a `DatasetDict.save_to_disk` directory, offline.

Records come out as the local readers' (`TextExample`, `SquadExample`, `RaceExample`), with
labels mapped by *name* where the hub's class order differs from GLUE's files (MNLI: hub
entailment/neutral/contradiction; ours contradiction/entailment/neutral, as HF's GLUE
processor). Hub splits: "validation" (MNLI: "validation_matched"/"validation_mismatched").
"""
from __future__ import annotations

import os

from evaluation.readers import RaceExample, SquadExample, TextExample
from evaluation.tasks import CHOICE, SPAN, TaskSpec, get_task

_TEXT_COLUMNS = {"cola": ("sentence", None), "sst2": ("sentence", None),
                 "mrpc": ("sentence1", "sentence2"), "stsb": ("sentence1", "sentence2"),
                 "qqp": ("question1", "question2"), "mnli": ("premise", "hypothesis"),
                 "qnli": ("question", "sentence"), "rte": ("sentence1", "sentence2"),
                 "wnli": ("sentence1", "sentence2")}
# hub class name -> our label string, for the tasks whose files use names
_BY_NAME = {"mnli": None, "qnli": None, "rte": None}


def hub_split(spec: TaskSpec, split: str) -> str:
    if split == "train":
        return "train"
    if spec.name == "mnli":
        return {"matched": "validation_matched", "mismatched": "validation_mismatched"}[split]
    return "validation"


def _require_datasets():
    try:
        import datasets
    except ImportError as e:   # the optional extra
        raise ImportError("loading from the hub needs `datasets`: pip install "
                          "'roberta-pipeline[hub]'") from e
    return datasets


def load_from_hub(task: str | TaskSpec, split: str, path: str | os.PathLike | None = None,
                  cache_dir: str | None = None) -> list:
    """Examples of `split` ("train" or one of the task's dev splits). `path`: a directory
    written by `DatasetDict.save_to_disk` instead of the hub."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    datasets = _require_datasets()
    name = hub_split(spec, split)
    if path is not None:
        ds = datasets.load_from_disk(os.fspath(path))[name]
    else:
        ds = datasets.load_dataset(*spec.hub, split=name, cache_dir=cache_dir)
    return convert_records(spec, ds)


def convert_records(spec: TaskSpec, ds) -> list:
    """Hub rows (a `datasets.Dataset`) -> our example records."""
    if spec.type == SPAN:
        out = []
        for r in ds:
            answers = [{"text": t, "answer_start": s}
                       for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])]
            out.append(SquadExample(r["id"], r["question"], r["context"], answers,
                                    is_impossible=not answers))
        return out
    if spec.type == CHOICE:
        return [RaceExample(f"{r['example_id']}#{i}", r["article"], r["question"],
                            list(r["options"]), "ABCD".index(r["answer"]),
                            "high" if r["example_id"].startswith("high") else "middle")
                for i, r in enumerate(ds)]
    a_col, b_col = _TEXT_COLUMNS[spec.name]
    names = getattr(ds.features.get("label"), "names", None)
    out = []
    for i, r in enumerate(ds):
        label = r["label"]
        if spec.name in _BY_NAME and names:
            label = spec.labels.index(names[label])
        elif spec.name == "stsb":
            label = float(label)
        out.append(TextExample(f"{spec.name}:{i}", r[a_col], r[b_col] if b_col else None, label))
    return out


__all__ = ["load_from_hub", "convert_records", "hub_split"]
