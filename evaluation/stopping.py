"""Stopping finetuning jobs early, from another thread: one process-wide event, checked
between training updates and between dev-scoring batches.

Jobs run on worker threads (Prefect's thread pool), which cannot be killed: a signal lands on
the main thread, which sets `STOP`; each job then raises `JobStopped` at its next check, within
one update. A stopped job is not a result: it writes nothing and is not cached, so a rerun
runs it again while finished jobs stay cached.
"""
from __future__ import annotations

import threading

STOP = threading.Event()


class JobStopped(Exception):
    """A job stopped on request (Ctrl-C, SIGTERM, a cancelled flow run) before it finished."""


def check_stop(where: str) -> None:
    """Raise `JobStopped` when a stop was requested; `where` says what was interrupted."""
    if STOP.is_set():
        raise JobStopped(f"stopped on request during {where}")


__all__ = ["STOP", "JobStopped", "check_stop"]
