"""Fixture writers: tiny files in each real on-disk format (GLUE's original TSVs, SQuAD's JSON,
RACE's per-passage JSON), with the column layouts of the released files."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

# (header or None, rows) per task; rows are the real files' columns.
_PAIRS = [("A man is playing a guitar.", "A person plays an instrument."),
          ("The cat sat on the mat.", "A dog is running."),
          ("Stocks fell sharply on Monday.", "Markets dropped at the start of the week."),
          ('He said "no" twice.', "He refused.")]


def _glue_rows(task: str, split: str) -> tuple[list[str] | None, list[list[str]]]:
    n = 4 if split == "train" else 3
    if task == "cola":
        sents = ["Our friends won't buy this analysis, let alone the next one we propose.",
                 "They drank the pub.", "The more we study verbs, the crazier they get.",
                 "Day by day the facts are getting murkier."]
        return None, [["gj04", str(i % 2), "" if i % 2 else "*", sents[i]] for i in range(n)]
    if task == "sst2":
        sents = ["it 's a charming and often affecting journey . ", "unflinchingly bleak ",
                 "the acting is superb ", "a dull , tiresome film "]
        return ["sentence", "label"], [[sents[i], str((i + 1) % 2)] for i in range(n)]
    if task == "mrpc":
        return (["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                [[str(i % 2), str(1000 + i), str(2000 + i), a, b] for i, (a, b) in enumerate(_PAIRS[:n])])
    if task == "stsb":
        return (["index", "genre", "filename", "year", "old_index", "source1", "source2",
                 "sentence1", "sentence2", "score"],
                [[str(i), "main-captions", "MSRvid", "2012test", f"{i:04d}", "none", "none", a, b,
                  f"{5.0 - 1.25 * i:.3f}"] for i, (a, b) in enumerate(_PAIRS[:n])])
    if task == "qqp":
        return (["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                [[str(i), str(2 * i), str(2 * i + 1), a + "?", b + "?", str(i % 2)]
                 for i, (a, b) in enumerate(_PAIRS[:n])])
    if task == "mnli":
        labels = ["entailment", "contradiction", "neutral", "entailment"]
        base = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
                "sentence2", "label1"]
        extra = ["label2", "label3", "label4", "label5"] if split != "train" else []
        header = base + extra + ["gold_label"]
        rows = [[str(i), str(31193 + i), f"{31193 + i}n", "government", f"( ( {a} ) )",
                 f"( ( {b} ) )", f"(ROOT (S {a}))", f"(ROOT (S {b}))", a, b, labels[i]]
                + [labels[i]] * len(extra) + [labels[i]]
                for i, (a, b) in enumerate(_PAIRS[:n])]
        return header, rows
    if task == "qnli":
        return (["index", "question", "sentence", "label"],
                [[str(i), a + "?", b, ["entailment", "not_entailment"][i % 2]]
                 for i, (a, b) in enumerate(_PAIRS[:n])])
    if task in ("rte", "wnli"):
        labels = (["entailment", "not_entailment"] if task == "rte" else ["1", "0"])
        return (["index", "sentence1", "sentence2", "label"],
                [[str(i), a, b, labels[i % 2]] for i, (a, b) in enumerate(_PAIRS[:n])])
    raise KeyError(task)


GLUE_DIRS = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "qqp": "QQP",
             "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE", "wnli": "WNLI"}


def _write_tsv(path: Path, header, rows) -> None:
    lines = (["\t".join(header)] if header else []) + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_glue_fixture(data_dir, task: str) -> Path:
    d = Path(data_dir) / GLUE_DIRS[task]
    d.mkdir(parents=True, exist_ok=True)
    dev_names = ["dev_matched.tsv", "dev_mismatched.tsv"] if task == "mnli" else ["dev.tsv"]
    _write_tsv(d / "train.tsv", *_glue_rows(task, "train"))
    for name in dev_names:
        _write_tsv(d / name, *_glue_rows(task, "dev"))
    return d


def write_all_glue(data_dir) -> None:
    for t in GLUE_DIRS:
        write_glue_fixture(data_dir, t)


SQUAD_CONTEXT = ("Architecturally, the school has a Catholic character. Atop the Main "
                 "Building's gold dome is a golden statue of the Virgin Mary.")


def squad_doc(version: int) -> dict:
    qas = [{"id": "q1", "question": "What sits on top of the Main Building?",
            "answers": [{"text": "a golden statue of the Virgin Mary",
                         "answer_start": SQUAD_CONTEXT.index("a golden statue")}]},
           {"id": "q2", "question": "What character does the school have?",
            "answers": [{"text": "Catholic", "answer_start": SQUAD_CONTEXT.index("Catholic")},
                        {"text": "a Catholic character",
                         "answer_start": SQUAD_CONTEXT.index("a Catholic character")}]}]
    if version == 2:
        for q in qas:
            q["is_impossible"] = False
        qas.append({"id": "q3", "question": "What is the dome made of silver?", "answers": [],
                    "plausible_answers": [{"text": "gold",
                                           "answer_start": SQUAD_CONTEXT.index("gold")}],
                    "is_impossible": True})
    return {"version": "1.1" if version == 1 else "v2.0",
            "data": [{"title": "University_of_Notre_Dame",
                      "paragraphs": [{"context": SQUAD_CONTEXT, "qas": qas}]}]}


def write_squad_fixture(data_dir, version: int) -> Path:
    d = Path(data_dir) / "SQuAD"
    d.mkdir(parents=True, exist_ok=True)
    tag = "1.1" if version == 1 else "2.0"
    for split in ("train", "dev"):
        (d / f"{split}-v{tag}.json").write_text(json.dumps(squad_doc(version), indent=1))
    return d


def race_doc(i: int, level: str) -> dict:
    return {"answers": ["B", "D"],
            "options": [["in the morning", "at noon", "at night", "never"],
                        ["red", "blue", "green", "yellow"]],
            "questions": ["When did Tom go to school?", "The colour of Tom's bag is _ ."],
            "article": f"Tom went to school at noon. His bag is yellow. (passage {i})",
            "id": f"{level}{i}.txt"}


def write_race_fixture(data_dir, splits=("train", "dev", "test"), per_level: int = 2) -> Path:
    base = Path(data_dir) / "RACE"
    for split in splits:
        for level in ("middle", "high"):
            d = base / split / level
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_level):
                (d / f"{i + 1}.txt").write_text(json.dumps(race_doc(i + 1, level)))
    return base


def real_glue_dir() -> Path:
    """The real GLUE RTE and SST-2 files (shared/data/glue beside the checkout, or
    $ROBERTA_REAL_GLUE); read-only there: copy them before writing anything next to them."""
    here = Path(__file__).resolve().parent.parent
    candidates = ([Path(os.environ["ROBERTA_REAL_GLUE"])] if os.environ.get("ROBERTA_REAL_GLUE")
                  else [p / "shared" / "data" / "glue" for p in here.parents])
    for candidate in candidates:
        if (candidate / "RTE" / "dev.tsv").is_file():
            return candidate
    pytest.skip("the real GLUE files (shared/data/glue) are not beside this checkout")


def copy_real_glue(dest, tasks=("RTE",)) -> Path:
    """The real task folders copied into `dest` (a test's temporary folder)."""
    for name in tasks:
        shutil.copytree(real_glue_dir() / name, Path(dest) / name)
    return Path(dest)


def rte_data(dest, n_train: int = 300, n_dev: int = 60) -> Path:
    """RTE in `dest`: the real files where this checkout has them beside it, else (a CI clone
    without the workspace's shared/) generated ones in the real files' format, large enough
    for the tests' limits, so the tests that use it run everywhere. Count the dev rows with
    `dev_rows`, not the real file's 277."""
    try:
        return copy_real_glue(dest, ("RTE",))
    except pytest.skip.Exception:
        d = Path(dest) / "RTE"
        d.mkdir(parents=True)
        for split, n in (("train", n_train), ("dev", n_dev)):
            rows = [[str(i), f"{a} (case {i})", b, ["entailment", "not_entailment"][i % 2]]
                    for i, (a, b) in ((i, _PAIRS[i % len(_PAIRS)]) for i in range(n))]
            _write_tsv(d / f"{split}.tsv", ["index", "sentence1", "sentence2", "label"], rows)
        return Path(dest)


def dev_rows(data_dir, task_dir: str = "RTE") -> int:
    """Examples in a GLUE task's dev.tsv (its header line aside)."""
    return len((Path(data_dir) / task_dir / "dev.tsv").read_text().splitlines()) - 1


def pretrain_style_checkpoint(root, run: str, step: int, **model_overrides):
    """A tiny model exported where `pretrain` puts checkpoints, with the completion manifest
    that `pretrain` writes last (finetune-eval only picks up complete checkpoints)."""
    from evaluation.synthetic import make_tiny_checkpoint
    from training.run_checkpoints import FORMAT_VERSION, MANIFEST, step_dir_name

    d = make_tiny_checkpoint(Path(root) / "pretrain" / run / "checkpoints" / step_dir_name(step),
                             **model_overrides)
    files = sorted(p.name for p in d.iterdir())
    (d / MANIFEST).write_text(json.dumps({"format_version": FORMAT_VERSION, "step": step,
                                          "world_size": 1, "files": files + [MANIFEST]}))
    return d
