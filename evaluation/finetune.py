"""Finetune one (task, lr, batch size, seed) job and score the dev set after every epoch.

The recipe (paper §5 and Table 10, fairseq_recipe.md §2.2-2.3): AdamW with betas (0.9, 0.98),
eps 1e-6, decoupled weight decay on every finetuned parameter (fairseq's Adam decays all),
no gradient clipping; linear warm-up over the first `warmup_ratio` of updates, then linear
decay to 0; dev metrics every epoch (the paper keeps the best epoch: "early stopping").
Defaults per task family come from Table 10 (`TaskSpec.hp`): GLUE lr 1e-5 batch 16 10 epochs
wd 0.1 (the grid is {1e-5,2e-5,3e-5} x {16,32}); SQuAD 1.5e-5, 48, 2 epochs, wd 0.01; RACE
1e-5, 16, 4 epochs, wd 0.1.

Deterministic given `seed`: head initialisation, dropout and the per-epoch shuffle all derive
from it (the shuffle from numpy's generator keyed on (seed, epoch)).

The best epoch's dev predictions are written to `predictions_dir` when one is given
(evaluation/predictions.py). A stop request (evaluation/stopping.py) ends a job between
updates with `JobStopped`, which is raised, not turned into a result: a stopped job is not one.
"""
from __future__ import annotations

import math
import os
import time
import traceback
from dataclasses import asdict, dataclass, fields, replace
from typing import Callable

import numpy as np
import torch

from evaluation.encoding import load_tokenizer
from evaluation.heads import load_encoder
from evaluation.predictions import write_predictions
from evaluation.readers import read_split, task_files
from evaluation.stopping import JobStopped, check_stop
from evaluation.task_data import adapter_for, forward_batch, labels_to
from evaluation.tasks import SPAN, TaskSpec, get_task

Progress = Callable[[str, int, "int | None"], None]
"""progress(stage, done, total): stage is "train" (updates) or "eval:<split>"."""

ADAM_BETAS = (0.9, 0.98)
ADAM_EPS = 1e-6


def linear_schedule(step: int, total: int, warmup: int) -> float:
    """LR multiplier of update `step` (0-based): warm-up to 1, then linear to 0 at `total`."""
    n = step + 1
    if warmup > 0 and n <= warmup:
        return n / warmup
    return max(0.0, (total - n) / max(1, total - warmup))


def load_examples(spec: TaskSpec, data_dir, source: str = "local") -> dict[str, list]:
    """{"train": [...], <dev split>: [...]} from the local layout or the HF hub."""
    if source == "hub":
        from evaluation.hub import load_from_hub
        return {split: load_from_hub(spec, split) for split in ("train", *spec.dev_files)}
    if source != "local":
        raise ValueError(f"source must be 'local' or 'hub', not {source!r}")
    return {split: read_split(spec, data_dir, split) for split in task_files(spec, data_dir)}


def _require_examples(spec: TaskSpec, data: dict[str, list], data_dir) -> None:
    """Every split must have examples: an empty train split trains nothing, an empty dev split
    scores 0 or fails only after all the training. `data_dir` (None: not read from disk) lets
    the error name the file."""
    for split, items in data.items():
        if not items:
            where = f" ({task_files(spec, data_dir)[split]})" if data_dir is not None else ""
            raise ValueError(f"{spec.name}: the {split} split has no examples{where}")


@dataclass(frozen=True)
class JobSettings:
    """One job's training settings, in the order its result reports them."""

    lr: float
    batch_size: int
    seed: int
    epochs: int
    warmup_ratio: float
    weight_decay: float
    max_len: int

    @classmethod
    def for_task(cls, spec: TaskSpec, lr: float | None, batch_size: int | None, seed: int,
                 epochs: int | None, warmup_ratio: float, weight_decay: float | None,
                 max_len: int | None) -> "JobSettings":
        """None: the task's Table 10 default (lr and batch size: the grid's first values)."""
        hp = spec.hp
        return cls(lr=hp.lrs[0] if lr is None else lr,
                   batch_size=hp.batch_sizes[0] if batch_size is None else batch_size,
                   seed=seed, epochs=hp.epochs if epochs is None else epochs,
                   warmup_ratio=warmup_ratio,
                   weight_decay=hp.weight_decay if weight_decay is None else weight_decay,
                   max_len=spec.max_len if max_len is None else max_len)


def _job_examples(spec: TaskSpec, data_dir, source: str, limit: int | None,
                  dev_limit: int | None, examples: dict[str, list] | None) -> dict[str, list]:
    """`examples`, else the task's splits read from `source`; the first `limit` training
    examples and the first `dev_limit` of each dev split (None: all); checked to be non-empty.
    A limit on training data must not shrink the dev set silently: that changes what the
    score means."""
    data = examples if examples is not None else load_examples(spec, data_dir, source)
    data = {split: rows[:limit if split == "train" else dev_limit]
            for split, rows in data.items()}
    _require_examples(spec, data, data_dir if examples is None and source == "local" else None)
    return data


class _FinetuneJob:
    """The state one job's updates and dev scorings share: the task adapter, the model with
    its optimizer and LR schedule, the training rows and the number of updates done."""

    def __init__(self, spec: TaskSpec, model_dir, data: dict[str, list], settings: JobSettings,
                 device: torch.device, progress: Progress | None,
                 eval_batch_size: int | None, adapter_options: dict):
        self.spec, self.model_dir, self.data, self.device = spec, model_dir, data, device
        self.progress, self.adapter_options = progress, adapter_options
        self.dev_splits = [s for s in data if s != "train"]
        tok = load_tokenizer(model_dir)
        encoder = load_encoder(model_dir)
        self.settings = s = replace(settings, max_len=min(settings.max_len,
                                                          encoder.cfg.max_positions))
        self.adapter = adapter_for(spec, tok, s.max_len, **adapter_options)
        torch.manual_seed(s.seed)                        # head init and dropout
        self.model = self.adapter.build_model(encoder).to(device)
        self.train_items = self.adapter.features(data["train"])
        self.steps_per_epoch = math.ceil(len(self.train_items) / s.batch_size)
        self.total_steps = total = self.steps_per_epoch * s.epochs
        warmup = int(round(s.warmup_ratio * total))
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=s.lr, betas=ADAM_BETAS, eps=ADAM_EPS,
                                           weight_decay=s.weight_decay)
        # The schedule holds plain numbers, not `self`: no reference cycle keeps a finished
        # job's model (on the GPU) alive until the garbage collector runs.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: linear_schedule(step, total, warmup))
        self.eval_batch_size = eval_batch_size or max(s.batch_size, 32)
        self.steps_done = 0
        self.best_predictions: dict[str, dict] = {}    # split -> prediction files, best epoch

    def run(self) -> list[dict]:
        """Train every epoch and score the dev splits after each: the per-epoch history.
        The predictions of the best epoch so far are kept (ties: the earliest, as `result`)."""
        history, primary = [], self.spec.primary_metric
        for epoch in range(1, self.settings.epochs + 1):
            train_loss = self.train_epoch(epoch)
            row, predictions = self.score(epoch, train_loss)
            if not history or row[primary] > max(h[primary] for h in history):
                self.best_predictions = predictions
            history.append(row)
        return history

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training rows, shuffled by (seed, epoch): the mean loss."""
        self.model.train()
        items, bs = self.train_items, self.settings.batch_size
        order = np.random.default_rng([self.settings.seed, epoch]).permutation(len(items))
        loss_sum = 0.0
        for b in range(self.steps_per_epoch):
            loss_sum += self.update([items[i] for i in order[b * bs:(b + 1) * bs]], epoch)
        return loss_sum / max(1, self.steps_per_epoch)

    def update(self, batch: list, epoch: int) -> float:
        """One optimizer update on `batch`: its loss."""
        check_stop(f"{self.spec.name} update {self.steps_done + 1}/{self.total_steps}")
        inputs, labels = self.adapter.collate(batch)
        out = forward_batch(self.model, inputs, self.device)
        loss = self.model.loss(out, labels_to(labels, self.device))
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"{self.spec.name}: training loss is {loss_value} at epoch {epoch}, update "
                f"{self.steps_done + 1} (lr {self.settings.lr}): training diverged or the data "
                "has non-finite labels")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.steps_done += 1
        if self.progress:
            self.progress("train", self.steps_done, self.total_steps)
        return loss_value

    def score(self, epoch: int, train_loss: float) -> tuple[dict, dict[str, dict]]:
        """The history row of `epoch` (its training loss, the LR reached, the dev metrics) and
        each dev split's prediction files."""
        self.model.eval()
        row = {"epoch": epoch, "train_loss": train_loss, "lr": self.scheduler.get_last_lr()[0]}
        predictions = {}
        for split in self.dev_splits:
            metrics, predictions[split] = self.adapter.evaluate(
                self.model, split, self.data[split], self.device, self.eval_batch_size)
            row.update(metrics)
            if self.progress:
                self.progress(f"eval:{split}", epoch, self.settings.epochs)
        bad = {k: v for k, v in row.items() if not math.isfinite(v)}
        if bad:   # NaN compares false with everything: it would pick the best epoch at random
            raise FloatingPointError(
                f"{self.spec.name}: non-finite dev scores at epoch {epoch}: {bad}")
        return row, predictions

    def save_predictions(self, directory) -> dict:
        """Write the best epoch's prediction files into `directory`: {"dir", "files"}."""
        files = [name for split, split_files in self.best_predictions.items()
                 for name in write_predictions(directory, split, split_files)]
        return {"dir": str(directory), "files": files}

    def result(self, history: list[dict], time_s: float) -> dict:
        spec = self.spec
        best = max(history, key=lambda r: (r[spec.primary_metric], -r["epoch"]))
        return {
            "task": spec.name, "model_dir": str(self.model_dir), **asdict(self.settings),
            **({"doc_stride": self.adapter_options["doc_stride"]} if spec.type == SPAN else {}),
            "n_train": len(self.data["train"]), "n_train_rows": len(self.train_items),
            "n_dev": {s: len(self.data[s]) for s in self.dev_splits}, "steps": self.steps_done,
            "primary_metric": spec.primary_metric, "history": history,
            "best_epoch": best["epoch"],
            "best": {m: best[m] for m in spec.metrics if m in best},
            "time_s": time_s, "device": str(self.device), "error": None,
        }


def finetune_and_evaluate(model_dir: str | os.PathLike, task: str | TaskSpec,
                          data_dir: str | os.PathLike | None, lr: float | None = None,
                          batch_size: int | None = None, seed: int = 1,
                          epochs: int | None = None, warmup_ratio: float = 0.06,
                          weight_decay: float | None = None, max_len: int | None = None,
                          device: str | torch.device = "cpu", progress: Progress | None = None,
                          limit: int | None = None, *, dev_limit: int | None = None,
                          source: str = "local", doc_stride: int = 128,
                          max_query_len: int = 64, max_option_len: int = 128,
                          pooler_dropout: float = 0.0, eval_batch_size: int | None = None,
                          examples: dict[str, list] | None = None,
                          predictions_dir: str | os.PathLike | None = None) -> dict:
    """Finetune the checkpoint in `model_dir` (HF layout: config.json + model.safetensors +
    tokenizer files) on `task` and return per-epoch dev metrics (percent).

    None means the task's Table 10 default (lr: the grid's first value; weight_decay 0.1 for
    GLUE and RACE, 0.01 for SQuAD). `limit` keeps the first `limit` training examples (smoke
    runs); dev splits are scored whole unless `dev_limit` is given. `examples` bypasses the
    readers ({"train": [...], <dev split>: [...]}). `predictions_dir`: where the best epoch's
    dev predictions are written.

    Returns a dict: task, hyperparameters, n_train, n_dev (per dev split), limit, dev_limit,
    per-epoch `history` (epoch, train_loss, lr, metrics...), `best_epoch` (by the task's
    primary metric), `best` (all metrics at that epoch), `primary_metric`, `predictions`
    ({"dir", "files"}, with `predictions_dir`), `time_s`, `device`, `error` (None here; see
    `run_job` for the error-catching wrapper). Raises `JobStopped` on a stop request."""
    t0 = time.perf_counter()
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    settings = JobSettings.for_task(spec, lr, batch_size, seed, epochs, warmup_ratio,
                                    weight_decay, max_len)
    device = torch.device(device)
    data = _job_examples(spec, data_dir, source, limit, dev_limit, examples)
    job = _FinetuneJob(spec, model_dir, data, settings, device, progress, eval_batch_size,
                       adapter_options=dict(doc_stride=doc_stride, max_query_len=max_query_len,
                                            max_option_len=max_option_len,
                                            pooler_dropout=pooler_dropout))
    history = job.run()
    out = job.result(history, time.perf_counter() - t0)
    out.update(limit=limit, dev_limit=dev_limit)
    if predictions_dir is not None:
        out["predictions"] = job.save_predictions(predictions_dir)
    return out


def run_job(model_dir, task, data_dir, **kwargs) -> dict:
    """`finetune_and_evaluate`, but a failure becomes a result with `error` set (type, message
    and traceback) instead of an exception, so one bad job never stops a fan-out. A stop
    request is not a failure: `JobStopped` is raised."""
    t0 = time.perf_counter()
    try:
        return finetune_and_evaluate(model_dir, task, data_dir, **kwargs)
    except JobStopped:
        raise
    except Exception as e:  # noqa: BLE001 -- reported in the result, by design
        name = task.name if isinstance(task, TaskSpec) else str(task)
        keep = {f.name: kwargs.get(f.name) for f in fields(JobSettings)}
        return {"task": name, "model_dir": str(model_dir), **keep, "limit": kwargs.get("limit"),
                "dev_limit": kwargs.get("dev_limit"), "history": [],
                "best_epoch": None, "best": {}, "time_s": time.perf_counter() - t0,
                "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


__all__ = ["finetune_and_evaluate", "run_job", "JobSettings", "linear_schedule", "load_examples",
           "ADAM_BETAS", "ADAM_EPS"]
