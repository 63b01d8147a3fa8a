"""Progress for long work, in two places: a rich bar on the CLI and a Prefect progress artifact.

Stages write a file per finished unit (a manifest, a checkpoint), so the CLI follows progress
by watching files appear: that works whatever runs the work (threads, processes, Ray).
"""
from __future__ import annotations

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
