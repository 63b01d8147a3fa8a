"""Progress for long work, in two places: rich bars on the CLI and Prefect progress artifacts.

On the CLI, one `ProgressBoard` shows a row per stage or unit of work, whatever feeds it:

- pollers, which read files the work writes, so they follow work in any process (threads,
  processes, a local Ray): the inputs' manifests and per-input progress files
  (`InputsPoller`, build-corpus and import-corpus), a run's `metrics.jsonl` (`MetricsPoller`,
  pretrain), finished finetuning jobs (`JobsPoller`);
- `StageProgress` callbacks, which libraries call in this process (train-tokenizer,
  shard-corpus, and any stage that reports through it): each stage name is a row.

A stage that reports through either appears in `roberta pipeline`'s display with no change
here. In flows, `FlowProgress` and `StageProgress` keep a Prefect progress artifact.
"""
from __future__ import annotations

import contextvars
import json
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

# Where per-input progress files go while a CLI watches (unset: no files are written).
PROGRESS_DIR_ENV = "ROBERTA_PROGRESS_DIR"

Poller = Callable[["ProgressBoard"], None]


def count_status(done: int, total: int | None) -> str:
    """A row's count: "1,234/5,000", or "1,234" when the total is not known."""
    return f"{done:,}/{total:,}" if total else f"{done:,}"


class ProgressBoard:
    """The CLI's live progress display: one rich Progress, a row per key, updated by pollers
    (every `interval_s`, in a thread) and by `StageProgress` callbacks from any thread."""

    def __init__(self, *pollers: Poller, interval_s: float = 0.5, console=None):
        self.pollers, self.interval_s, self.console = pollers, interval_s, console
        self._rows: dict[object, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def show(self, key, description: str, completed: float | None = None,
             total: float | None = None, status: str = "") -> None:
        """Add the row `key`, or update it."""
        with self._lock:
            if key not in self._rows:
                self._rows[key] = self._bar.add_task(description, total=total, status=status)
            self._bar.update(self._rows[key], completed=completed, total=total, status=status)

    def remove(self, key) -> None:
        with self._lock:
            if key in self._rows:
                self._bar.remove_task(self._rows.pop(key))

    def total(self, key) -> float | None | bool:
        """The row's total (None: a spinner), or False when there is no such row."""
        with self._lock:
            if key not in self._rows:
                return False
            return next(t.total for t in self._bar.tasks if t.id == self._rows[key])

    def rows(self) -> dict[str, str]:
        """What each row says now: {description: status}."""
        with self._lock:
            return {t.description: t.fields.get("status", "") for t in self._bar.tasks}

    def stage(self, stage: str, done: int, total: int | None) -> None:
        """A `StageProgress` callback: the row named after the stage."""
        self.show(("stage", stage), stage, completed=done, total=total,
                  status=count_status(done, total))

    def piece(self, name: str, done: int, total: int | None) -> None:
        """A `report_to_cli` callback: a row for one piece of a stage (a finetuning job),
        indented under it, that goes away when the piece is done."""
        if total and done >= total:
            self.remove(("piece", name))
        else:
            self.show(("piece", name), "  " + name, completed=done, total=total,
                      status=count_status(done, total))

    def poll(self) -> None:
        for poller in self.pollers:
            try:
                poller(self)
            except (OSError, ValueError):   # a file half-written or gone: next time
                pass

    def __enter__(self) -> ProgressBoard:
        global _cli_board
        from rich.progress import (BarColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        # Fits 80 columns: a 22-character name, a short bar, the status, two clocks.
        self._bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description:22.22}"),
                             BarColumn(bar_width=12), TextColumn("{task.fields[status]}"),
                             TimeElapsedColumn(), TimeRemainingColumn(compact=True),
                             console=self.console)
        self._bar.start()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        _cli_board = self
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def __exit__(self, *exc) -> None:
        global _cli_board
        _cli_board = None
        self._stop.set()
        self._thread.join()
        try:
            self.poll()
        finally:                 # whatever the last poll meets, the terminal leaves live mode
            self._bar.stop()


@contextmanager
def watch_files(description: str, count_done: Callable[[], int], total: int | None,
                interval_s: float = 0.5) -> Iterator[None]:
    """Show a progress bar that polls `count_done()` until the block exits."""
    def poll(board: ProgressBoard) -> None:
        done = count_done()
        board.show("files", description, completed=done, total=total,
                   status=count_status(done, total))

    with ProgressBoard(poll, interval_s=interval_s):
        yield


def count_files(directory: Path, pattern: str) -> Callable[[], int]:
    return lambda: sum(1 for _ in directory.glob(pattern)) if directory.exists() else 0


# --- build-corpus and import-corpus: inputs, and the records of each one being read ---------

@contextmanager
def watch_inputs(description: str, root: str, input_ids: list[str], unit: str,
                 *pollers: Poller) -> Iterator[None]:
    """While the block runs: a row of finished inputs, and one per input being read with its
    records and `unit`s per second (from the progress files the tasks write into a temporary
    folder named by $ROBERTA_PROGRESS_DIR); then the folder is removed."""
    with progress_dir() as directory, ProgressBoard(
            InputsPoller(description, root, input_ids, unit, directory), *pollers):
        yield


@contextmanager
def progress_dir() -> Iterator[Path]:
    """A temporary folder for per-input progress files, named in the environment (worker
    processes started from here inherit it)."""
    before = os.environ.get(PROGRESS_DIR_ENV)
    with tempfile.TemporaryDirectory(prefix="roberta-progress-") as directory:
        os.environ[PROGRESS_DIR_ENV] = directory
        try:
            yield Path(directory)
        finally:
            if before is None:
                os.environ.pop(PROGRESS_DIR_ENV, None)
            else:
                os.environ[PROGRESS_DIR_ENV] = before


class InputsPoller:
    """The finished inputs (their manifests, under a local root) and a row per input being
    read (its progress file)."""

    def __init__(self, description: str, root: str, input_ids: list[str], unit: str,
                 directory: Path):
        from runroot import layout
        from runroot.storage import is_uri

        self.description, self.unit, self.directory = description, unit, directory
        self.input_ids = set(input_ids)
        self.manifests = None if is_uri(root) else Path(root) / layout.CORPUS_MANIFESTS

    def _finished(self) -> set[str]:
        if self.manifests is None or not self.manifests.is_dir():
            return set()
        return {p.stem for p in self.manifests.glob("*.json")} & self.input_ids

    def __call__(self, board: ProgressBoard) -> None:
        finished, total = self._finished(), len(self.input_ids)
        if self.manifests is None:   # an object store: not polled twice a second
            board.show("inputs", self.description, status=f"{total:,} inputs")
        else:
            board.show("inputs", self.description, completed=len(finished), total=total,
                       status=f"{len(finished):,}/{total:,} done")
        for path in sorted(self.directory.glob("*.json")):
            state = json.loads(path.read_text())
            key = ("input", path.stem)
            if state.get("finished") or path.stem in finished:
                board.remove(key)
                continue
            seconds = max(time.time() - state["started"], 1e-6)
            rate = state.get("pages", state["records"]) / seconds
            board.show(key, "  " + state["name"], completed=state.get("bytes"),
                       total=state.get("size"),
                       status=f"{state['records']:,} records, {rate:,.0f} {self.unit}/s")


class InputProgressFile:
    """What an input's task reports as it reads: records so far, pages (WARC responses),
    bytes read of the file, written to `<directory>/<input-id>.json` at most twice a second
    (atomically, so the CLI never reads half a file)."""

    def __init__(self, directory: str, input_id: str, location: str, size: int | None):
        self.path = Path(directory) / f"{input_id}.json"
        self.state = {"name": location.rstrip("/").rsplit("/", 1)[-1], "records": 0,
                      "pages": 0, "bytes": 0, "size": size, "started": time.time()}
        self._written = 0.0

    def record(self, records: int, offset: int | None = None, outcome: str | None = None):
        """A reader's progress callback: (records read, byte offset, outcome)."""
        self.state["records"] = records
        if offset is not None:
            self.state["bytes"] = offset
        if outcome != "not_response":
            self.state["pages"] += 1
        if time.monotonic() - self._written >= 0.5:
            self._write()

    def finish(self) -> None:
        self.state["finished"] = True
        self._write()

    def _write(self) -> None:
        from runroot import storage

        self._written = time.monotonic()
        try:
            storage.save_json(self.path, self.state)
        except OSError:   # the watching CLI ended and removed the folder: keep working
            pass


@contextmanager
def input_progress(input_id: str, location: str, local_path) -> Iterator[InputProgressFile | None]:
    """An `InputProgressFile` while an input is read, when a CLI is watching (the folder
    named by $ROBERTA_PROGRESS_DIR exists here); else None."""
    directory = os.environ.get(PROGRESS_DIR_ENV)
    if not directory or not os.path.isdir(directory):
        yield None
        return
    reporter = InputProgressFile(directory, input_id, location, os.path.getsize(local_path))
    try:
        yield reporter
    finally:
        reporter.finish()


# --- a chain of stages (pipeline) ------------------------------------------------------------

class StagesPoller:
    """A row for each stage as soon as it starts (the file saying the stage before it is done
    exists), before it reports anything itself, and 'done' for a stage that reported nothing
    (skipped: done earlier). `stages`: (row key, description, file that starts it, file that
    says it is done, or None)."""

    def __init__(self, stages: list[tuple[object, str, Path, Path | None]]):
        self.stages = stages

    def __call__(self, board: ProgressBoard) -> None:
        for key, description, starts, done in self.stages:
            total = board.total(key)
            if total is False and starts.exists():
                board.show(key, description, status="running")
            if total in (False, None) and done is not None and done.exists():
                board.show(key, description, completed=1, total=1, status="done")


# --- pretrain: the run's metrics.jsonl ------------------------------------------------------

def last_metrics(path: Path) -> dict | None:
    """The last complete line of a metrics.jsonl, reading only its tail."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            metrics = json.loads(line)
        except ValueError:
            continue
        if isinstance(metrics, dict) and "step" in metrics:
            return metrics
    return None


class MetricsPoller:
    """Optimizer updates of a pretraining run, with its loss and tokens/s (the ETA is the
    board's), from its metrics.jsonl."""

    def __init__(self, metrics_path: Path, total_steps: int, description: str = "pretrain"):
        self.path, self.total, self.description = metrics_path, total_steps, description

    def __call__(self, board: ProgressBoard) -> None:
        m = last_metrics(self.path)
        if m is None:
            return
        loss = f"loss {m['loss']:.3f}" if isinstance(m.get("loss"), (int, float)) else "loss -"
        tps = m.get("tokens_per_s")
        speed = f", {tps:,.0f} tok/s" if isinstance(tps, (int, float)) else ""
        board.show("pretrain", self.description, completed=m["step"], total=self.total,
                   status=f"{m['step']:,}/{self.total:,} {loss}{speed}")


class JobsPoller:
    """Finetuning jobs finished since the watch began (results/jobs/*/*.json)."""

    def __init__(self, root: str, description: str = "finetune-eval jobs"):
        from runroot import layout

        self.jobs, self.description = Path(root) / layout.JOBS, description
        self.started = time.time()

    def __call__(self, board: ProgressBoard) -> None:
        if not self.jobs.is_dir():
            return
        done = sum(1 for p in self.jobs.glob("*/*.json") if p.stat().st_mtime >= self.started)
        if done:
            board.show("jobs", self.description, completed=done, status=f"{done:,} finished")


# --- In flows: Prefect progress artifacts (and the CLI board, in this process) --------------

class FlowProgress:
    """A Prefect progress artifact (0-100) updated as fan-out items finish."""

    def __init__(self, total: int, description: str):
        from prefect.artifacts import create_progress_artifact

        self.total, self.done = max(total, 1), 0
        self.artifact_id = create_progress_artifact(progress=0.0, description=description)

    def advance(self, n: int = 1) -> None:
        from prefect.artifacts import update_progress_artifact

        self.done += n
        update_progress_artifact(artifact_id=self.artifact_id,
                                 progress=100.0 * self.done / self.total)


_cli_board: ProgressBoard | None = None      # the board a CLI shows, while it shows one


@contextmanager
def cli_progress() -> Iterator[None]:
    """While active, `StageProgress` callbacks in this process also drive a CLI row."""
    with ProgressBoard():
        yield


class StageProgress:
    """The `progress(stage, done, total)` callback the libraries take: one Prefect progress
    artifact per stage, and the CLI board's row when one is listening.

    Libraries may call it from their own threads (the tokenizers trainer pulls its input on a
    Rust thread), where no Prefect run context is set: the task's context is captured here and
    re-entered for each update."""

    def __init__(self):
        self.artifacts: dict[str, object] = {}
        self._context = contextvars.copy_context()

    def _update_artifact(self, stage: str, pct: float) -> None:
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        if stage not in self.artifacts:
            self.artifacts[stage] = create_progress_artifact(progress=pct, description=stage)
        else:
            update_progress_artifact(artifact_id=self.artifacts[stage], progress=pct)

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if total:
            self._context.copy().run(self._update_artifact, stage, 100.0 * done / total)
        if _cli_board is not None:
            _cli_board.stage(stage, done, total)


def report_to_cli(piece: str, done: int, total: int | None) -> None:
    """Progress only a CLI shows, too fine-grained for a Prefect artifact (each update of a
    finetuning job): a row of its own while it runs; nothing when no CLI listens."""
    if _cli_board is not None:
        _cli_board.piece(piece, done, total)
