"""The results table: `<root>/results/results.parquet`, with `results.csv`, `results.md` and
`results.png` (ours against the paper's numbers) regenerated from it on every append.

One row per (model, checkpoint, task, metric) evaluation, appended -- existing rows are never
rewritten or dropped. A successful row that is already in the table (the same result of the
same evaluation: equal in every column but `recorded_at` and `time_s`, as when a rerun finds
every job cached) is not appended again; failed rows always are (each is a retry). The new
file is the old rows plus the new ones, written under a temporary name and renamed over the
old one (atomic: `runroot.storage`), with a lock file serialising appenders
on a local filesystem. `<root>` may also be any URI pyarrow understands (s3://...); there the
rename is the store's, and concurrent appenders are the caller's to avoid.

Columns (`SCHEMA`): recorded_at, model, checkpoint, checkpoint_step, task, metric, value,
n_seeds, seeds, per_seed (JSON), lr, batch_size, hyperparameters (JSON), time_s, error,
paper_base, paper_large, reference_split, and what the value was measured on: data (the task
data directory), data_fingerprint (of its files' content), standin (generated stand-in tasks,
not comparable with the paper), n_train (training examples used), n_dev (dev examples
scored), train_limit, dev_limit, predictions (JSON: seed -> its predictions folder). Values are
percent, like the paper's tables. Paths are resolved and absolute, so the same evaluation run
from anywhere, with any spelling of a path, is the same row. A table written before a column
existed reads with that column empty.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import re
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from runroot import layout, storage

SCHEMA = pa.schema([
    ("recorded_at", pa.string()), ("model", pa.string()), ("checkpoint", pa.string()),
    ("checkpoint_step", pa.int64()), ("task", pa.string()), ("metric", pa.string()),
    ("value", pa.float64()), ("n_seeds", pa.int64()), ("seeds", pa.string()),
    ("per_seed", pa.string()), ("lr", pa.float64()), ("batch_size", pa.int64()),
    ("hyperparameters", pa.string()), ("time_s", pa.float64()), ("error", pa.string()),
    ("paper_base", pa.float64()), ("paper_large", pa.float64()),
    ("reference_split", pa.string()),
    ("data", pa.string()), ("data_fingerprint", pa.string()), ("standin", pa.bool_()),
    ("n_train", pa.int64()), ("n_dev", pa.int64()), ("train_limit", pa.int64()),
    ("dev_limit", pa.int64()), ("predictions", pa.string()),
])


@contextlib.contextmanager
def _lock(fs, directory: str):
    """An exclusive lock on a local results directory (no-op on object stores)."""
    if not isinstance(fs, pafs.LocalFileSystem):
        yield
        return
    import fcntl
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def paths(root) -> dict[str, str]:
    """The results folder ("dir"), the table's files by extension and the trend plot
    ("trend"), inside the root's filesystem."""
    _, base = storage.resolve(root)
    stem = storage.join(base, layout.RESULTS_TABLE).removesuffix(".parquet")
    return {"dir": storage.join(base, layout.RESULTS),
            "trend": storage.join(base, layout.TREND_PLOT),
            **{ext: f"{stem}.{ext}" for ext in ("parquet", "csv", "md", "png")}}


def checkpoint_step(checkpoint: str | None) -> int | None:
    """N of a `.../step-N` checkpoint directory, else None."""
    m = re.search(r"step-(\d+)/?$", checkpoint or "")
    return int(m.group(1)) if m else None


def normalised(path) -> str | None:
    """`path` resolved and absolute (symlinks, `..` and the working directory taken out), so
    a checkpoint or a data directory has one spelling in the table."""
    return None if path is None else str(Path(path).resolve())


def _int_or_none(v) -> int | None:
    return None if v is None else int(v)


def _provenance(r: dict) -> dict:
    """What the row was measured on (aggregate.PROVENANCE), in the table's types."""
    return {"data": normalised(r.get("data")), "data_fingerprint": r.get("data_fingerprint"),
            "standin": bool(r.get("standin")), "n_train": _int_or_none(r.get("n_train")),
            "n_dev": _int_or_none(r.get("n_dev")),
            "train_limit": _int_or_none(r.get("train_limit")),
            "dev_limit": _int_or_none(r.get("dev_limit")), "predictions": r.get("predictions")}


def _row(r: dict, model, checkpoint, step, now) -> dict:
    ck = normalised(checkpoint if checkpoint is not None else r.get("model_dir"))
    per_seed = r.get("per_seed") or {}
    hp = r.get("hyperparameters")
    return {
        "recorded_at": now, "model": model or (os.path.basename(ck) if ck else None),
        "checkpoint": ck, "checkpoint_step": step if step is not None else checkpoint_step(ck),
        "task": r["task"], "metric": r["metric"],
        "value": None if r.get("value") is None else float(r["value"]),
        "n_seeds": int(r.get("n_seeds") or 0),
        "seeds": ",".join(str(s) for s in r.get("seeds") or []),
        "per_seed": json.dumps({str(k): v for k, v in per_seed.items()}),
        "lr": r.get("lr"), "batch_size": r.get("batch_size"),
        "hyperparameters": hp if isinstance(hp, str) else json.dumps(hp or {}, sort_keys=True),
        "time_s": float(r.get("time_s") or 0.0), "error": r.get("error"),
        "paper_base": r.get("paper_base"), "paper_large": r.get("paper_large"),
        "reference_split": r.get("reference_split"), **_provenance(r),
    }


def _conform(table: pa.Table) -> pa.Table:
    """`table` with `SCHEMA`'s columns in its order: a column added since the table was
    written reads as nulls."""
    columns = [table.column(f.name) if f.name in table.column_names
               else pa.nulls(table.num_rows, f.type) for f in SCHEMA]
    return pa.Table.from_arrays(columns, schema=SCHEMA.remove_metadata()).cast(SCHEMA)


def read_results(root) -> pa.Table:
    """The whole table (an empty one with `SCHEMA` when there is none yet)."""
    fs, _ = storage.resolve(root)
    p = paths(root)["parquet"]
    if not storage.exists(fs, p):
        return SCHEMA.empty_table()
    with fs.open_input_file(p) as f:
        return _conform(pq.read_table(f))


# Columns that differ between two records of the same result (a rerun on cached jobs).
_NOT_THE_RESULT = ("recorded_at", "time_s")


def _result_key(row: dict) -> tuple:
    return tuple(row[c] for c in SCHEMA.names if c not in _NOT_THE_RESULT)


def without_repeats(old: pa.Table, new: pa.Table) -> pa.Table:
    """The rows of `new` that are not successful results already in `old` (nor earlier in
    `new`): rerunning an evaluation whose jobs are all cached adds nothing to the table."""
    seen = {_result_key(r) for r in old.to_pylist() if not r["error"]}
    keep = []
    for r in new.to_pylist():
        key = _result_key(r)
        if r["error"] or key not in seen:
            keep.append(r)
            if not r["error"]:
                seen.add(key)
    return pa.Table.from_pylist(keep, schema=SCHEMA)


def append_results(root, rows: list[dict], model: str | None = None,
                   checkpoint: str | None = None, step: int | None = None) -> pa.Table:
    """Append `rows` (from `aggregate`) for one model/checkpoint; regenerate the reports.
    `checkpoint` defaults to each row's model_dir, `model` to its folder name, `step` to the
    N of a `step-N` folder. Successful rows already in the table are not appended again
    (`without_repeats`). Returns the whole table."""
    fs, _ = storage.resolve(root)
    p = paths(root)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    new = pa.Table.from_pylist([_row(r, model, checkpoint, step, now) for r in rows], schema=SCHEMA)
    local_dir = p["dir"] if isinstance(fs, pafs.LocalFileSystem) else None
    with _lock(fs, local_dir) if local_dir else contextlib.nullcontext():
        old = read_results(root)
        table = pa.concat_tables([old, without_repeats(old, new)])
        storage.write_table_atomic(fs, p["parquet"], table)
        write_reports(root, table)
    return table


def write_reports(root, table: pa.Table | None = None) -> None:
    """Regenerate results.csv, results.md, results.png and trend.png from the table."""
    from evaluation.results_view import plot_png, to_markdown
    from evaluation.trend import plot_trend

    fs, _ = storage.resolve(root)
    p = paths(root)
    table = read_results(root) if table is None else table
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    storage.write_bytes_atomic(fs, p["csv"], buf.getvalue())
    storage.write_text_atomic(fs, p["md"], to_markdown(table))
    storage.write_bytes_atomic(fs, p["png"], plot_png(table))
    storage.write_bytes_atomic(fs, p["trend"], plot_trend(table))


def print_results(root, console=None) -> None:
    """Print the table on `console` (default: stdout), fitted to its width: on a narrow
    terminal the least needed columns are left out, and a line says which and where the
    whole table is. Not on a terminal (a log, CI, a pipe), the default console is as wide as
    the table, so nothing is left out, cut or wrapped."""
    from evaluation.results_view import print_tables

    print_tables(read_results(root), paths(root)["md"], console)


def evaluated_checkpoints(root, data: dict[str, str]) -> set[str]:
    """The checkpoints that have a result for every task of `data` ({task: fingerprint of
    its data files}) on exactly that data: results on other data (a stand-in, an older copy)
    do not count, and neither do failed jobs."""
    tasks_done: dict[str, set[str]] = defaultdict(set)
    for r in read_results(root).to_pylist():
        if (r["checkpoint"] and r["value"] is not None and not r["error"]
                and data.get(r["task"]) == r["data_fingerprint"]):
            tasks_done[r["checkpoint"]].add(r["task"])
    return {ck for ck, tasks in tasks_done.items() if set(data) <= tasks}


__all__ = ["SCHEMA", "append_results", "read_results", "write_reports", "print_results",
           "evaluated_checkpoints", "checkpoint_step", "normalised", "paths"]
