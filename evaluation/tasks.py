"""The finetuning tasks of the RoBERTa paper: what each one is, how it is scored, where its
files live, its Table 10 hyperparameters, and the paper's reference numbers.

Reference numbers (fairseq_recipe.md §5), all in percent like the paper:
  - GLUE dev, RoBERTa-BASE: Table 8 row "RoBERTa-BASE + all data + 500k steps" (= fairseq
    README `roberta.base`); RoBERTa-LARGE: Table 5 dev row (= Table 8 "+ pretrain longer 500k").
    Table 8 gives one MNLI number for BASE: it is MNLI-m (the README's `roberta.base` MNLI
    row, evaluated on dev_matched); BASE MNLI-mm and WNLI are not given -> None.
    MRPC and QQP are reported as accuracy, STS-B as Pearson correlation, CoLA as Matthews
    correlation x 100 (the GLUE conventions of the paper's single-number columns).
  - SQuAD dev (Table 6): LARGE only. RACE (Table 7): LARGE only and on the *test* split
    (the paper reports no RACE dev numbers) -- `reference_split` says so.

No Prefect, no torch: this module is plain data that the flow, the CLI and the results table
all read.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Task types
SINGLE = "single_sentence_classification"
PAIR = "pair_classification"
REGRESSION = "regression"
SPAN = "span_extraction"
CHOICE = "multiple_choice"


@dataclass(frozen=True)
class Hyperparameters:
    """Table 10 of the paper (fairseq_recipe.md §2.2). Grids are tuples; the paper picks the
    best (lr, batch) by the median over 5 seeds of the best dev epoch."""

    lrs: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    weight_decay: float
    epochs: int
    warmup_ratio: float = 0.06
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)


GLUE_HP = Hyperparameters(lrs=(1e-5, 2e-5, 3e-5), batch_sizes=(16, 32), weight_decay=0.1, epochs=10)
SQUAD_HP = Hyperparameters(lrs=(1.5e-5,), batch_sizes=(48,), weight_decay=0.01, epochs=2)
RACE_HP = Hyperparameters(lrs=(1e-5,), batch_sizes=(16,), weight_decay=0.1, epochs=4)


# MNLI's two dev sets, and the metric each one gives.
MNLI_SPLIT_METRICS = {"matched": "accuracy_m", "mismatched": "accuracy_mm"}

# SQuAD 2.0's official script also scores the answerable (HasAns) and unanswerable (NoAns)
# questions apart: a model that never answers gets NoAns 100 and HasAns 0.
SQUAD2_SPLIT_METRICS = ("HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1")


@dataclass(frozen=True)
class Reference:
    base: float | None
    large: float | None


@dataclass(frozen=True)
class TaskSpec:
    name: str                               # registry key, lower case: "mnli", "squad2", ...
    display: str                            # as in the paper's tables: "MNLI", "SQuAD 2.0"
    type: str                               # one of SINGLE, PAIR, REGRESSION, SPAN, CHOICE
    family: str                             # "glue" | "squad" | "race"
    directory: str                          # under the data dir: "MRPC", "SQuAD", "RACE"
    train_file: str                         # relative to `directory` (RACE: a folder)
    dev_files: dict[str, str]               # dev split name -> file; MNLI has two
    labels: tuple[str, ...] = ()            # label strings in class-index order ((): none)
    metrics: tuple[str, ...] = ("accuracy",)
    primary_metric: str = "accuracy"        # picks the best epoch and the best (lr, batch)
    references: dict[str, Reference] = field(default_factory=dict)
    reference_split: str = "dev"
    hp: Hyperparameters = GLUE_HP
    max_len: int = 512
    hub: tuple[str, ...] = ()               # datasets.load_dataset(*hub)
    squad_version: int | None = None

    @property
    def num_labels(self) -> int:
        if self.type == REGRESSION:
            return 1
        return len(self.labels)

    def reference(self, metric: str) -> Reference:
        return self.references.get(metric, Reference(None, None))

    def split_of(self, metric: str) -> str:
        """The dev split `metric` is scored on (MNLI has two; every other task one)."""
        by_metric = {m: split for split, m in MNLI_SPLIT_METRICS.items()}
        split = by_metric.get(metric)
        return split if split in self.dev_files else next(iter(self.dev_files))


def _ref(base, large):
    return Reference(base, large)


_BIN = ("0", "1")
_ENT2 = ("entailment", "not_entailment")

TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    TaskSpec("cola", "CoLA", SINGLE, "glue", "CoLA", "train.tsv", {"dev": "dev.tsv"}, _BIN,
             metrics=("mcc",), primary_metric="mcc",
             references={"mcc": _ref(63.6, 68.0)}, hub=("glue", "cola")),
    TaskSpec("sst2", "SST-2", SINGLE, "glue", "SST-2", "train.tsv", {"dev": "dev.tsv"}, _BIN,
             references={"accuracy": _ref(94.8, 96.4)}, hub=("glue", "sst2")),
    TaskSpec("mrpc", "MRPC", PAIR, "glue", "MRPC", "train.tsv", {"dev": "dev.tsv"}, _BIN,
             metrics=("accuracy", "f1"), references={"accuracy": _ref(90.2, 90.9)},
             hub=("glue", "mrpc")),
    TaskSpec("stsb", "STS-B", REGRESSION, "glue", "STS-B", "train.tsv", {"dev": "dev.tsv"},
             metrics=("pearson", "spearman"), primary_metric="pearson",
             references={"pearson": _ref(91.2, 92.4)}, hub=("glue", "stsb")),
    TaskSpec("qqp", "QQP", PAIR, "glue", "QQP", "train.tsv", {"dev": "dev.tsv"}, _BIN,
             metrics=("accuracy", "f1"), references={"accuracy": _ref(91.9, 92.2)},
             hub=("glue", "qqp")),
    TaskSpec("mnli", "MNLI", PAIR, "glue", "MNLI", "train.tsv",
             {"matched": "dev_matched.tsv", "mismatched": "dev_mismatched.tsv"},
             ("contradiction", "entailment", "neutral"),
             metrics=("accuracy_m", "accuracy_mm"), primary_metric="accuracy_m",
             references={"accuracy_m": _ref(87.6, 90.2), "accuracy_mm": _ref(None, 90.2)},
             hub=("glue", "mnli")),
    TaskSpec("qnli", "QNLI", PAIR, "glue", "QNLI", "train.tsv", {"dev": "dev.tsv"}, _ENT2,
             references={"accuracy": _ref(92.8, 94.7)}, hub=("glue", "qnli")),
    TaskSpec("rte", "RTE", PAIR, "glue", "RTE", "train.tsv", {"dev": "dev.tsv"}, _ENT2,
             references={"accuracy": _ref(78.7, 86.6)}, hub=("glue", "rte")),
    TaskSpec("wnli", "WNLI", PAIR, "glue", "WNLI", "train.tsv", {"dev": "dev.tsv"}, _BIN,
             references={"accuracy": _ref(None, 91.3)}, hub=("glue", "wnli")),
    TaskSpec("squad1", "SQuAD 1.1", SPAN, "squad", "SQuAD", "train-v1.1.json",
             {"dev": "dev-v1.1.json"}, metrics=("exact", "f1"), primary_metric="f1",
             references={"exact": _ref(None, 88.9), "f1": _ref(None, 94.6)},
             hp=SQUAD_HP, hub=("squad",), squad_version=1),
    TaskSpec("squad2", "SQuAD 2.0", SPAN, "squad", "SQuAD", "train-v2.0.json",
             {"dev": "dev-v2.0.json"}, metrics=("exact", "f1", *SQUAD2_SPLIT_METRICS),
             primary_metric="f1",
             references={"exact": _ref(None, 86.5), "f1": _ref(None, 89.4)},
             hp=SQUAD_HP, hub=("squad_v2",), squad_version=2),
    TaskSpec("race", "RACE", CHOICE, "race", "RACE", "train", {"dev": "dev"},
             ("A", "B", "C", "D"), metrics=("accuracy", "accuracy_middle", "accuracy_high"),
             references={"accuracy": _ref(None, 83.2), "accuracy_middle": _ref(None, 86.5),
                         "accuracy_high": _ref(None, 81.3)},
             reference_split="test", hp=RACE_HP, hub=("race", "all")),
]}

ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "squad": "squad1", "squad1.1": "squad1",
           "squad11": "squad1", "squad2.0": "squad2", "squad20": "squad2",
           "squad_v2": "squad2", "mnli-m": "mnli", "mnli-mm": "mnli"}
GLUE_TASKS = tuple(n for n, t in TASKS.items() if t.family == "glue")


def get_task(name: str) -> TaskSpec:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[key]


def parse_tasks(spec: str) -> list[TaskSpec]:
    """'mrpc,squad2' / 'glue' / 'all' -> task specs, in the given order, without repeats."""
    out: list[TaskSpec] = []
    for part in (p for p in spec.split(",") if p.strip()):
        p = part.strip().lower()
        names = list(TASKS) if p == "all" else list(GLUE_TASKS) if p == "glue" else [p]
        for n in names:
            t = get_task(n)
            if t not in out:
                out.append(t)
    return out


def hyperparameter_grid(task: str | TaskSpec, lrs=None, batch_sizes=None, seeds=None
                        ) -> list[dict]:
    """Every (lr, batch_size, seed) job of the paper's sweep for `task` (Table 10), one dict
    each, in a stable order. Overrides replace the paper's values (e.g. fewer seeds)."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    hp = spec.hp
    return [dict(task=spec.name, lr=lr, batch_size=bs, seed=seed, epochs=hp.epochs,
                 warmup_ratio=hp.warmup_ratio, weight_decay=hp.weight_decay)
            for lr in (lrs or hp.lrs) for bs in (batch_sizes or hp.batch_sizes)
            for seed in (seeds or hp.seeds)]


__all__ = ["TaskSpec", "Hyperparameters", "Reference", "TASKS", "GLUE_TASKS", "get_task",
           "parse_tasks", "hyperparameter_grid", "SINGLE", "PAIR", "REGRESSION", "SPAN",
           "CHOICE", "GLUE_HP", "SQUAD_HP", "RACE_HP", "MNLI_SPLIT_METRICS",
           "SQUAD2_SPLIT_METRICS"]
