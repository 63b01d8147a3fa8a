"""The finetuning job cache: each finished job as `<root>/results/jobs/<task>/<key>.json`.

The key covers the checkpoint (its weights' fingerprint), the task's data files (path, size
and mtime of each: changed data is finetuned on again), the task and every hyperparameter, so
a rerun does not repeat a job. Failed jobs are not stored: a rerun retries them. A stored job
that cannot be read is rerun, never the whole evaluation stopped.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from runroot import layout, storage


def data_fingerprint(task: str, data_dir: str | os.PathLike) -> str:
    """A hash of the path, size and mtime of every data file of `task` (RACE splits are
    folders: each file in them). A missing file is part of the hash, not an error: the job
    reports it."""
    from evaluation.readers import task_files

    lines = []
    for path in task_files(task, Path(data_dir).resolve()).values():
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            try:
                st = f.stat()
                lines.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
            except FileNotFoundError:
                lines.append(f"{f}:missing")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def job_key(fingerprint: str, data: str, job: dict) -> str:
    blob = json.dumps({"checkpoint": fingerprint, "data": data, **job}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def job_path(root: str | os.PathLike, task: str, key: str) -> Path:
    return Path(root) / layout.JOBS / task / f"{key}.json"


def read_cached(path: Path, warn: Callable[[str], None]) -> dict | None:
    """The stored result at `path`, or None when there is none or it is unusable (a truncated
    or foreign file), which `warn` is told."""
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as e:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        warn(f"ignoring unreadable cached job {path} ({e}): rerunning it")
        return None
    if not isinstance(result, dict) or result.get("error") or not result.get("best"):
        warn(f"ignoring cached job {path}: not a finished result; rerunning it")
        return None
    return result


def store(path: Path, result: dict) -> None:
    storage.save_json(path, result, indent=None, sort_keys=False, default=str)


__all__ = ["data_fingerprint", "job_key", "job_path", "read_cached", "store"]
