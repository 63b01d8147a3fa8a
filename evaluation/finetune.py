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
"""
from __future__ import annotations

import math
import os
import time
import traceback
from typing import Callable

import numpy as np
import torch

from evaluation.encoding import load_tokenizer
from evaluation.heads import load_encoder
from evaluation.readers import read_split, task_files
from evaluation.task_data import _autocast, _to, adapter_for, labels_to
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


def finetune_and_evaluate(model_dir: str | os.PathLike, task: str | TaskSpec,
                          data_dir: str | os.PathLike | None, lr: float | None = None,
                          batch_size: int | None = None, seed: int = 1,
                          epochs: int | None = None, warmup_ratio: float = 0.06,
                          weight_decay: float | None = None, max_len: int | None = None,
                          device: str | torch.device = "cpu", progress: Progress | None = None,
                          limit: int | None = None, *, source: str = "local",
                          doc_stride: int = 128, max_query_len: int = 64,
                          max_option_len: int = 128, pooler_dropout: float = 0.0,
                          eval_batch_size: int | None = None,
                          examples: dict[str, list] | None = None) -> dict:
    """Finetune the checkpoint in `model_dir` (HF layout: config.json + model.safetensors +
    tokenizer files) on `task` and return per-epoch dev metrics (percent).

    None means the task's Table 10 default (lr: the grid's first value; weight_decay 0.1 for
    GLUE and RACE, 0.01 for SQuAD). `limit` keeps the first `limit` examples of each split
    (smoke runs). `examples` bypasses the readers ({"train": [...], <dev split>: [...]}).

    Returns a dict: task, hyperparameters, n_train, n_dev, per-epoch `history` (epoch,
    train_loss, lr, metrics...), `best_epoch` (by the task's primary metric), `best` (all
    metrics at that epoch), `primary_metric`, `time_s`, `device`, `error` (None here; see
    `run_job` for the error-catching wrapper)."""
    t0 = time.perf_counter()
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    hp = spec.hp
    lr = hp.lrs[0] if lr is None else lr
    batch_size = hp.batch_sizes[0] if batch_size is None else batch_size
    epochs = hp.epochs if epochs is None else epochs
    weight_decay = hp.weight_decay if weight_decay is None else weight_decay
    max_len = spec.max_len if max_len is None else max_len
    device = torch.device(device)

    data = examples if examples is not None else load_examples(spec, data_dir, source)
    if limit is not None:
        data = {k: v[:limit] for k, v in data.items()}
    dev_splits = [s for s in data if s != "train"]
    _require_examples(spec, data, data_dir if examples is None and source == "local" else None)

    tok = load_tokenizer(model_dir)
    encoder = load_encoder(model_dir)
    max_len = min(max_len, encoder.cfg.max_positions)
    adapter = adapter_for(spec, tok, max_len, doc_stride=doc_stride, max_query_len=max_query_len,
                          max_option_len=max_option_len, pooler_dropout=pooler_dropout)
    torch.manual_seed(seed)                          # head init and dropout
    model = adapter.build_model(encoder).to(device)
    train_items = adapter.features(data["train"])

    steps_per_epoch = math.ceil(len(train_items) / batch_size)
    total = steps_per_epoch * epochs
    warmup = int(round(warmup_ratio * total))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS,
                                  weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: linear_schedule(s, total, warmup))
    eval_bs = eval_batch_size or max(batch_size, 32)

    history = []
    step = 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = np.random.default_rng([seed, epoch]).permutation(len(train_items))
        loss_sum, n_batches = 0.0, 0
        for b in range(steps_per_epoch):
            batch = [train_items[i] for i in order[b * batch_size:(b + 1) * batch_size]]
            inputs, labels = adapter.collate(batch)
            with _autocast(device):
                out = model(**_to(inputs, device))
            loss = model.loss(out, labels_to(labels, device))
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(
                    f"{spec.name}: training loss is {loss_value} at epoch {epoch}, update "
                    f"{step + 1} (lr {lr}): training diverged or the data has non-finite labels")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            loss_sum += loss_value
            n_batches += 1
            if progress:
                progress("train", step, total)
        model.eval()
        row = {"epoch": epoch, "train_loss": loss_sum / max(1, n_batches),
               "lr": scheduler.get_last_lr()[0]}
        for split in dev_splits:
            row.update(adapter.evaluate(model, split, data[split], device, eval_bs))
            if progress:
                progress(f"eval:{split}", epoch, epochs)
        bad = {k: v for k, v in row.items() if not math.isfinite(v)}
        if bad:   # NaN compares false with everything: it would pick the best epoch at random
            raise FloatingPointError(f"{spec.name}: non-finite dev scores at epoch {epoch}: {bad}")
        history.append(row)

    best = max(history, key=lambda r: (r[spec.primary_metric], -r["epoch"]))
    return {
        "task": spec.name, "model_dir": str(model_dir), "lr": lr, "batch_size": batch_size,
        "seed": seed, "epochs": epochs, "warmup_ratio": warmup_ratio,
        "weight_decay": weight_decay, "max_len": max_len,
        **({"doc_stride": doc_stride} if spec.type == SPAN else {}),
        "n_train": len(data["train"]), "n_train_rows": len(train_items),
        "n_dev": {s: len(data[s]) for s in dev_splits}, "steps": step,
        "primary_metric": spec.primary_metric, "history": history,
        "best_epoch": best["epoch"],
        "best": {m: best[m] for m in spec.metrics if m in best},
        "time_s": time.perf_counter() - t0, "device": str(device), "error": None,
    }


def run_job(model_dir, task, data_dir, **kwargs) -> dict:
    """`finetune_and_evaluate`, but a failure becomes a result with `error` set (type, message
    and traceback) instead of an exception, so one bad job never stops a fan-out."""
    t0 = time.perf_counter()
    try:
        return finetune_and_evaluate(model_dir, task, data_dir, **kwargs)
    except Exception as e:  # noqa: BLE001 -- reported in the result, by design
        name = task.name if isinstance(task, TaskSpec) else str(task)
        keep = {k: kwargs.get(k) for k in ("lr", "batch_size", "seed", "epochs",
                                           "warmup_ratio", "weight_decay", "max_len")}
        return {"task": name, "model_dir": str(model_dir), **keep, "history": [],
                "best_epoch": None, "best": {}, "time_s": time.perf_counter() - t0,
                "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


__all__ = ["finetune_and_evaluate", "run_job", "linear_schedule", "load_examples",
           "ADAM_BETAS", "ADAM_EPS"]
