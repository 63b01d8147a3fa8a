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
paper_base, paper_large, reference_split. Values are percent, like the paper's tables.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import re

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
    """The results folder ("dir") and the table's files by extension, inside the root's
    filesystem."""
    _, base = storage.resolve(root)
    stem = storage.join(base, layout.RESULTS_TABLE).removesuffix(".parquet")
    return {"dir": storage.join(base, layout.RESULTS),
            **{ext: f"{stem}.{ext}" for ext in ("parquet", "csv", "md", "png")}}


def checkpoint_step(checkpoint: str | None) -> int | None:
    """N of a `.../step-N` checkpoint directory, else None."""
    m = re.search(r"step-(\d+)/?$", checkpoint or "")
    return int(m.group(1)) if m else None


def _row(r: dict, model, checkpoint, step, now) -> dict:
    ck = checkpoint if checkpoint is not None else r.get("model_dir")
    per_seed = r.get("per_seed") or {}
    return {
        "recorded_at": now, "model": model or (os.path.basename(str(ck).rstrip("/")) if ck else None),
        "checkpoint": None if ck is None else str(ck),
        "checkpoint_step": step if step is not None else checkpoint_step(None if ck is None else str(ck)),
        "task": r["task"], "metric": r["metric"],
        "value": None if r.get("value") is None else float(r["value"]),
        "n_seeds": int(r.get("n_seeds") or 0),
        "seeds": ",".join(str(s) for s in r.get("seeds") or []),
        "per_seed": json.dumps({str(k): v for k, v in per_seed.items()}),
        "lr": r.get("lr"), "batch_size": r.get("batch_size"),
        "hyperparameters": r.get("hyperparameters") if isinstance(r.get("hyperparameters"), str)
        else json.dumps(r.get("hyperparameters") or {}, sort_keys=True),
        "time_s": float(r.get("time_s") or 0.0), "error": r.get("error"),
        "paper_base": r.get("paper_base"), "paper_large": r.get("paper_large"),
        "reference_split": r.get("reference_split"),
    }


def read_results(root) -> pa.Table:
    """The whole table (an empty one with `SCHEMA` when there is none yet)."""
    fs, _ = storage.resolve(root)
    p = paths(root)["parquet"]
    if not storage.exists(fs, p):
        return SCHEMA.empty_table()
    with fs.open_input_file(p) as f:
        return pq.read_table(f).cast(SCHEMA)


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
    """Append `rows` (from `aggregate`) for one model/checkpoint; regenerate csv, md and png.
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
    """Regenerate results.csv, results.md and results.png from the parquet table."""
    fs, _ = storage.resolve(root)
    p = paths(root)
    table = read_results(root) if table is None else table
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    storage.write_bytes_atomic(fs, p["csv"], buf.getvalue())
    storage.write_text_atomic(fs, p["md"], to_markdown(table))
    storage.write_bytes_atomic(fs, p["png"], plot_png(table))


def _fmt(v, digits=1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


DISPLAY_COLUMNS = ("model", "checkpoint_step", "task", "metric", "value", "paper_base",
                   "paper_large", "n_seeds", "lr", "batch_size", "time_s", "error")


def _display_rows(table: pa.Table) -> list[list[str]]:
    out = []
    for r in table.to_pylist():
        cells = []
        for c in DISPLAY_COLUMNS:
            v = r[c]
            if c == "lr" and v is not None:
                cells.append(f"{v:g}")
            elif c == "time_s" and v is not None:
                cells.append(f"{v:.0f}s")
            elif c == "error" and v:
                cells.append(v.splitlines()[0])   # whole: it names the file and the cause
            else:
                cells.append(_fmt(v))
        out.append(cells)
    return out


def to_markdown(table: pa.Table) -> str:
    head = "| " + " | ".join(DISPLAY_COLUMNS) + " |"
    sep = "|" + "---|" * len(DISPLAY_COLUMNS)
    body = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
            for row in _display_rows(table)]
    note = ("\nValues in percent. paper_base / paper_large: RoBERTa paper dev numbers "
            "(Tables 5, 6, 8; RACE: Table 7, test split); – = not reported.\n")
    return "# Finetuning results\n\n" + "\n".join([head, sep, *body]) + "\n" + note


def render_table(root_or_table, title: str = "Finetuning results"):
    """A `rich.table.Table` of the results, for the terminal (`roberta results`)."""
    from rich.table import Table

    table = root_or_table if isinstance(root_or_table, pa.Table) else read_results(root_or_table)
    t = Table(title=title)
    for c in DISPLAY_COLUMNS:
        t.add_column(c, justify="right" if c in ("value", "paper_base", "paper_large",
                                                  "checkpoint_step", "n_seeds") else "left",
                     overflow="fold" if c == "error" else "ellipsis")
    for cells, r in zip(_display_rows(table), table.to_pylist()):
        t.add_row(*cells, style="red" if r["error"] else None)
    return t


def print_results(root, console=None) -> None:
    """Print the table on `console` (default: stdout). Not on a terminal (a log, CI, a pipe),
    the default console is as wide as the table, so nothing is cut or wrapped."""
    from rich.console import Console

    table = render_table(root)
    if console is None:
        console = Console()
        if not console.is_terminal:
            natural = Console(width=100_000).measure(table).maximum
            console = Console(width=max(80, natural))
    console.print(table)


def latest_values(table: pa.Table) -> list[dict]:
    """The newest successful row per (task, metric), in table order."""
    latest: dict[tuple, dict] = {}
    for r in table.to_pylist():
        if r["value"] is not None and not r["error"]:
            latest[(r["task"], r["metric"])] = r
    return list(latest.values())


def plot_png(table: pa.Table) -> bytes:
    """Grouped bars: our newest value per (task, metric) vs the paper's BASE and LARGE."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = latest_values(table)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 4.0))
    if rows:
        x = np.arange(len(rows))
        w = 0.27
        series = (("ours", [r["value"] for r in rows]),
                  ("paper RoBERTa-base", [r["paper_base"] for r in rows]),
                  ("paper RoBERTa-large", [r["paper_large"] for r in rows]))
        for k, (label, vals) in enumerate(series):
            ax.bar(x + (k - 1) * w, [np.nan if v is None else v for v in vals], w, label=label)
        ax.set_xticks(x, [f"{r['task']}\n{r['metric']}" for r in rows], fontsize=8)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3,
                  frameon=False)  # below the axes: bars reach the top
    else:
        ax.text(0.5, 0.5, "no results yet", ha="center", va="center")
    ax.set_ylabel("dev score (%)")
    ax.set_title("Finetuning: ours vs the RoBERTa paper")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def evaluated_checkpoints(root) -> set[str]:
    """Checkpoints that already have rows (the nightly mode skips them)."""
    return {c for c in read_results(root).column("checkpoint").to_pylist() if c}


__all__ = ["SCHEMA", "append_results", "read_results", "write_reports", "render_table",
           "print_results", "to_markdown", "plot_png", "latest_values", "evaluated_checkpoints",
           "checkpoint_step", "paths"]
