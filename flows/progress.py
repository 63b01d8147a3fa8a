"""Progress for long work, in two places: a rich bar on the CLI and a Prefect progress artifact.

Stages write a file per finished unit (a manifest, a checkpoint), so the CLI follows progress
by watching files appear: that works whatever runs the work (threads, processes, Ray).
"""
from __future__ import annotations

import contextvars
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


@contextmanager
def watch_files(description: str, count_done: Callable[[], int], total: int | None,
                interval_s: float = 0.5) -> Iterator[None]:
    """Show a rich progress bar that polls `count_done()` until the block exits."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                               TextColumn, TimeElapsedColumn, TimeRemainingColumn)

    stop = threading.Event()
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=total)

        def poll():
            while not stop.wait(interval_s):
                bar.update(task, completed=count_done())

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            bar.update(task, completed=count_done())


def count_files(directory: Path, pattern: str) -> Callable[[], int]:
    return lambda: sum(1 for _ in directory.glob(pattern)) if directory.exists() else 0


def manifest_counter(root: str, total: int, input_ids: set[str] | None = None):
    """(count_done, total) for `watch_files`: the manifests of finished inputs (those of
    `input_ids`, default all) under a local root. A URI root (s3://...) gets a spinner:
    polling an object store twice a second is not worth a progress count."""
    from runroot import layout
    from runroot.storage import is_uri

    if is_uri(root):
        return (lambda: 0), None
    manifests = Path(root) / layout.CORPUS_MANIFESTS

    def done() -> int:
        if not manifests.exists():
            return 0
        return sum(1 for p in manifests.glob("*.json") if input_ids is None or p.stem in input_ids)
    return done, total


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


# --- In-process progress: library callbacks → Prefect artifact (+ the CLI bar) -------------

_cli_listener: Callable[[str, int, int | None], None] | None = None


@contextmanager
def cli_progress() -> Iterator[None]:
    """While active, `StageProgress` callbacks in this process also drive a rich bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    global _cli_listener
    bars: dict[str, int] = {}
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn()) as bar:
        def listen(stage: str, done: int, total: int | None) -> None:
            if stage not in bars:
                bars[stage] = bar.add_task(stage, total=total)
            bar.update(bars[stage], completed=done, total=total)

        _cli_listener = listen
        try:
            yield
        finally:
            _cli_listener = None


class StageProgress:
    """The `progress(stage, done, total)` callback the libraries take: one Prefect progress
    artifact per stage, and the CLI bar when one is listening.

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
        if _cli_listener is not None:
            _cli_listener(stage, done, total)


@contextmanager
def cli_listener(listener: Callable[[str, int, int | None], None]) -> Iterator[None]:
    """While active, progress reported in this process (`StageProgress`, `report_to_cli`)
    goes to `listener(stage, done, total)`: a command's own display (finetune-eval's)."""
    global _cli_listener
    _cli_listener = listener
    try:
        yield
    finally:
        _cli_listener = None


def report_to_cli(stage: str, done: int, total: int | None) -> None:
    """Progress only a CLI shows, too fine-grained for a Prefect artifact (each update of a
    finetuning job); nothing when no CLI listens."""
    if _cli_listener is not None:
        _cli_listener(stage, done, total)
